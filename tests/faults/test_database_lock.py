"""The database is locked for 10 s while workers write results."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from flask import current_app
from rq.job import Job
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from llmadmin.engine.limits import heartbeat_key
from llmadmin.models.task import FINAL_STATUSES, RUNNING
from llmadmin.queues import get_redis
from tests.faults.harness import (
    HeartbeatLost,
    assert_clean,
    assert_not_twice,
    count_final,
    rows,
    wait_for,
)
from tests.faults.test_workers_killed import _start_batch

pytestmark = pytest.mark.slow

LOCK_SECONDS = 10


def hold_lock(database_uri: str, seconds: float, held: threading.Event) -> None:
    """Hold the strongest lock the database has on the task table for ``seconds``."""
    url = make_url(database_uri)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            held.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            # EXCLUSIVE blocks every write but not reads (like SQLite's BEGIN EXCLUSIVE in WAL
            # mode), so the test can count results while the lock is held.
            conn.execute(text("LOCK TABLE task IN EXCLUSIVE MODE"))
            held.set()
            time.sleep(seconds)
            conn.commit()
    finally:
        engine.dispose()


def writes_refused(database_uri: str) -> str | None:
    """Try to take a write lock on the task table without waiting; return the refusal, or
    None when it was granted (then nobody held the lock)."""
    url = make_url(database_uri)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database, isolation_level=None, timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return None
        except sqlite3.OperationalError as exc:
            return str(exc)
        finally:
            conn.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '200ms'"))
            conn.execute(text("LOCK TABLE task IN ROW EXCLUSIVE MODE"))
            conn.rollback()
            return None
    except OperationalError as exc:
        return str(exc.orig)
    finally:
        engine.dispose()


def _heartbeats(jobs) -> dict[str, bool]:
    """Which of ``jobs`` still run (RQ says so) and whether their heartbeat key exists."""
    connection, prefix = get_redis(), current_app.config["QUEUE_PREFIX"]
    state = {}
    for job_id in jobs:
        if Job.fetch(job_id, connection=connection).get_status(refresh=False) == "started":
            state[job_id] = bool(connection.exists(heartbeat_key(prefix, job_id)))
    return state


def test_database_locked_while_workers_write_results(app, fault):
    fault.name = f"database locked {LOCK_SECONDS} s"
    workers, ids = _start_batch(app, fault, {})
    wait_for(
        lambda: count_final(ids) >= len(ids) // 5,
        60,
        f"work under way\n{workers.logs()}",
        interval=0.05,
    )

    current = rows(ids).values()
    affected = {r.id for r in current if r.status not in FINAL_STATUSES}
    running_jobs = {r.job_id for r in current if r.status == RUNNING}
    held = threading.Event()
    locker = threading.Thread(
        target=hold_lock, args=(app.config["SQLALCHEMY_DATABASE_URI"], LOCK_SECONDS, held)
    )
    locker.start()
    assert held.wait(30), "the locking connection never got its lock"
    refusal = writes_refused(app.config["SQLALCHEMY_DATABASE_URI"])
    assert refusal and ("database is locked" in refusal or "lock timeout" in refusal), (
        f"another connection could take a write lock during the 'lock': {refusal!r}"
    )
    final_at_lock = count_final(ids)
    before = _heartbeats(running_jobs)
    time.sleep(LOCK_SECONDS / 2)
    during = _heartbeats(job for job, alive in before.items() if alive)
    final_late_in_lock = count_final(ids)
    locker.join()
    assert final_late_in_lock == final_at_lock, "a result was written through the lock"

    baseline, t0 = fault.calls(), time.monotonic()
    recovery = fault.wait_recovered(affected, baseline, timeout=90)
    fault.wait_final(ids, timeout=120)
    lost_beats = sorted(job for job, alive in during.items() if not alive)
    report = fault.report(
        ids,
        recovery_s=recovery,
        note=f"{len(affected)} unfinished at the lock; all final {time.monotonic() - t0:.1f} s after "
        f"the release; heartbeats of {len(lost_beats)}/{len(during)} running chunk(s) expired "
        f"during the lock",
    )
    assert_clean(report, workers, twice=False)
    assert len(workers.live()) == 2, f"a worker died\n{workers.logs()}"
    assert "database is locked" not in workers.logs()
    if lost_beats:
        raise HeartbeatLost(
            f"{len(lost_beats)} running chunk(s) lost their heartbeat; "
            f"{report.run_twice} task(s) ran twice"
        )
    assert_not_twice(report, workers)
