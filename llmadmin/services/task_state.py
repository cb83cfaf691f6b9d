"""The one place where a task's status changes.

Every change is a conditional UPDATE (``WHERE status IN allowed_from``) so that two
workers, or a worker and a person pressing Cancel, can never both win: the loser's
update matches no row and is a harmless no-op.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update

from llmadmin.extensions import db
from llmadmin.models.base import utcnow
from llmadmin.models.task import (
    CANCELED,
    FAILURE,
    PENDING,
    QUEUED,
    RUNNING,
    SUCCESS,
    Task,
)

# target status -> statuses it may be reached from
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    PENDING: (PENDING, QUEUED, RUNNING, SUCCESS, FAILURE, CANCELED),
    QUEUED: (PENDING, QUEUED, RUNNING, SUCCESS, FAILURE, CANCELED),
    RUNNING: (QUEUED,),
    SUCCESS: (RUNNING,),
    FAILURE: (PENDING, QUEUED, RUNNING),
    CANCELED: (PENDING, QUEUED, RUNNING),
}

CHUNK = 500  # keep IN (...) lists well under every database's parameter limit


def transition(
    task_ids: Iterable[int],
    to_status: str,
    *,
    from_statuses: Iterable[str] | None = None,
    where=None,
    commit: bool = True,
    **values,
) -> list[int]:
    """Move the given tasks to ``to_status``; return the ids that actually changed.

    ``from_statuses`` narrows ``ALLOWED_FROM[to_status]``; ``where`` adds extra
    conditions (e.g. ``Task.job_id == job_id``) and ``values`` are written with it.
    """
    allowed = set(ALLOWED_FROM[to_status])
    if from_statuses is not None:
        allowed &= set(from_statuses)
    ids = list(dict.fromkeys(int(i) for i in task_ids))
    changed: list[int] = []
    values = {**_timestamps(to_status), **values, "status": to_status}
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        stmt = update(Task).where(Task.id.in_(part), Task.status.in_(sorted(allowed)))
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.values(**values).returning(Task.id).execution_options(synchronize_session=False)
        changed.extend(db.session.execute(stmt).scalars().all())
    if commit:
        db.session.commit()
    return changed


def _timestamps(to_status: str) -> dict:
    now = utcnow()
    if to_status == QUEUED:
        return {"queued_at": now}
    if to_status == RUNNING:
        return {"started_at": now, "attempts": Task.attempts + 1}
    if to_status in (SUCCESS, FAILURE, CANCELED):
        return {"finished_at": now}
    return {}
