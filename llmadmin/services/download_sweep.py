"""The Download Center's housekeeping: expired downloads, orphan files, stuck rows.

Run by every worker's housekeeping thread (at most once a minute across machines); every
step is a conditional update or an idempotent file removal, so two runs at once are safe.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import delete, select, update

from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.models.base import utcnow
from llmadmin.models.download import FAILURE, PENDING, RUNNING
from llmadmin.queues import get_redis, job_state
from llmadmin.services import download_cleanup, download_files, downloads

logger = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)  # never touch a young file: an export may be writing it
PENDING_GRACE = timedelta(minutes=2)
PENDING_GIVE_UP = timedelta(days=1)  # stop re-sending a job that keeps dying before its claim
RUNNING_GRACE = timedelta(minutes=1)
SWEEP_EVERY_SECONDS = 60


# --- the sweep: expired downloads, orphan files, jobs that never ran or died -------------


def sweep(now: datetime | None = None, orphan_grace: timedelta = ORPHAN_GRACE) -> dict[str, int]:
    """Remove expired downloads and orphan files, and recover stuck rows; return counts."""
    now = now or utcnow()
    done = {"expired": remove_expired(now), "orphans": remove_orphans(now, orphan_grace)}
    done.update(recover_stuck(now))
    return done


_last_sweep = 0.0


def sweep_downloads() -> dict[str, int] | None:
    """Run ``sweep`` at most once a minute per process and across machines (housekeeping)."""
    global _last_sweep
    if time.monotonic() - _last_sweep < SWEEP_EVERY_SECONDS:
        return None
    _last_sweep = time.monotonic()
    try:
        key = f"{current_app.config['QUEUE_PREFIX']}:downloads:sweep"
        if not get_redis().set(key, "1", nx=True, ex=SWEEP_EVERY_SECONDS):
            return None
    except (redis.RedisError, OSError, RuntimeError):
        pass  # no lock without Redis; every step below is safe to run twice
    return sweep()


def remove_expired(now: datetime, batch: int = 500) -> int:
    """Delete downloads past their expiry, then their files; return how many."""
    ids = (
        db.session.execute(select(Download.id).where(Download.expires_at < now).limit(batch))
        .scalars()
        .all()
    )
    if not ids:
        db.session.commit()
        return 0
    rows = db.session.execute(
        delete(Download)
        .where(Download.id.in_(ids), Download.expires_at < now)
        .returning(Download.storage_path)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    download_cleanup.remove_files([path for (path,) in rows if path])
    return len(rows)


def remove_orphans(now: datetime, grace: timedelta = ORPHAN_GRACE) -> int:
    """Remove files (and leftover temp files) that no row points at and are older than grace."""
    root = download_files.storage_root()
    if not os.path.isdir(root):
        return 0
    known = set(
        db.session.execute(
            select(Download.storage_path).where(Download.storage_path.is_not(None))
        ).scalars()
    )
    db.session.commit()
    cutoff = (now - grace).timestamp() if now.tzinfo else _epoch(now - grace)
    removed = 0
    for folder, _subfolders, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            if relative not in known and _older_than(path, cutoff):
                download_files.remove_quietly(path)
                removed += 1
        if folder != root and not os.listdir(folder) and _older_than(folder, cutoff):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # an export just created a file in it
    return removed


def _epoch(naive_utc: datetime) -> float:

    return naive_utc.replace(tzinfo=UTC).timestamp()


def _older_than(path: str, cutoff: float) -> bool:
    try:
        return os.path.getmtime(path) < cutoff
    except OSError:
        return False


def recover_stuck(now: datetime) -> dict[str, int]:
    """Re-send PENDING rows whose job never ran; fail RUNNING rows whose worker died."""

    try:
        connection = get_redis()
        connection.ping()
    except (redis.RedisError, OSError, RuntimeError):
        return {}

    def state(job_id: str | None) -> str | None:
        return job_state(connection, job_id)

    never_started = (
        db.session.execute(
            select(Download.id)
            .where(Download.status == PENDING, Download.created_at < now - PENDING_GIVE_UP)
            .limit(200)
        )
        .scalars()
        .all()
    )
    pending = db.session.execute(
        select(Download.id, Download.job_id)
        .where(
            Download.status == PENDING,
            Download.created_at < now - PENDING_GRACE,
            Download.created_at >= now - PENDING_GIVE_UP,
        )
        .limit(200)
    ).all()
    running = db.session.execute(
        select(Download.id, Download.job_id, Download.started_at)
        .where(Download.status == RUNNING, Download.started_at < now - RUNNING_GRACE)
        .limit(200)
    ).all()
    db.session.commit()
    resent = sum(
        _resend(i, job_id)
        for i, job_id in pending
        if state(job_id) not in ("queued", "deferred", "scheduled", "started")
    )
    deadline = now - timedelta(seconds=current_app.config["JOB_TIMEOUT"]) - RUNNING_GRACE
    lost = [
        (i, job_id)
        for i, job_id, started in running
        if state(job_id) != "started" or started < deadline
    ]
    failed = sum(
        downloads.transition(
            i,
            FAILURE,
            where=Download.job_id == job_id,
            finished_at=now,
            error="The worker writing this file stopped or timed out; nothing was kept. Export again.",
        )
        for i, job_id in lost
    )
    failed += sum(
        downloads.transition(
            i,
            FAILURE,
            finished_at=now,
            error="The export never started (no worker or queue for a day); nothing was kept. Export again.",
        )
        for i in never_started
    )
    return {"resent": resent, "lost": failed}


def _resend(download_id: int, old_job_id: str | None) -> bool:
    new_job_id = uuid.uuid4().hex
    moved = db.session.execute(
        update(Download)
        .where(
            Download.id == download_id,
            Download.status == PENDING,
            Download.job_id.is_(None) if old_job_id is None else Download.job_id == old_job_id,
        )
        .values(job_id=new_job_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(moved) and downloads.enqueue_export(download_id, new_job_id)
