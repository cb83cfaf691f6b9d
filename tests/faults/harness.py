"""Real-process fault injection: worker processes, a private Redis, and the figures each
scenario reports (tasks lost, stuck, run twice, seconds to recover).

Every scenario runs real ``worker.py`` processes against the test database and Redis and
the simulated endpoint over real sockets. Each task's prompt carries its own simulator key
(``[[sim: key=t7]]``), so ``/_sim/stats`` counts the calls made for every task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
from flask import current_app

from llmadmin.engine.limits import heartbeat_key
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import CANCELED, FAILURE, FINAL_STATUSES, PENDING, SUCCESS
from tests.faults.processes import FaultWorkers, PrivateRedis, wait_for  # noqa: F401 (re-exported)

# How many tasks the scaled scenarios create: small for CI, FAULT_TASKS=500 for the benchmark.
FAULT_TASKS = int(os.environ.get("FAULT_TASKS", "60"))

# The Workers fixture's fast timings, and the production defaults (README's configuration table).
FAST = {"HEARTBEAT_TTL_SECONDS": 3, "RECONCILE_GRACE_SECONDS": 2, "HOUSEKEEPING_INTERVAL": 1}
DEFAULTS = {"HEARTBEAT_TTL_SECONDS": 10, "RECONCILE_GRACE_SECONDS": 10, "HOUSEKEEPING_INTERVAL": 5}


@dataclass
class Report:
    """One row of the summary table."""

    scenario: str
    tasks: int
    lost: int
    stuck: int
    run_twice: int
    recovery_s: float | None
    outcome: str = ""
    bad_final: int = 0
    note: str = ""
    nodeid: str = ""
    verdict: str = ""
    details: dict = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        """Return the row as JSON-ready data (without the per-task details)."""
        data = asdict(self)
        data.pop("details")
        return data


# Filled by the scenarios, printed by tests/faults/conftest.py at the end of the session.
REPORTS: list[Report] = []


def summary_lines(reports) -> list[str]:
    """Format the reports as a plain-text table."""
    header = ("scenario", "tasks", "lost", "stuck", "run twice", "recovery s", "result", "outcome")
    table = [header]
    for r in reports:
        table.append(
            (
                r.scenario,
                str(r.tasks),
                str(r.lost),
                str(r.stuck),
                str(r.run_twice),
                "-" if r.recovery_s is None else f"{r.recovery_s:.1f}",
                r.verdict or "?",
                r.outcome + (f"; {r.note}" if r.note else ""),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = []
    for row in table:
        cells = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i])
            for i in range(len(widths))
        ]
        lines.append("  ".join(cells) + "  " + row[-1])
    return lines


@dataclass
class Row:
    id: int
    status: str
    result: str | None
    error: str | None
    error_kind: str | None
    job_id: str | None
    attempts: int
    started_at: object
    finished_at: object
    run_requested_at: object
    queue_note: str | None


def rows(ids: Iterable[int]) -> dict[int, Row]:
    """The tasks' current state, fresh from the database."""
    ids = list(ids)
    found: dict[int, Row] = {}
    db.session.expire_all()
    for start in range(0, len(ids), 500):
        for r in db.session.execute(
            db.select(
                Task.id,
                Task.status,
                Task.result,
                Task.error,
                Task.error_kind,
                Task.job_id,
                Task.attempts,
                Task.started_at,
                Task.finished_at,
                Task.run_requested_at,
                Task.queue_note,
            ).where(Task.id.in_(ids[start : start + 500]))
        ).all():
            found[r[0]] = Row(*r)
    db.session.commit()
    return found


def count_final(ids) -> int:
    """How many of ``ids`` are in a final state."""
    return sum(1 for r in rows(ids).values() if r.status in FINAL_STATUSES)


@dataclass
class Scenario:
    """The tasks of one scenario, their simulator keys, and the figures it reports."""

    name: str
    app: object
    sim: object
    tmp_path: Path
    nodeid: str = ""
    workers: FaultWorkers | None = None
    keys: dict[int, str] = field(default_factory=dict)
    models: int = 0

    def start_workers(self, count: int = 2, **env) -> FaultWorkers:
        """Start ``count`` worker.py processes (fast timings unless ``env`` overrides them)."""
        if self.workers is None:
            self.workers = FaultWorkers(self.app, self.tmp_path, **{**FAST, **env})
        self.workers.start(count)
        return self.workers

    def model(self, **overrides) -> LLMModel:
        """Add a simulated model row (fast defaults; breaker effectively off unless asked)."""
        self.models += 1
        values = {
            "name": f"Fault sim {self.models}",
            "base_url": self.sim.url,
            "model_name": "sim-chat",
            "simulated": True,
            "max_concurrency": 8,
            "timeout_seconds": 10,
            "max_attempts": 3,
            "breaker_threshold": 1000,
            "breaker_cooldown_seconds": 5,
            **overrides,
        }
        model = LLMModel(**values)
        db.session.add(model)
        db.session.commit()
        return model

    def create(
        self,
        model: LLMModel,
        n: int,
        directive: str | Callable[[int], str] = "",
        *,
        creator_id: int | None = None,
        run: bool = False,
    ) -> list[int]:
        """Create ``n`` tasks through the service (queued only if ``run``), each with its own sim key."""
        from llmadmin.services import tasks as svc

        ids = []
        for i in range(n):
            key = f"k{len(self.keys)}"
            extra = directive(i) if callable(directive) else directive
            prompt = f"{self.name} task {i} [[sim: key={key}{', ' + extra if extra else ''}]]"
            task = svc.create_task(prompt=prompt, model_id=model.id, creator_id=creator_id, run=run)
            self.keys[task.id] = key
            ids.append(task.id)
        return ids

    def calls(self) -> dict[int, int]:
        """Endpoint calls made for each task (the simulator's per-key counter)."""
        per_key = self.sim.stats()["per_key"]
        return {task_id: per_key.get(key, 0) for task_id, key in self.keys.items()}

    def wait_final(self, ids, timeout: float) -> float | None:
        """Wait until every task is final; return the seconds it took, or None on timeout."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if count_final(ids) == len(ids):
                return time.monotonic() - started
            time.sleep(0.2)
        return None

    def wait_recovered(self, affected, baseline: dict[int, int], timeout: float) -> float | None:
        """Seconds until each affected task is called again (the endpoint sees a call beyond
        ``baseline``, the counts taken at the fault) or is final; None on timeout.

        A claim alone does not count: a claimed task may still wait for a concurrency slot.
        """
        started = time.monotonic()
        affected = list(affected)
        while time.monotonic() < started + timeout:
            current, calls = rows(affected), self.calls()
            if len(current) == len(affected) and all(
                r.status in FINAL_STATUSES or calls.get(r.id, 0) > baseline.get(r.id, 0)
                for r in current.values()
            ):
                return time.monotonic() - started
            time.sleep(0.1)
        return None

    def report(
        self,
        ids,
        *,
        recovery_s: float | None,
        expected_calls: int | Callable[[int], int] = 1,
        may_repeat: Iterable[int] = (),
        note: str = "",
        redis_client=None,
    ) -> Report:
        """Count lost, stuck, run twice and wrongly final tasks; record the row for the summary.

        A task "ran twice" when the endpoint saw more calls for it than ``expected_calls``
        (1, or the retries a fault explains); ``may_repeat`` names the tasks for which that
        is legitimate (their call was in flight when the worker died: at-least-once).
        """
        from llmadmin.queues import get_redis

        redis_client = redis_client or get_redis()
        current = rows(ids)
        calls = self.calls()
        lost = stuck = 0
        bad: list[str] = []
        twice: list[int] = []
        for task_id in ids:
            row = current.get(task_id)
            if row is None:
                lost += 1  # the row vanished
                continue
            if row.status not in FINAL_STATUSES:
                stuck += 1
                if _unreachable(row, redis_client):
                    lost += 1
            problem = final_problem(row)
            if problem:
                bad.append(f"#{task_id}: {problem}")
            allowed = expected_calls(task_id) if callable(expected_calls) else expected_calls
            if calls.get(task_id, 0) > allowed:
                twice.append(task_id)
        by_status: dict[str, int] = {}
        for row in current.values():
            by_status[row.status] = by_status.get(row.status, 0) + 1
        outcome = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        if bad:
            outcome += f" ({len(bad)} not a true final state)"
        result = Report(
            self.name,
            len(ids),
            lost,
            stuck,
            len(twice),
            None if recovery_s is None else round(recovery_s, 1),
            outcome,
            len(bad),
            note,
            nodeid=self.nodeid,
        )
        repeatable = set(may_repeat)
        unexplained = [t for t in twice if t not in repeatable]
        result.details = {
            "bad": bad[:10],
            "unexplained_twice": unexplained[:20],
            "calls": {t: calls.get(t) for t in unexplained[:20]},
        }
        REPORTS.append(result)
        return result


def _unreachable(row: Row, connection) -> bool:
    """A non-final task nothing will ever pick up: PENDING without a run request, or
    QUEUED/RUNNING under a job that is neither in Redis nor heartbeating."""
    if row.status == PENDING:
        return row.run_requested_at is None
    if connection is None or not row.job_id:
        return not row.job_id
    try:
        from rq.job import Job

        prefix = current_app.config["QUEUE_PREFIX"]
        return not (
            connection.exists(heartbeat_key(prefix, row.job_id))
            or Job.exists(row.job_id, connection=connection)
        )
    except (redis.RedisError, OSError):
        return False


def final_problem(row: Row) -> str | None:
    """Why a final row is not a *true* final state (None when it is, or is not final)."""
    if row.status == SUCCESS and not (row.result or "").strip():
        return "SUCCESS without a result"
    if row.status == SUCCESS and row.error:
        return f"SUCCESS with an error: {row.error}"
    if row.status == FAILURE and not (row.error or "").strip():
        return "FAILURE without an error message"
    if row.status == FAILURE and "database is locked" in (row.error or "").lower():
        return f"database error surfaced to the user: {row.error}"
    if row.status == FAILURE and row.error_kind == "unexpected":
        return f"an internal error became the task's outcome: {row.error}"
    if row.status == CANCELED and row.error_kind != "canceled":
        return f"CANCELED with kind {row.error_kind}"
    return None


class KnownBug(Exception):
    """A failure the suite documents as a bug (a test marks it ``xfail(raises=...)``).

    Raised only after the scenario's own checks passed, so a new failure of those checks
    still fails the run instead of hiding behind the known bug.
    """


class HeartbeatLost(KnownBug):
    """A live chunk's heartbeat expired while its loop was blocked."""


def assert_clean(
    report: Report, workers: FaultWorkers | None = None, *, twice: bool = True
) -> None:
    """The target: nothing lost or stuck, every row truly final, no unexplained second run."""
    logs = f"\n--- worker logs ---\n{workers.logs()}" if workers else ""
    assert report.lost == 0 and report.stuck == 0, f"{report}{logs}"
    assert report.bad_final == 0, f"{report.details['bad']}{logs}"
    if twice:
        assert_not_twice(report, workers)


def assert_not_twice(report: Report, workers: FaultWorkers | None = None) -> None:
    """No task was called more often than its fault explains."""
    logs = f"\n--- worker logs ---\n{workers.logs()}" if workers else ""
    assert not report.details["unexplained_twice"], f"run twice: {report.details}{logs}"
