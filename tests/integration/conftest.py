"""Real processes: worker.py subprocesses against the test database and Redis, and the
simulated endpoint over real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmadmin.extensions import db
from llmadmin.llm.simulator import SimulatorServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def simulator():
    with SimulatorServer(latency_ms=50) as server:
        yield server


class Workers:
    """Start and stop worker.py processes that share the test app's database and Redis."""

    def __init__(self, app, tmp_path):
        self.app = app
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.app.config["SQLALCHEMY_DATABASE_URI"],
                "REDIS_URL": self.app.config["REDIS_URL"],
                "SECRET_KEY": self.app.config["SECRET_KEY"],
                "LLMADMIN_INSTANCE": str(self.tmp_path),
                "HOUSEKEEPING_INTERVAL": "1",
                "HEARTBEAT_TTL_SECONDS": "3",
                "RECONCILE_GRACE_SECONDS": "2",
                "WORKER_DRAIN_SECONDS": "2",
                "LOG_LEVEL": "WARNING",
            }
        )
        return env

    def start(self, count: int = 1, *extra: str) -> list[subprocess.Popen]:
        started = []
        for _ in range(count):
            log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "wb")
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py"), *extra],
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.procs.append(proc)
            started.append(proc)
        return started

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:]
            for p in sorted(self.tmp_path.glob("worker-*.log"))
        )


@pytest.fixture
def workers(app, tmp_path):
    pool = Workers(app, tmp_path)
    yield pool
    pool.stop_all()


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it is truthy (returns its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def statuses(ids) -> dict[str, int]:
    """Count tasks by status (fresh from the database)."""
    from llmadmin.models import Task

    db.session.expire_all()
    rows = db.session.execute(
        db.select(Task.status, db.func.count()).where(Task.id.in_(ids)).group_by(Task.status)
    ).all()
    db.session.commit()
    return dict(rows)
