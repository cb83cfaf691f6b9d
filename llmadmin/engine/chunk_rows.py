"""The database side of a running chunk: claim, steal, notice cancels, hand back, fail.

Every function is one short transaction of conditional updates (via
``lifecycle.TASKS``), run in the chunk's database lane thread or by
``run_chunk`` before the loop starts; none of them is ever called from the event loop.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from llmadmin import policy
from llmadmin.engine.dispatch import dispatch
from llmadmin.engine.params import PARAM_COLUMNS
from llmadmin.engine.runs import record_runs
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import FAILURE, PENDING, QUEUED, RUNNING

logger = logging.getLogger(__name__)


def claim(job_id: str, batch: list[int]) -> list:
    """Claim ``batch`` (still QUEUED for ``job_id``); return the claimed rows' prompts."""
    return prompts(transition(batch, RUNNING, from_statuses=(QUEUED,), where=Task.job_id == job_id))


def steal(job_id: str, model_id: int, free: int) -> list:
    """Claim up to ``free`` tasks queued for the same model under other jobs."""
    candidates = (
        db.session.execute(
            select(Task.id)
            .where(Task.model_id == model_id, Task.status == QUEUED)
            .order_by(Task.id)
            .limit(free)
        )
        .scalars()
        .all()
    )
    claimed = (
        transition(candidates, RUNNING, from_statuses=(QUEUED,), job_id=job_id)
        if candidates
        else []
    )
    db.session.commit()
    return prompts(claimed)


def prompts(claimed: list[int]) -> list:
    """Return (id, prompt, system prompt, submission key, *call parameters) of ``claimed``."""
    if not claimed:
        return []
    columns = (Task.id, Task.prompt, Task.system_prompt, Task.submission_key, *PARAM_COLUMNS)
    rows = db.session.execute(select(*columns).where(Task.id.in_(claimed))).all()
    db.session.commit()  # end the read transaction; SQLite must not hold a snapshot open
    return rows


def find_gone(job_id: str, ids: list[int]) -> list[int]:
    """Return the ids among ``ids`` that were canceled or taken away while running."""
    gone = (
        db.session.execute(
            select(Task.id).where(
                Task.id.in_(ids), (Task.status != RUNNING) | (Task.job_id != job_id)
            )
        )
        .scalars()
        .all()
    )
    db.session.commit()
    return gone


def requeue_unfinished(
    job_id: str, task_ids: list[int], note: str = "re-queued: worker shut down"
) -> int:
    """Put tasks of a stopping job back in the queue under new jobs (graceful shutdown, Redis outage)."""
    back = transition(
        task_ids,
        PENDING,
        from_statuses=(QUEUED, RUNNING),
        where=Task.job_id == job_id,
        run_requested_at=utcnow(),
        job_id=None,
        queue_note=note,
    )
    try:
        dispatch(back)
    except QueueUnavailable:
        pass  # they stay PENDING with run_requested_at; housekeeping sends them later
    return len(back)


def fail_queued(job_id: str, task_ids: list[int], message: str, kind: str) -> None:
    """Fail the tasks still queued for ``job_id`` with a clear message (each keeps the run)."""
    failed = transition(
        task_ids,
        FAILURE,
        from_statuses=(QUEUED,),
        where=Task.job_id == job_id,
        commit=False,
        error=message,
        error_kind=kind,
        run_requested_at=None,
    )
    record_runs([{"id": i, "status": FAILURE, "job_id": job_id} for i in failed])
    db.session.commit()


def fail_blocked_tasks(job_id: str, task_ids: list[int], base_url: str) -> bool:
    """Fail a chunk's queued tasks with kind "blocked_url" when its model's URL is not allowed."""
    try:
        policy.check_outbound_url(base_url)
    except policy.BlockedURL as exc:
        logger.warning("job %s: %s", job_id, exc)
        fail_queued(job_id, task_ids, str(exc), "blocked_url")
        return True
    return False
