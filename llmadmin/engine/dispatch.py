"""Send tasks to the queue: commit the row first, enqueue after the commit.

A task that should run is marked QUEUED with a job id chosen here, committed, and only
then enqueued under that id, so a job can never start before its row is visible. If
Redis is down the row goes back to PENDING with a "waiting for queue" note and
``run_requested_at`` set; ``dispatch_waiting`` picks it up when Redis is back.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict

from flask import current_app
from sqlalchemy import select

from llmadmin import queues
from llmadmin.database import in_batches
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import PENDING, QUEUED

logger = logging.getLogger(__name__)

WAITING_NOTE = "waiting for queue: Redis was unreachable; will be sent automatically"


def chunk_size_for(model: LLMModel | None) -> int:
    """Tasks per job: several waves of the model's concurrency cap, so one job keeps it busy."""
    cap = max(1, model.max_concurrency if model else 1)
    factor = current_app.config["TASK_CHUNK_FACTOR"]
    return max(1, min(current_app.config["TASK_CHUNK_MAX"], cap * factor))


def job_timeout_for(model: LLMModel | None, n_tasks: int) -> int:
    """An RQ job timeout generous enough for every wave of the chunk, with retries."""
    if model is None:
        return 60
    waves = math.ceil(n_tasks / max(1, model.max_concurrency))
    per_call = model.timeout_seconds * max(1, model.max_attempts) + 5
    return int(min(24 * 3600, max(60, waves * per_call + 60)))


def dispatch(task_ids: list[int], *, at_front: bool = False) -> tuple[int, int]:
    """Queue the given PENDING tasks in model-sized chunks; return (queued, waiting).

    A task parked until a later time (``not_before``) is scheduled for that time, never sent
    earlier (the reconciler re-sends parked tasks whose scheduled job Redis lost).
    ``at_front`` puts the jobs before everything already queued (a client is waiting).
    """
    now = utcnow()
    by_model: dict[tuple, list[int]] = defaultdict(list)
    for batch in in_batches(task_ids):
        rows = db.session.execute(
            select(Task.id, Task.model_id, Task.not_before)
            .where(Task.id.in_(batch), Task.status == PENDING)
            .order_by(Task.id)
        ).all()
        for task_id, model_id, not_before in rows:
            at = not_before if not_before is not None and not_before > now else None
            by_model[(model_id, at)].append(task_id)
    planned: list[tuple[str, list[int], LLMModel | None, object]] = []
    for (model_id, at), ids in by_model.items():
        model = db.session.get(LLMModel, model_id) if model_id else None
        note = {} if at is not None else {"queue_note": None}  # a parked task keeps its reason
        for chunk in in_batches(ids, chunk_size_for(model)):
            job_id = new_job_id()
            marked = transition(
                chunk, QUEUED, from_statuses=(PENDING,), job_id=job_id, commit=False, **note
            )
            if marked:
                planned.append((job_id, marked, model, at))
    db.session.commit()  # every row first, then every job: a job never starts before its rows
    return _enqueue_all(planned, at_front)


def new_job_id() -> str:
    """Return a fresh job id for a chunk of tasks."""
    return f"tasks-{uuid.uuid4().hex}"


def enqueue_created(
    job_id: str, task_ids: list[int], model: LLMModel, *, at_front: bool = False
) -> tuple[int, int]:
    """Enqueue the job of tasks written QUEUED under ``job_id`` (committed); (queued, waiting).

    For a caller that creates its rows already queued (a gateway call: one transaction, one
    round trip); when Redis is away the rows go back to PENDING as ``dispatch`` does.
    """
    return _enqueue_all([(job_id, list(task_ids), model, None)], at_front)


def _enqueue_all(
    planned: list[tuple[str, list[int], LLMModel | None, object]], at_front: bool = False
) -> tuple[int, int]:
    """Enqueue the chunks' jobs in one Redis round trip; when Redis is away, hand them back.

    One pipeline for all jobs: 10,000 tasks make ~160 jobs, and one round trip each cost
    more than inserting the tasks. A chunk of parked tasks goes to RQ's
    ScheduledJobRegistry for its ``not_before`` (``at``) instead of the queue.
    """
    if not planned:
        return 0, 0
    try:
        with queues.pipeline() as pipe:
            for job_id, marked, model, at in planned:
                queues.enqueue(
                    "llmadmin.jobs.tasks.execute_tasks",
                    job_id,
                    marked,
                    at=at,
                    job_id=job_id,
                    job_timeout=job_timeout_for(model, len(marked)),
                    description=f"run {len(marked)} task(s) on model #{model.id if model else '-'}",
                    pipeline=pipe,
                    **({"at_front": True} if at_front and at is None else {}),
                )
            queues.execute(pipe)
    except QueueUnavailable:
        waiting = sum(_hand_back(job_id, marked) for job_id, marked, _model, _at in planned)
        logger.warning("Redis unreachable: %d task(s) wait for the queue", waiting)
        return 0, waiting
    return sum(len(marked) for _job, marked, _model, _at in planned), 0


def _hand_back(job_id: str, marked: list[int]) -> int:
    back = transition(
        marked,
        PENDING,
        from_statuses=(QUEUED,),
        where=Task.job_id == job_id,
        job_id=None,
        queue_note=WAITING_NOTE,
    )
    return len(back)


def dispatch_waiting(limit: int = 5000) -> tuple[int, int]:
    """Queue tasks that asked to run but are still PENDING (Redis was down, or a crash)."""
    ids = (
        db.session.execute(
            select(Task.id)
            .where(Task.status == PENDING, Task.run_requested_at.is_not(None))
            .order_by(Task.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0, 0
    return dispatch(list(ids))
