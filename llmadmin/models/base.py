"""Helpers shared by the model modules."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (what every column stores)."""
    return datetime.now(UTC).replace(tzinfo=None)
