"""Housekeeping for batches: finish them without a viewer, expire them, recover their creation.

Run by every worker's housekeeping pass (at most every ``SWEEP_EVERY_SECONDS`` across
machines); every step is a conditional update, so two machines sweeping at once do no
harm:

* open batches with no task left waiting or running are finished (COMPLETED, CANCELLED),
  as a page that shows them would do (``batches.refresh``);
* batches in progress past ``expires_at`` (their completion window) are EXPIRED: their
  unfinished tasks are canceled, finished results kept;
* VALIDATING batches whose creation job is gone (Redis lost it, the worker was killed) are
  sent again under a new job id and resume after their last committed line; after
  ``MAX_CREATION_ATTEMPTS`` runs that all died they are FAILED with a message.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import redis
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import exists, func, select, update

from llmadmin import queues
from llmadmin.extensions import db
from llmadmin.lifecycle import BATCHES
from llmadmin.models import Batch, Task
from llmadmin.models.base import utcnow
from llmadmin.models.batch import BatchStatus
from llmadmin.queues import get_redis
from llmadmin.services import batch_creation, batches, downloads

logger = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 15
LIMIT = 200
CREATION_GRACE = timedelta(seconds=30)  # the request enqueues right after its commit
# A started creation job that committed nothing for this long is dead (a chunk of 1,000
# lines takes well under a second; validating a file stamps progress every 10,000 lines).
CREATION_STALE = timedelta(minutes=5)
MAX_CREATION_ATTEMPTS = 3
WAITING_JOB_STATES = ("queued", "deferred", "scheduled")
FINISHABLE = (BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING, BatchStatus.CANCELLING)
EXPIRABLE = (BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING)

_last_sweep = 0.0


def sweep_batches() -> dict[str, int] | None:
    """Run ``sweep`` at most every SWEEP_EVERY_SECONDS per process and across machines."""
    global _last_sweep
    if time.monotonic() - _last_sweep < SWEEP_EVERY_SECONDS:
        return None
    _last_sweep = time.monotonic()
    try:
        key = f"{current_app.config['QUEUE_PREFIX']}:batches:sweep"
        if not get_redis().set(key, "1", nx=True, ex=SWEEP_EVERY_SECONDS):
            return None
    except (redis.RedisError, OSError, RuntimeError):
        pass  # no lock without Redis; every step below is safe to run twice
    return sweep()


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Finish, expire and recover batches; return counts."""
    now = now or utcnow()
    done = {"finished": finish_idle(), "expired": expire_due(now)}
    done.update(recover_creations(now))
    return done


def finish_idle() -> int:
    """Finish open batches with no task left to run (nobody needs to look at them)."""
    active = (
        exists()
        .where(Task.batch_id == Batch.id, Task.status.in_(batch_creation.ACTIVE))
        .correlate(Batch)
    )
    rows = list(
        db.session.execute(
            select(Batch)
            .where(Batch.status.in_(FINISHABLE), ~active)
            .order_by(Batch.id)
            .limit(LIMIT)
        ).scalars()
    )
    if not rows:
        db.session.commit()
        return 0
    before = {row.id: row.status for row in rows}
    batches.refresh(rows)
    return sum(1 for row in rows if row.status != before[row.id])


def expire_due(now: datetime) -> int:
    """Expire batches past their completion window; return how many."""
    rows = db.session.execute(
        select(Batch.id).where(Batch.status.in_(EXPIRABLE), Batch.expires_at < now).limit(LIMIT)
    ).scalars()
    return sum(1 for batch_id in list(rows) if expire_batch(batch_id))


def expire_batch(batch_id: int) -> bool:
    """Move a batch to EXPIRED and cancel its unfinished tasks (finished results are kept)."""
    if not BATCHES.transition([batch_id], BatchStatus.EXPIRED, from_statuses=EXPIRABLE):
        return False
    batch = db.session.get(Batch, batch_id)
    canceled = batch_creation.cancel_unfinished(
        batch_id, "batch_expired", window=batch.completion_window
    )
    logger.info("batch %s expired; %s unfinished task(s) canceled", batch_id, canceled)
    return True


# --- creation jobs that never ran or died ------------------------------------------------


def recover_creations(now: datetime) -> dict[str, int]:
    """Send again the creation of VALIDATING batches whose job is gone; fail hopeless ones."""
    done = {"creation_resent": 0, "creation_failed": 0}
    try:
        connection = get_redis()
        connection.ping()
    except (redis.RedisError, OSError, RuntimeError):
        return done  # nothing can be sent now; the next pass tries again
    last = func.coalesce(Batch.progress_at, Batch.created_at)
    rows = db.session.execute(
        select(Batch.id, Batch.job_id, Batch.creation_attempts, last)
        .where(Batch.status == BatchStatus.VALIDATING, last < now - CREATION_GRACE)
        .limit(LIMIT)
    ).all()
    db.session.commit()
    for batch_id, job_id, attempts, progress_at in rows:
        state = queues.job_state(connection, job_id)
        if state in WAITING_JOB_STATES:
            continue  # waiting for a worker
        if state == "started" and progress_at >= now - CREATION_STALE:
            continue  # running
        if attempts >= MAX_CREATION_ATTEMPTS:
            done["creation_failed"] += _give_up(batch_id, job_id, attempts)
        else:
            done["creation_resent"] += _resend(batch_id, job_id)
    return done


def _resend(batch_id: int, old_job_id: str | None) -> bool:
    """Give the batch a new job id (conditionally, so one sweeper wins) and enqueue it."""
    new_job_id = batch_creation.new_job_id()
    same_job = Batch.job_id.is_(None) if old_job_id is None else Batch.job_id == old_job_id
    moved = db.session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == BatchStatus.VALIDATING, same_job)
        .values(job_id=new_job_id, progress_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not moved:
        return False
    logger.warning(
        "batch %s: creation job %s lost; sent again as %s", batch_id, old_job_id, new_job_id
    )
    return batch_creation.enqueue_creation(batch_id, new_job_id)


def _give_up(batch_id: int, job_id: str | None, attempts: int) -> bool:
    batch = db.session.get(Batch, batch_id)
    with force_locale(downloads.requester_settings(batch.creator_id)[0]):
        message = _(
            "Creating the tasks stopped %(count)s time(s) without finishing (the worker was "
            "lost each time) after %(lines)s line(s); the tasks created so far were canceled. "
            "Check the workers, then upload the file again.",
            count=attempts,
            lines=f"{batch.lines:,}",
        )
        failed = batch_creation.fail_creation(batch_id, job_id, message)
    if failed:
        logger.warning("batch %s failed: its creation died %s time(s)", batch_id, attempts)
    return failed
