"""Stop RQ jobs whose tasks were all canceled (queued: removed; started: stop-job command)."""

from __future__ import annotations

import logging

import redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import QUEUED, RUNNING
from llmadmin.queues import get_redis

logger = logging.getLogger(__name__)


def stop_jobs_without_live_tasks(job_ids: set[str]) -> int:
    """Cancel or stop each job none of whose tasks is still queued or running."""
    if not job_ids:
        return 0

    live = set(
        db.session.execute(
            select(Task.job_id).where(Task.job_id.in_(job_ids), Task.status.in_((QUEUED, RUNNING)))
        ).scalars()
    )
    stopped = 0
    try:
        connection = get_redis()
        for job_id in job_ids - live:
            stopped += _stop(connection, job_id)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        # The rows are already CANCELED and the worker checks them before writing.
        logger.warning("Redis unreachable: could not stop jobs %s", sorted(job_ids - live))
    return stopped


def _stop(connection, job_id: str) -> int:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return 0
    status = job.get_status(refresh=False)
    try:
        if status == JobStatus.STARTED:
            send_stop_job_command(connection, job_id)
        elif status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            job.cancel()
        else:
            return 0
    except (InvalidJobOperation, NoSuchJobError):
        return 0
    return 1
