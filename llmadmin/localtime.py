"""Local time for people: UTC as stored, shown in a person's zone without microseconds.

Pure functions (no request, no database): the web layer passes the viewer's zone, the
export job the requester's. Every column stores naive UTC (``models.base.utcnow``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

FALLBACK_ZONE = "UTC"
EXACT_FORMAT = "%Y-%m-%d %H:%M:%S"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def is_valid_zone(name: str | None) -> bool:
    """Tell whether ``name`` is an IANA time zone this machine knows (e.g. Asia/Shanghai)."""
    if not name or len(name) > 64 or name != name.strip():
        return False
    return _zone(name) is not None


def zone(name: str | None, default: str = FALLBACK_ZONE) -> ZoneInfo:
    """Return the zone called ``name``, else ``default``, else UTC (never raises)."""
    return _zone(name or "") or _zone(default or "") or ZoneInfo(FALLBACK_ZONE)


@lru_cache(maxsize=1)
def zone_names() -> list[str]:
    """Every IANA zone name, sorted, for a form's choices."""
    return sorted(n for n in available_timezones() if "/" in n and not n.startswith("Etc/"))


def to_local(value: datetime, tz: ZoneInfo) -> datetime:
    """Convert a stored (naive UTC, or aware) datetime to ``tz``, dropping microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).replace(microsecond=0)


def exact(value: datetime, tz: ZoneInfo) -> str:
    """Return ``value`` as local ``YYYY-MM-DD HH:MM:SS`` in ``tz``."""
    return to_local(value, tz).strftime(EXACT_FORMAT)


def naive_local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    """Return ``value`` as a naive local datetime in ``tz`` (for export cells), None as None."""
    if value is None:
        return None
    return to_local(value, tz).replace(tzinfo=None)


def naive_local_converter(tz: ZoneInfo):
    """Return a fast ``naive_local`` for many values (an export's cells).

    A zone's offset is looked up once per quarter hour of UTC time (every offset change of
    the last century falls on one), so a million rows cost a few dictionary lookups each
    instead of a full ``astimezone``.
    """
    offsets: dict[tuple, object] = {}

    def convert(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        key = (value.year, value.month, value.day, value.hour, value.minute // 15)
        offset = offsets.get(key)
        if offset is None:
            offset = offsets[key] = value.replace(tzinfo=UTC).astimezone(tz).utcoffset()
        return value + offset

    fixed = _fixed_offset(tz)
    if fixed is None:
        return convert
    first, last = FIXED_YEARS

    def convert_fixed(value: datetime | None) -> datetime | None:
        # Asia/Shanghai and most zones without daylight saving: one addition per cell.
        if value is not None and value.tzinfo is None and first <= value.year <= last:
            return value + fixed
        return convert(value)

    return convert_fixed


FIXED_YEARS = (1995, 2040)


@lru_cache(maxsize=64)
def _fixed_offset(tz: ZoneInfo):
    """The zone's offset if it is the same all through FIXED_YEARS (no daylight saving), else None."""
    first, last = FIXED_YEARS
    seen = {
        datetime(year, month, 15, tzinfo=UTC).astimezone(tz).utcoffset()
        for year in range(first, last + 1)
        for month in (1, 4, 7, 10)
    }
    return seen.pop() if len(seen) == 1 else None


def local_text_to_utc(value: str, tz: ZoneInfo) -> str:
    """Read ``YYYY-MM-DD HH:MM:SS`` (or ``A to B``) typed in ``tz`` and write it as UTC.

    Text that is not such a time is returned unchanged (the filter's own check refuses it).
    """
    try:
        parts = [datetime.strptime(part, EXACT_FORMAT) for part in value.split(" to ")]
    except ValueError:
        return value
    utc = [p.replace(tzinfo=tz).astimezone(UTC).strftime(EXACT_FORMAT) for p in parts]
    return " to ".join(utc)


def utc_age(value: datetime, now: datetime | None = None):
    """Return ``value - now`` as a timedelta (negative for the past), both taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return value - now
