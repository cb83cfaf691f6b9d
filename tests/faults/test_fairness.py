"""A failing or slow model never holds up another model's tasks, on one worker process.

Model A gets a backlog that (a) refuses connections, (b) hangs until its timeout,
(c) answers 429 with Retry-After, (d) answers slowly; model B (healthy) is submitted a
second later and must be done while A's backlog is still unfinished. Waits park their
tasks under scheduled RQ jobs; a Redis FLUSHALL must not lose parked tasks nor run them
before their time.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import pytest

from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, FINAL_STATUSES, QUEUED, SUCCESS
from llmadmin.services import tasks as svc
from tests.faults.harness import FAULT_TASKS, assert_clean, count_final, rows, wait_for

pytestmark = pytest.mark.slow

A_TASKS = max(16, min(FAULT_TASKS, 48))
B_TASKS = 16


@dataclass(frozen=True)
class Case:
    name: str
    directive: str | None  # None: the model's port refuses connections
    status: str  # A's final status
    calls: int  # endpoint calls per A task the fault explains
    model: dict = field(default_factory=dict)


CASES = [
    Case(
        "refuses connections",
        None,
        FAILURE,
        0,
        {"max_attempts": 2, "breaker_threshold": 5, "breaker_cooldown_seconds": 2},
    ),
    Case(
        "hangs until its timeout", "hang=1", FAILURE, 1, {"timeout_seconds": 3, "max_attempts": 1}
    ),
    Case("429 + Retry-After 3 s", "status=429, retry_after=3, fail_times=1", SUCCESS, 2),
    Case("answers in 4 s", "latency_ms=4000", SUCCESS, 1),
]


def _refusing_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now: connections are refused
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_failing_or_slow_model_does_not_hold_up_another(fault, case):
    fault.name = f"fairness: A {case.name}, B healthy"
    overrides = {} if case.directive else {"base_url": _refusing_url()}
    a = fault.model(**case.model, **overrides)
    b = fault.model()
    fault.start_workers(1, BREAKER_WAIT_SECONDS=6)
    a_ids = fault.create(a, A_TASKS, case.directive or "")
    b_ids = fault.create(b, B_TASKS)
    svc.run_tasks(a_ids)
    time.sleep(1)
    started = time.monotonic()
    svc.run_tasks(b_ids)
    wait_for(
        lambda: count_final(b_ids) == len(b_ids),
        60,
        f"B's tasks final\n{fault.workers.logs()}",
        0.05,
    )
    b_seconds = time.monotonic() - started
    a_open = len(a_ids) - count_final(a_ids)
    fault.wait_final(a_ids + b_ids, timeout=150)
    a_set = set(a_ids)
    report = fault.report(
        a_ids + b_ids,
        recovery_s=b_seconds,
        expected_calls=lambda t: case.calls if t in a_set else 1,
        note=f"B final {b_seconds:.1f} s after it was sent, with {a_open}/{len(a_ids)} "
        "of A's tasks unfinished",
    )
    assert_clean(report, fault.workers)
    current = rows(a_ids + b_ids)
    assert {current[i].status for i in b_ids} == {SUCCESS}
    assert a_open > 0, "B should not have waited for A's backlog"
    assert {current[i].status for i in a_ids} == {case.status}, [
        (r.id, r.status, r.error) for r in current.values()
    ][:5]


def test_parked_tasks_survive_a_flushall_and_keep_their_time(private_fault, private_redis):
    """Tasks parked for a Retry-After lose their scheduled job in a FLUSHALL: the reconciler
    re-sends them, still not before their time, and each is called exactly twice."""
    fault = private_fault
    fault.name = "parked tasks + Redis FLUSHALL"
    model = fault.model()
    workers = fault.start_workers(1)
    ids = fault.create(model, B_TASKS, "status=429, retry_after=6, fail_times=1")
    svc.run_tasks(ids)

    def parked():
        current = rows(ids).values()
        ok = all(
            r.status == QUEUED and r.queue_note and "Retry-After" in r.queue_note for r in current
        )
        return current if ok else None

    wait_for(parked, 30, f"tasks parked\n{workers.logs()}", 0.05)
    not_before = {r.id: _not_before(r.id) for r in rows(ids).values()}
    t0 = time.monotonic()
    private_redis.client().flushall()
    fault.wait_final(ids, timeout=120)
    report = fault.report(
        ids,
        recovery_s=time.monotonic() - t0,
        expected_calls=2,
        redis_client=private_redis.client(),
        note="parked for Retry-After 6 s, then FLUSHALL",
    )
    assert_clean(report, workers)
    current = rows(ids)
    assert {r.status for r in current.values()} == {SUCCESS}
    assert all(current[i].finished_at >= not_before[i] for i in ids), "ran before its time"
    assert all(r.status in FINAL_STATUSES for r in current.values())


def _not_before(task_id: int):
    value = db.session.get(Task, task_id).not_before
    db.session.commit()
    return value
