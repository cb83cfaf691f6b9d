"""Job: apply an admin action to all rows matching a stored selection."""

from __future__ import annotations

from llmadmin.jobs.context import app_context


def apply_bulk_action(selection: dict, action: str, extra: dict) -> int:
    """Expand the stored selection in the worker and apply the action in chunks."""
    from llmadmin.services import bulk

    with app_context():
        return bulk.apply_bulk_action(selection, action, extra)
