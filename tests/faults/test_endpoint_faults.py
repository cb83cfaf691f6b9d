"""The endpoint misbehaves ([[sim: ...]] directives): every task still ends in a true final state.

Recoverable faults (``fail_times``) must end SUCCESS after the retries they explain;
permanent ones FAILURE with a message naming the problem. Each case gets its own model,
with the breaker out of the way (threshold 1000) so retries are what is measured; the
breaker with its defaults has a case of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from llmadmin.models.task import FAILURE, SUCCESS
from llmadmin.services import tasks as svc
from tests.faults.harness import FAULT_TASKS, assert_clean, rows, wait_for

pytestmark = pytest.mark.slow

N = max(6, FAULT_TASKS // 6)
STORM = (500, 502, 503)


@dataclass(frozen=True)
class Case:
    name: str
    directive: object  # str, or a function of the task's index
    status: str
    calls: int  # endpoint calls per task the fault explains
    error: str | None = None  # expected in every FAILURE message
    model: dict = field(default_factory=dict)


CASES = [
    Case("429 + Retry-After 1 s, then OK", "status=429, retry_after=1, fail_times=1", SUCCESS, 2),
    Case(
        "500/502/503 storm, retries succeed",
        lambda i: f"status={STORM[i % 3]}, fail_times=2",
        SUCCESS,
        3,
    ),
    Case(
        "500/502/503 storm, never recovers",
        lambda i: f"status={STORM[i % 3]}",
        FAILURE,
        3,
        "server error (HTTP 50",
    ),
    Case(
        "hang before the first byte",
        "hang=1",
        FAILURE,
        2,
        "within 1 seconds",
        {"timeout_seconds": 1, "max_attempts": 2},
    ),
    Case(
        "trickle (1 byte / 50 ms), then OK",
        "trickle=1, fail_times=1",
        SUCCESS,
        2,
        None,
        {"timeout_seconds": 2},
    ),
    Case("malformed JSON, then OK", "malformed=1, fail_times=1", SUCCESS, 2),
    Case("malformed JSON every time", "malformed=1", FAILURE, 3, "malformed JSON"),
    Case("HTML page instead of JSON", "html=1", FAILURE, 1, "HTML page"),
    Case("SSE stream cut, then OK", "cut=1, fail_times=1", SUCCESS, 2, None, {"stream": True}),
    Case("SSE stream cut every time", "cut=1", FAILURE, 3, "cut off", {"stream": True}),
    Case(
        "error event in a 200 stream, then OK",
        "stream_error=1, fail_times=1",
        SUCCESS,
        2,
        None,
        {"stream": True},
    ),
]


def _run_case(fault, case: Case, n: int = N) -> tuple[list[int], float | None]:
    fault.name = f"endpoint: {case.name}"
    model = fault.model(**case.model)
    fault.start_workers(2)
    ids = fault.create(model, n, case.directive)
    started = time.monotonic()
    svc.run_tasks(ids)
    fault.wait_final(ids, timeout=120)
    return ids, time.monotonic() - started


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_endpoint_fault_ends_in_a_true_final_state(fault, case):
    ids, elapsed = _run_case(fault, case)
    report = fault.report(
        ids,
        recovery_s=elapsed,
        expected_calls=case.calls,
        note=f"{case.calls} call(s) per task explained",
    )
    assert_clean(report, fault.workers)
    current = rows(ids).values()
    assert {r.status for r in current} == {case.status}, [
        (r.id, r.status, r.error) for r in current
    ][:5]
    calls = fault.calls()
    for row in current:
        if case.status == SUCCESS:
            assert row.result.startswith("[simulated]"), row
            assert calls[row.id] == case.calls, (row, calls[row.id])
        else:
            assert case.error in row.error and row.error_kind != "unexpected", row


def test_retry_after_is_honoured(fault):
    """A 429 with Retry-After 2 s is called again only after the server's wait.

    Beside each such task runs one that gets a 429 without Retry-After, retried after the
    ordinary first backoff (at most 0.5 s): all of those must be called again while every
    task that was told to wait still has had one call only.
    """
    fault.name = "endpoint: 429 + Retry-After 2 s"
    model = fault.model()  # cap 8: all eight tasks are called at once
    fault.start_workers(2)
    told = fault.create(model, 4, "status=429, retry_after=2, fail_times=1")
    untold = fault.create(model, 4, "status=429, fail_times=1")
    ids = told + untold
    started = time.monotonic()
    svc.run_tasks(ids)

    def untold_called_again():
        calls = fault.calls()
        return calls if all(calls[i] >= 2 for i in untold) else None

    calls = wait_for(untold_called_again, 60, "the 429s without Retry-After called again", 0.02)
    assert [calls[i] for i in told] == [1] * len(told), calls
    fault.wait_final(ids, timeout=120)
    report = fault.report(
        ids,
        recovery_s=time.monotonic() - started,
        expected_calls=2,
        note="the ones told to wait were called again last",
    )
    assert_clean(report, fault.workers)
    current = rows(ids).values()
    assert {r.status for r in current} == {SUCCESS}, [(r.id, r.status, r.error) for r in current]
    assert all(count == 2 for count in fault.calls().values()), fault.calls()


def test_outage_with_the_default_breaker_pauses_the_calls_then_succeeds(fault):
    """Every call fails for 3 s (a real outage, not a per-task script), breaker 5 failures / 5 s.

    The breaker stops calling the model; the tasks wait for it without spending attempts
    (BREAKER_WAIT_SECONDS) and all succeed once the probe finds the model healthy again.
    """
    fault.name = "endpoint: 3 s outage (503), breaker 5 failures / 5 s"
    model = fault.model(breaker_threshold=5, breaker_cooldown_seconds=5)
    fault.start_workers(2)
    ids = fault.create(model, N)
    fault.sim.configure(status=503)
    started = time.monotonic()
    svc.run_tasks(ids)
    time.sleep(3.0)
    calls_during_outage = sum(fault.calls().values())
    fault.sim.configure(status=None)
    fault.wait_final(ids, timeout=120)
    elapsed = time.monotonic() - started
    report = fault.report(
        ids,
        recovery_s=elapsed,
        expected_calls=2,
        note=f"{calls_during_outage} calls in the 3 s outage for {len(ids)} tasks",
    )
    assert_clean(report, fault.workers)
    current = rows(ids).values()
    assert {r.status for r in current} == {SUCCESS}, [(r.id, r.status, r.error) for r in current]
    assert calls_during_outage <= len(ids) + 2, "the open breaker should have stopped the calls"
