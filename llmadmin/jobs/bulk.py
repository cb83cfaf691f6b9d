"""Job: apply an admin action to all rows matching a stored search and filters."""

from __future__ import annotations

from llmadmin.jobs.context import app_context


def apply_bulk_action(
    endpoint: str, action: str, list_args: str, person_id: int, extra: dict
) -> int:
    """Expand the selection in the worker and apply the action in chunks."""
    from llmadmin.services import bulk

    with app_context():
        return bulk.apply_bulk_action(endpoint, action, list_args, person_id, extra)
