"""Park tasks that must wait, so waiting never occupies a worker.

A task that has to wait (backoff, Retry-After, an open breaker, an exhausted rate window,
a cap held by other workers) goes back from RUNNING to QUEUED under a new job id, with
``not_before`` and a note saying why and until when, and that job is put in RQ's
ScheduledJobRegistry for the end of the wait (``enqueue_at``): the scheduler moves it to
the queue then, and any worker runs it. If Redis loses the scheduled job, the reconciler
re-sends the task, and ``dispatch`` schedules it again for its ``not_before``.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from llmadmin import queues
from llmadmin.engine.dispatch import job_timeout_for
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import QUEUED, RUNNING

logger = logging.getLogger(__name__)

EXECUTE = "llmadmin.jobs.tasks.execute_tasks"


@dataclass
class Park:
    """One task to park: how long, why, and the retry state it carries."""

    task_id: int
    seconds: float
    reason: str
    call_attempts: int
    breaker_waited: float


def park(job_id: str, model_id: int, parks: list[Park]) -> int:
    """Hand the RUNNING tasks of ``job_id`` back as QUEUED under scheduled jobs; return how many."""
    now = utcnow()
    groups: dict[object, list[Park]] = defaultdict(list)
    for item in parks:  # one scheduled job per second of wake-up time
        groups[whole_second_after(now, item.seconds)].append(item)
    scheduled: list[tuple[str, list[int], object]] = []
    for at, items in sorted(groups.items()):
        new_job = f"tasks-{uuid.uuid4().hex}"
        moved = []
        for item in items:
            moved += transition(
                [item.task_id],
                QUEUED,
                from_statuses=(RUNNING,),
                where=Task.job_id == job_id,
                commit=False,
                job_id=new_job,
                not_before=at,
                queue_note=f"{item.reason}; waits until {at:%H:%M:%S} UTC"[:200],
                call_attempts=item.call_attempts,
                breaker_waited=item.breaker_waited,
                attempts=Task.attempts - 1,  # a park is not a lost run (MAX_RUN_ATTEMPTS)
            )
        if moved:
            scheduled.append((new_job, moved, at))
    db.session.commit()
    model = db.session.get(LLMModel, model_id)
    for new_job, ids, at in scheduled:
        schedule(new_job, ids, at, model_id, job_timeout_for(model, len(ids)))
    return sum(len(ids) for _, ids, _ in scheduled)


def defer(job_id: str, model_id: int, task_ids: list[int], seconds: float, reason: str) -> int:
    """Park tasks of ``job_id`` that were never claimed (still QUEUED) in one go.

    Used when the model as a whole must wait (a Retry-After, an open breaker): calling
    each task only to be told the same would cost calls and churn.
    """
    at = whole_second_after(utcnow(), seconds)
    new_job = f"tasks-{uuid.uuid4().hex}"
    moved = transition(
        task_ids,
        QUEUED,
        from_statuses=(QUEUED,),
        where=Task.job_id == job_id,
        job_id=new_job,
        not_before=at,
        queue_note=f"{reason}; waits until {at:%H:%M:%S} UTC"[:200],
    )
    if moved:
        model = db.session.get(LLMModel, model_id)
        schedule(new_job, moved, at, model_id, job_timeout_for(model, len(moved)))
    return len(moved)


def whole_second_after(now, seconds: float):
    """``now + seconds`` rounded up to a whole second: RQ's ScheduledJobRegistry keeps whole
    seconds (and would otherwise run a job up to a second before its time)."""
    at = now + timedelta(seconds=seconds)
    return at if at.microsecond == 0 else at.replace(microsecond=0) + timedelta(seconds=1)


def schedule(job_id: str, task_ids: list[int], at, model_id: int | None, job_timeout: int) -> bool:
    """Put the job of parked tasks in RQ's ScheduledJobRegistry; False when Redis is away.

    The rows are already committed: if Redis is away the reconciler finds their job missing
    and re-sends them, still not before ``not_before``.
    """
    try:
        queues.enqueue(
            EXECUTE,
            job_id,
            task_ids,
            at=at,
            job_id=job_id,
            job_timeout=job_timeout,
            description=f"run {len(task_ids)} parked task(s) on model #{model_id or '-'}",
        )
    except QueueUnavailable:
        logger.warning(
            "Redis unreachable: %d parked task(s) wait for the reconciler", len(task_ids)
        )
        return False
    return True
