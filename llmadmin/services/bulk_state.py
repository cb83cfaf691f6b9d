"""Bulk operations' statuses, and moving an export's operation along with its Download.

The transitions themselves are ``lifecycle.BULK_OPERATIONS``, like every other row's.
"""

from __future__ import annotations

from sqlalchemy import select

from llmadmin.extensions import db
from llmadmin.lifecycle import BULK_OPERATIONS
from llmadmin.models.bulk_operation import BulkOperation, BulkStatus

PENDING, RUNNING = BulkStatus.PENDING, BulkStatus.RUNNING
SUCCESS, FAILURE = BulkStatus.SUCCESS, BulkStatus.FAILURE

transition = BULK_OPERATIONS.transition


def follow_download(download_id: int, to_status: str, **values) -> list[int]:
    """Move the operation of an export along with its Download row."""
    ids = db.session.execute(
        select(BulkOperation.id).where(BulkOperation.download_id == download_id)
    ).scalars()
    return transition(list(ids), to_status, **values)
