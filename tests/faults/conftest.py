"""Fixtures of the fault-injection suite and the summary table printed at the end of the run.

``fault`` runs a scenario against the session's test database and Redis (the embedded
server, or REDIS_URL); ``private_fault`` against a redis-server of our own that the
scenario may kill, restart or flush (never the machine's Redis).
"""

from __future__ import annotations

import json
import os

import pytest

from llmadmin.extensions import db
from llmadmin.llm.simulator import SimulatorServer
from tests.conftest import _empty_tables, make_test_app
from tests.faults.harness import FAULT_TASKS, REPORTS, PrivateRedis, Scenario, summary_lines


@pytest.fixture
def simulator():
    with SimulatorServer(latency_ms=0) as server:
        yield server


def _scenario(request, app, simulator, tmp_path):
    scenario = Scenario(
        name=request.node.name,
        app=app,
        sim=simulator,
        tmp_path=tmp_path,
        nodeid=request.node.nodeid,
    )
    yield scenario
    if scenario.workers is not None:
        scenario.workers.stop_all()


@pytest.fixture
def fault(request, app, simulator, tmp_path):
    """A scenario on the test database and the session's Redis."""
    yield from _scenario(request, app, simulator, tmp_path)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "private-redis").start()
    yield server
    server.kill()


@pytest.fixture
def private_app(migrated, private_redis):
    """The test app, but with REDIS_URL pointing at the private redis-server."""
    app = make_test_app(migrated, private_redis.url)
    with app.app_context():
        _empty_tables()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def private_fault(request, private_app, simulator, tmp_path):
    """A scenario whose Redis may be killed, restarted or flushed."""
    yield from _scenario(request, private_app, simulator, tmp_path)


# --- the summary table ------------------------------------------------------------------

_VERDICTS: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            verdict = "xfail" if report.skipped else "XPASS"
        else:
            verdict = report.outcome
        _VERDICTS[report.nodeid] = verdict


def _backend() -> str:
    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
    queue = "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded Redis"
    return f"{database} + {queue}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not REPORTS:
        return
    for report in REPORTS:
        report.verdict = _VERDICTS.get(report.nodeid, "?")
    terminalreporter.section(f"fault injection: FAULT_TASKS={FAULT_TASKS}, {_backend()}")
    for line in summary_lines(REPORTS):
        terminalreporter.write_line(line)
    target = os.environ.get("FAULT_REPORT")
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "backend": _backend(),
                    "fault_tasks": FAULT_TASKS,
                    "rows": [r.as_dict() for r in REPORTS],
                },
                handle,
                indent=2,
            )
