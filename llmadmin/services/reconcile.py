"""Notice tasks whose job died or vanished, and put them back to work.

RQ alone is at-most-once after a crash and slow to notice one. Every running chunk
refreshes a short heartbeat key in Redis; this pass (run by every worker's housekeeping
thread, safe on many machines at once thanks to conditional updates) finds:

* RUNNING rows whose job has had no heartbeat for a while (worker killed, machine lost):
  re-queued while run attempts remain, otherwise failed with "worker lost". A heartbeat
  missing only once is not enough: after a Redis restart a live chunk needs a beat
  (HEARTBEAT_SECONDS) to write its key again, and re-queuing it then would throw its
  answers away;
* QUEUED rows whose job is gone from Redis, or ended without running them (Redis restarted
  without persistence, queue flushed, job failed before claiming): re-queued.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from llmadmin.engine.dispatch import dispatch
from llmadmin.engine.heartbeat import HEARTBEAT_SECONDS
from llmadmin.engine.limits import heartbeat_key
from llmadmin.engine.runs import record_runs
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import FAILURE, PENDING, QUEUED, RUNNING
from llmadmin.queues import REDIS_OUTAGE, get_redis, job_state
from llmadmin.texts import error_columns

logger = logging.getLogger(__name__)

DEAD_JOB_STATES = {"failed", "stopped", "canceled", "finished"}
HEARTBEAT_CONFIRM_SECONDS = 2 * HEARTBEAT_SECONDS + 0.5
# When this process first saw each running job without a heartbeat (monotonic seconds).
_missing_since: dict[str, float] = {}


def reconcile(limit: int = 5000) -> dict[str, int]:
    """Run one pass; return counts of requeued and failed tasks."""

    connection = get_redis()
    grace = timedelta(seconds=current_app.config["RECONCILE_GRACE_SECONDS"])
    cutoff = utcnow() - grace
    lost_running = _lost(connection, RUNNING, Task.started_at < cutoff, limit)
    lost_queued = _lost(connection, QUEUED, Task.queued_at < cutoff, limit)
    requeued, failed = _requeue_or_fail(lost_running, RUNNING)
    q_requeued, _ = _requeue_or_fail(lost_queued, QUEUED)
    if requeued or q_requeued:
        dispatch(requeued + q_requeued)
    result = {
        "requeued_running": len(requeued),
        "failed_lost": len(failed),
        "requeued_queued": len(q_requeued),
    }
    if any(result.values()):
        logger.warning("reconciler: %s", result)
    return result


def _lost(connection, status: str, older, limit: int) -> list[tuple[int, str, int]]:
    rows = db.session.execute(
        select(Task.id, Task.job_id, Task.attempts).where(Task.status == status, older).limit(limit)
    ).all()
    db.session.commit()
    prefix = current_app.config["QUEUE_PREFIX"]
    alive: dict[str, bool] = {}
    lost = []
    for task_id, job_id, attempts in rows:
        if job_id not in alive:
            alive[job_id] = _job_alive(connection, prefix, job_id, status)
            if status == RUNNING and job_id:
                alive[job_id] = not _missing_long_enough(job_id, alive[job_id])
        if not alive[job_id]:
            lost.append((task_id, job_id, attempts))
    if status == RUNNING:
        for job_id in set(_missing_since) - set(alive):
            del _missing_since[job_id]  # its rows are no longer running
    return lost


def _missing_long_enough(job_id: str, has_heartbeat: bool) -> bool:
    """Tell whether a running job's heartbeat has been missing for a confirmation period."""
    if has_heartbeat:
        _missing_since.pop(job_id, None)
        return False
    first_seen = _missing_since.setdefault(job_id, time.monotonic())
    return time.monotonic() - first_seen >= HEARTBEAT_CONFIRM_SECONDS


def _job_alive(connection, prefix: str, job_id: str | None, status: str) -> bool:
    if not job_id:
        return False
    if connection.exists(heartbeat_key(prefix, job_id)):
        return True
    if status == RUNNING:
        return False  # a running chunk always has a heartbeat
    state = job_state(connection, job_id)
    if state is None:
        return False
    # "started" without a heartbeat past the grace period: its worker died before claiming.
    return state not in DEAD_JOB_STATES and state != "started"


def _requeue_or_fail(lost: list[tuple[int, str, int]], status: str) -> tuple[list[int], list[int]]:
    max_runs = current_app.config["MAX_RUN_ATTEMPTS"]
    requeued: list[int] = []
    failed: list[int] = []
    for task_id, job_id, attempts in lost:
        if status == RUNNING and attempts >= max_runs:
            gave_up = transition(
                [task_id],
                FAILURE,
                from_statuses=(RUNNING,),
                where=Task.job_id == job_id,
                commit=False,
                **error_columns("worker_lost", attempts=attempts),
                error_kind="worker_lost",
                run_requested_at=None,
            )
            record_runs([{"id": i, "status": FAILURE, "job_id": job_id} for i in gave_up])
            db.session.commit()
            failed += gave_up
        else:
            requeued += transition(
                [task_id],
                PENDING,
                from_statuses=(status,),
                where=Task.job_id == job_id,
                run_requested_at=utcnow(),
                job_id=None,
                queue_note="re-queued: its worker was lost"
                if status == RUNNING
                else "re-queued: its job vanished from the queue",
            )
    return requeued, failed


def safe_reconcile() -> dict[str, int] | None:
    """Run a pass unless Redis is unreachable."""
    try:
        return reconcile()
    except REDIS_OUTAGE as exc:
        logger.warning("reconciler skipped: %s", exc)
        return None
