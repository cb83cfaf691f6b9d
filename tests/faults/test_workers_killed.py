"""Workers die (kill -9 one, kill -9 all) or are told to stop (SIGTERM) in the middle of work."""

from __future__ import annotations

import signal
import time

import pytest
from flask import current_app

from llmadmin.engine.limits import keys_for
from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import RUNNING, SUCCESS
from llmadmin.queues import get_redis
from llmadmin.services import tasks as svc
from tests.faults.harness import (
    DEFAULTS,
    FAST,
    FAULT_TASKS,
    assert_clean,
    count_final,
    rows,
    wait_for,
)

pytestmark = pytest.mark.slow


def _start_batch(app, fault, timings: dict, latency_ms: int = 300):
    """Two workers and FAULT_TASKS tasks in one-wave chunks, so both workers hold jobs."""
    app.config["TASK_CHUNK_FACTOR"] = 1
    fault.sim.configure(latency_ms=latency_ms)
    model = fault.model(max_concurrency=8)
    ids = fault.create(model, FAULT_TASKS)
    workers = fault.start_workers(2, **timings, TASK_CHUNK_FACTOR=1)
    workers.wait_registered(2)
    svc.run_tasks(ids)
    return workers, ids


def _wait_busy(fault, workers, ids, *, calling: int = 2):
    """Wait until a fifth of the work is done and every worker has ``calling`` calls in flight.

    A call is in flight when the endpoint has seen it and the task is still RUNNING. With
    calls on both workers the victim holds only part of the model's cap (see the kill-all
    test for what happens when it holds all of it).
    """

    def busy():
        if count_final(ids) < len(ids) // 5:
            return False
        calls, current = fault.calls(), rows(ids).values()
        for proc in workers.procs:
            jobs = workers.current_jobs(proc)
            if (
                not jobs
                or sum(
                    1
                    for r in current
                    if r.job_id in jobs and r.status == RUNNING and calls.get(r.id)
                )
                < calling
            ):
                return False
        return True

    wait_for(busy, 60, f"both workers calling\n{workers.logs()}", interval=0.05)


def _interrupted(workers, victims, ids) -> tuple[set[str], set[int], set[int]]:
    """After the kill: the victims' jobs and the (unfinished, in flight) tasks of those jobs."""
    jobs = set().union(*(workers.current_jobs(proc) for proc in victims))
    current = rows(ids).values()
    affected = {r.id for r in current if r.job_id in jobs and r.status in ("QUEUED", RUNNING)}
    in_flight = {r.id for r in current if r.job_id in jobs and r.status == RUNNING}
    return jobs, affected, in_flight


def _assert_taken_over(dead_jobs, affected, in_flight, report) -> None:
    """Every interrupted task was finished under a live job; the ones the dead had claimed
    were re-queued and claimed again (not failed as "worker lost")."""
    current = rows(affected)
    assert affected and dead_jobs, report
    for task_id in affected:
        row = current[task_id]
        assert row.status == SUCCESS and row.job_id not in dead_jobs, (row, report)
        if task_id in in_flight:
            assert row.attempts >= 2, (row, report)


def _lease_expiries_ms(model_id: int) -> list[int]:
    """How far in the future (ms, Redis' clock) each concurrency lease of the model expires."""
    connection = get_redis()
    key = keys_for(current_app.config["QUEUE_PREFIX"], model_id)[0]
    seconds, micros = connection.time()
    now = seconds * 1000 + micros // 1000
    return [int(score) - now for _, score in connection.zrange(key, 0, -1, withscores=True)]


@pytest.mark.parametrize("timing", ["fast", "defaults"])
def test_kill_one_worker_in_the_middle(app, fault, timing):
    fault.name = f"kill -9 one worker ({timing} timings)"
    timings = FAST if timing == "fast" else DEFAULTS
    workers, ids = _start_batch(app, fault, timings)
    victim = workers.procs[0]
    _wait_busy(fault, workers, ids)

    t0 = time.monotonic()
    workers.kill9(victim)
    baseline = fault.calls()
    dead_jobs, affected, in_flight = _interrupted(workers, [victim], ids)
    recovery = fault.wait_recovered(affected, baseline, timeout=90)
    fault.wait_final(ids, timeout=120)
    all_final = time.monotonic() - t0

    report = fault.report(
        ids,
        recovery_s=recovery,
        may_repeat=in_flight,
        note=f"{len(affected)} interrupted ({len(in_flight)} in flight); "
        f"all final {all_final:.1f} s after the kill",
    )
    # Calls in flight at the kill are legitimately made again (at-least-once); nothing else is.
    assert_clean(report, workers)
    assert recovery is not None, f"interrupted tasks were never called again: {report}"
    _assert_taken_over(dead_jobs, affected, in_flight, report)
    assert workers.live() == [workers.procs[1]], "the other worker should still be running"


def test_kill_all_workers_then_start_new_ones(app, fault):
    """The dead held the model's whole cap: their leases must not outlive their heartbeat."""
    fault.name = "kill -9 all workers, start new ones"
    workers, ids = _start_batch(app, fault, FAST)
    model_id = db.session.get(Task, ids[0]).model_id
    victims = list(workers.procs)
    _wait_busy(fault, workers, ids, calling=1)
    # Kill while the model's whole cap is in use (as it is under any backlog).
    wait_for(lambda: fault.sim.stats()["in_flight"] >= 8, 30, "the cap in use", interval=0.02)

    t0 = time.monotonic()
    for proc in victims:
        workers.kill9(proc)
    leases_left_ms = _lease_expiries_ms(model_id)
    baseline = fault.calls()
    dead_jobs, affected, in_flight = _interrupted(workers, victims, ids)
    time.sleep(1.0)
    workers.start(2)
    recovery = fault.wait_recovered(affected, baseline, timeout=90)
    fault.wait_final(ids, timeout=120)
    all_final = time.monotonic() - t0

    report = fault.report(
        ids,
        recovery_s=recovery,
        may_repeat=in_flight,
        note=f"{len(affected)} interrupted ({len(in_flight)} in flight); new workers 1 s later; "
        f"all final {all_final:.1f} s after the kill",
    )
    assert_clean(report, workers)
    # A dead worker's leases run out with its heartbeat (HEARTBEAT_TTL_SECONDS), not after a
    # call's timeout: that is what keeps its slots from stalling the model.
    ttl_ms = int(workers.env()["HEARTBEAT_TTL_SECONDS"]) * 1000
    assert leases_left_ms and max(leases_left_ms) <= ttl_ms, (leases_left_ms, ttl_ms)
    assert recovery is not None, f"the new workers never called the interrupted tasks: {report}"
    _assert_taken_over(dead_jobs, affected, in_flight, report)


def test_sigterm_in_a_long_chunk_drains_and_hands_back(app, fault):
    """Latency 1 s, cap 4: one chunk of 32; the worker exits in time, another finishes the rest."""
    fault.name = "SIGTERM in a long chunk (graceful)"
    fault.sim.configure(latency_ms=1000)
    model = fault.model(max_concurrency=4)
    ids = fault.create(model, min(FAULT_TASKS, 32))  # one chunk: cap 4 x TASK_CHUNK_FACTOR 8
    workers = fault.start_workers(1)
    workers.wait_registered(1)
    svc.run_tasks(ids)
    victim = workers.procs[0]
    wait_for(
        lambda: count_final(ids) >= 4 and workers.current_jobs(victim),
        60,
        f"first wave done\n{workers.logs()}",
    )
    (job,) = workers.current_jobs(victim)
    workers.start(1)  # the one that takes over (idle until tasks come back)
    workers.wait_registered(2)

    drain = int(workers.env()["WORKER_DRAIN_SECONDS"])
    calls = fault.calls()
    in_flight = {
        r.id for r in rows(ids).values() if r.job_id == job and r.status == RUNNING and calls[r.id]
    }
    started = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    exit_code = victim.wait(timeout=drain + 60)  # a bound against hanging, not a target
    exit_s = time.monotonic() - started
    left_running = [r.id for r in rows(ids).values() if r.job_id == job and r.status == RUNNING]
    all_final = fault.wait_final(ids, timeout=90)
    taken_over = [r.id for r in rows(ids).values() if r.job_id != job]

    report = fault.report(
        ids,
        recovery_s=exit_s,
        note=f"worker exited {exit_s:.1f} s after SIGTERM (drain {drain} s); "
        f"{len(left_running)} left RUNNING; {len(taken_over)} handed back and "
        f"finished by the other worker {all_final and round(all_final, 1)} s later",
    )
    assert exit_code == 0, f"the worker did not stop gracefully\n{workers.logs()}"
    assert "shutdown: finishing" in (workers.tmp_path / "worker-0.log").read_text(), (
        f"the chunk did not drain\n{workers.logs()}"
    )
    assert left_running == [], report
    assert_clean(report, workers)  # no call was cut and made again
    final = rows(ids)
    # Calls in flight at the SIGTERM were let finish by the victim, the rest handed back.
    assert in_flight and all(
        final[i].status == SUCCESS and final[i].job_id == job for i in in_flight
    ), (in_flight, report)
    assert taken_over and {r.status for r in final.values()} == {SUCCESS}, report
