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
from llmadmin.errors import LLMError, QueueUnavailable
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import QUEUED, RUNNING

logger = logging.getLogger(__name__)

EXECUTE = "llmadmin.jobs.tasks.execute_tasks"


@dataclass
class Carried:
    """What a task's run has done so far, carried on its row across parks.

    ``calls`` is the one count of calls made (``task.calls``); ``last_error`` the run's last
    real failure (kept in ``task.error``/``error_kind`` while parked), so a final error
    names it and not the breaker; ``breaker_waited`` bounds the wait for an open breaker.
    """

    calls: int = 0
    last_error: LLMError | None = None
    breaker_waited: float = 0.0

    @classmethod
    def of(cls, row) -> Carried:
        """Read the carried state of a claimed row (``chunk_rows.CARRIED``)."""
        calls = row.calls or 0
        last = None
        if calls and row.error:  # a fresh run (calls reset to None) carries no old failure
            last = LLMError(row.error, kind=row.error_kind or "unexpected")
        return cls(calls, last, float(row.breaker_waited or 0.0))

    def columns(self) -> dict:
        """The task columns that keep this state while the task is parked."""
        last = self.last_error
        return {
            "calls": self.calls,
            "error": last.message if last else None,
            "error_kind": last.kind if last else None,
            "breaker_waited": self.breaker_waited,
        }


@dataclass
class Park:
    """One task to park: how long, why, and the run's state it carries."""

    task_id: int
    seconds: float
    reason: str
    carried: Carried


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
                **item.carried.columns(),
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
