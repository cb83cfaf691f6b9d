"""Housekeeping for bulk operations: send rows whose job never ran, resume rows whose worker died.

Run by every worker's housekeeping pass; every step is a conditional update, so two
machines sweeping at once do no harm. Redis holds nothing the rows do not: a lost job
is rebuilt from its row and resumes after the row's ``last_id``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import redis
from sqlalchemy import select

from llmadmin import queues
from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download
from llmadmin.models.base import utcnow
from llmadmin.models.download import FAILURE as DOWNLOAD_FAILURE
from llmadmin.models.download import SUCCESS as DOWNLOAD_SUCCESS
from llmadmin.queues import get_redis
from llmadmin.services import bulk
from llmadmin.services.bulk_state import FAILURE, PENDING, RUNNING, SUCCESS, transition

logger = logging.getLogger(__name__)

PENDING_GRACE = timedelta(seconds=5)  # the request enqueues right after its commit
RUNNING_GRACE = timedelta(minutes=2)  # no chunk committed for this long, and no live job
WAITING_JOB_STATES = ("queued", "deferred", "scheduled", "started")
EXPORT = BulkOperation.action.like("export\\_%", escape="\\")


def sweep_operations(now: datetime | None = None) -> dict[str, int]:
    """Re-send PENDING rows, resume RUNNING rows whose job is gone, settle finished exports."""

    now = now or utcnow()
    done = {"exports": settle_exports()}
    try:
        connection = get_redis()
        connection.ping()
    except (redis.RedisError, OSError, RuntimeError):
        return done  # nothing can be sent now; the next pass tries again
    pending = db.session.execute(
        select(BulkOperation.id, BulkOperation.job_id)
        .where(
            BulkOperation.status == PENDING,
            ~EXPORT,
            BulkOperation.created_at < now - PENDING_GRACE,
        )
        .limit(200)
    ).all()
    running = db.session.execute(
        select(BulkOperation.id, BulkOperation.job_id)
        .where(
            BulkOperation.status == RUNNING,
            ~EXPORT,
            BulkOperation.updated_at < now - RUNNING_GRACE,
        )
        .limit(200)
    ).all()
    db.session.commit()
    done["resent"] = sum(
        _resend(i, job_id, PENDING)
        for i, job_id in pending
        if queues.job_state(connection, job_id) not in WAITING_JOB_STATES
    )
    done["resumed"] = sum(
        _resend(i, job_id, RUNNING)
        for i, job_id in running
        if queues.job_state(connection, job_id) != "started"
    )
    return done


def _resend(operation_id: int, old_job_id: str | None, status: str) -> bool:
    """Give the row a new job id (conditionally, so one sweeper wins) and enqueue it."""
    new_job_id = uuid.uuid4().hex
    same_job = (
        BulkOperation.job_id.is_(None) if old_job_id is None else BulkOperation.job_id == old_job_id
    )
    if status == RUNNING:  # back to PENDING so the new job can claim it; last_id is kept
        moved = transition([operation_id], PENDING, where=same_job, job_id=new_job_id)
    else:
        moved = db.session.execute(
            BulkOperation.__table__.update()
            .where(BulkOperation.id == operation_id, BulkOperation.status == PENDING, same_job)
            .values(job_id=new_job_id)
        ).rowcount
        db.session.commit()
    if not moved:
        return False
    logger.info("bulk operation %s re-sent (was %s)", operation_id, status)
    return bulk.enqueue_operation(operation_id, new_job_id)


def settle_exports() -> int:
    """Finish export operations whose Download finished, failed or was deleted meanwhile."""
    rows = db.session.execute(
        select(BulkOperation.id, Download.status, Download.row_count, Download.error)
        .outerjoin(Download, BulkOperation.download_id == Download.id)
        .where(
            BulkOperation.status.in_((PENDING, RUNNING)),
            EXPORT,
            (Download.id.is_(None)) | Download.status.in_((DOWNLOAD_SUCCESS, DOWNLOAD_FAILURE)),
        )
        .limit(200)
    ).all()
    db.session.commit()
    settled = 0
    for operation_id, status, rows_written, error in rows:
        if status == DOWNLOAD_SUCCESS:
            n = rows_written or 0
            settled += len(_finish(operation_id, SUCCESS, matched=n, processed=n, changed=n))
        else:
            error = error or "The download was deleted before its file was written."
            settled += len(_finish(operation_id, FAILURE, error=error))
    return settled


def _finish(operation_id: int, to_status: str, **values) -> list[int]:
    if to_status == SUCCESS:
        # a PENDING export row may have missed its RUNNING step (the claim and this sweep race)
        transition([operation_id], RUNNING)
    return transition([operation_id], to_status, **values)
