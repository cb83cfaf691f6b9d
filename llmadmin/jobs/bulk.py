"""Job: apply a stored bulk operation (an admin action on all matching rows)."""

from __future__ import annotations

from llmadmin.jobs.context import app_context
from llmadmin.services.bulk import run_operation


def apply_bulk_operation(operation_id: int) -> str:
    """Claim the PENDING operation and apply it in chunks (a duplicate delivery is a no-op)."""

    with app_context():
        return run_operation(operation_id)
