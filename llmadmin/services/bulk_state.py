"""The one place where a bulk operation's status changes.

Like ``task_state``: a conditional UPDATE (``WHERE status IN allowed_from``) so that two
deliveries of a job, or a job and the sweep, can never both win. Kept as a plain table
(``ALLOWED_FROM``) so it folds into the generic state machine later.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update

from llmadmin.extensions import db
from llmadmin.models.base import utcnow
from llmadmin.models.bulk_operation import BulkOperation, BulkStatus

PENDING, RUNNING = BulkStatus.PENDING, BulkStatus.RUNNING
SUCCESS, FAILURE = BulkStatus.SUCCESS, BulkStatus.FAILURE

# target status -> statuses it may be reached from
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    PENDING: (RUNNING,),  # the sweep hands a row whose worker died back to the queue
    RUNNING: (PENDING,),  # a job claims its row
    SUCCESS: (RUNNING,),
    FAILURE: (PENDING, RUNNING),
}


def transition(
    operation_ids: Iterable[int], to_status: str, *, where=None, commit: bool = True, **values
) -> list[int]:
    """Move operations to ``to_status`` where their status allows it; return the ids moved."""
    ids = [int(i) for i in operation_ids]
    if not ids:
        return []
    now = utcnow()
    stamps = {"updated_at": now}
    if to_status == RUNNING:
        stamps["started_at"] = now
    if to_status in (SUCCESS, FAILURE):
        stamps["finished_at"] = now
    stmt = update(BulkOperation).where(
        BulkOperation.id.in_(ids), BulkOperation.status.in_(ALLOWED_FROM[to_status])
    )
    if where is not None:
        stmt = stmt.where(where)
    stmt = (
        stmt.values(**{**stamps, **values, "status": to_status})
        .returning(BulkOperation.id)
        .execution_options(synchronize_session=False)
    )
    changed = list(db.session.execute(stmt).scalars())
    if commit:
        db.session.commit()
    return changed


def follow_download(download_id: int, to_status: str, **values) -> list[int]:
    """Move the operation of an export along with its Download row."""
    ids = db.session.execute(
        select(BulkOperation.id).where(BulkOperation.download_id == download_id)
    ).scalars()
    return transition(list(ids), to_status, **values)
