"""Redis restarted empty, flushed, or down while tasks are created (our own redis-server).

The private server has no persistence, so a restart loses every queue, lease and
heartbeat: the worst case the reconciler and the outbox must repair.
"""

from __future__ import annotations

import time

import pytest

from llmadmin.engine.dispatch import WAITING_NOTE
from llmadmin.models.task import FINAL_STATUSES, PENDING
from llmadmin.services import tasks as svc
from tests.faults.harness import (
    FAST,
    FAULT_TASKS,
    assert_clean,
    count_final,
    rows,
    wait_for,
)
from tests.faults.test_workers_killed import _start_batch

pytestmark = pytest.mark.slow


def _unfinished(ids) -> set[int]:
    return {r.id for r in rows(ids).values() if r.status not in FINAL_STATUSES}


def _in_the_middle(workers, ids) -> None:
    wait_for(
        lambda: count_final(ids) >= len(ids) // 4,
        60,
        f"a quarter done\n{workers.logs()}",
        interval=0.05,
    )


def test_redis_restarted_empty_in_the_middle(private_app, private_fault, private_redis):
    fault = private_fault
    fault.name = "Redis kill -9 + restart (empty)"
    workers, ids = _start_batch(private_app, fault, FAST)
    _in_the_middle(workers, ids)

    affected = _unfinished(ids)
    private_redis.kill()
    time.sleep(2.0)
    private_redis.start()
    baseline, t0 = fault.calls(), time.monotonic()
    recovery = fault.wait_recovered(affected, baseline, timeout=90)
    fault.wait_final(ids, timeout=120)
    report = fault.report(
        ids,
        recovery_s=recovery,
        may_repeat=affected,
        redis_client=private_redis.client(),
        note=f"down 2 s; {len(affected)} unfinished at the kill; all final "
        f"{time.monotonic() - t0:.1f} s after Redis came back",
    )
    assert_clean(report, workers)
    assert len(workers.live()) == 2, f"a worker died with Redis\n{workers.logs()}"


def test_redis_blip_during_long_calls_keeps_every_answer(private_app, private_fault, private_redis):
    fault = private_fault
    fault.name = "Redis blip (2.5 s) during long calls"
    fault.sim.configure(latency_ms=5000)
    model = fault.model(max_concurrency=8)
    ids = fault.create(model, 8)
    workers = fault.start_workers(2)
    workers.wait_registered(2)
    svc.run_tasks(ids)
    wait_for(
        lambda: fault.sim.stats()["in_flight"] == len(ids), 30, f"calls in flight\n{workers.logs()}"
    )

    private_redis.kill()
    time.sleep(2.5)
    private_redis.start()
    t0 = time.monotonic()
    fault.wait_final(ids, timeout=60)
    report = fault.report(
        ids,
        recovery_s=time.monotonic() - t0,
        redis_client=private_redis.client(),
        note="calls take 5 s; Redis down 2.5 s in the middle of them",
    )
    assert_clean(report, workers)


def test_flushall_in_the_middle(private_app, private_fault, private_redis):
    fault = private_fault
    fault.name = "Redis FLUSHALL"
    workers, ids = _start_batch(private_app, fault, FAST)
    _in_the_middle(workers, ids)

    affected = _unfinished(ids)
    baseline, t0 = fault.calls(), time.monotonic()
    private_redis.client().flushall()
    recovery = fault.wait_recovered(affected, baseline, timeout=90)
    fault.wait_final(ids, timeout=120)
    # The flush deletes the chunks' heartbeats too: a running task may be re-queued once.
    report = fault.report(
        ids,
        recovery_s=recovery,
        may_repeat=affected,
        redis_client=private_redis.client(),
        note=f"{len(affected)} unfinished at the flush; all final "
        f"{time.monotonic() - t0:.1f} s after it",
    )
    assert_clean(report, workers)
    assert len(workers.live()) == 2, f"a worker died\n{workers.logs()}"


def test_tasks_created_while_redis_is_down_run_when_it_returns(
    private_app, private_fault, private_redis
):
    fault = private_fault
    fault.name = "Redis down while tasks are created"
    model = fault.model(max_concurrency=8)
    workers = fault.start_workers(2)
    workers.wait_registered(2)
    private_redis.kill()

    ids = fault.create(model, FAULT_TASKS, run=True)
    waiting = rows(ids).values()
    assert all(
        r.status == PENDING and r.queue_note == WAITING_NOTE and r.run_requested_at for r in waiting
    ), [(r.id, r.status, r.queue_note) for r in waiting][:5]
    time.sleep(3.0)  # the workers' housekeeping keeps failing to reach Redis meanwhile
    assert all(r.status == PENDING for r in rows(ids).values())

    private_redis.start()
    baseline, t0 = fault.calls(), time.monotonic()
    recovery = fault.wait_recovered(ids, baseline, timeout=90)
    fault.wait_final(ids, timeout=120)
    report = fault.report(
        ids,
        recovery_s=recovery,
        redis_client=private_redis.client(),
        note=f"{len(ids)} PENDING with the queue note; all final "
        f"{time.monotonic() - t0:.1f} s after Redis started, no manual step",
    )
    assert_clean(report, workers)
    assert {r.queue_note for r in rows(ids).values()} == {None}, "the waiting note was not cleared"
    assert len(workers.live()) == 2, f"a worker died while Redis was down\n{workers.logs()}"


@pytest.mark.parametrize("how", ["flushall", "restart"])
def test_healthz_sees_the_workers_after_redis_lost_its_data(
    private_app, private_fault, private_redis, how
):
    workers = private_fault.start_workers(2)
    workers.wait_registered(2)
    if how == "flushall":
        private_redis.client().flushall()
    else:
        private_redis.restart()
    client = private_app.test_client()
    time.sleep(3.0)  # several worker heartbeats and housekeeping passes
    body = wait_for(
        lambda: (r := client.get("/healthz")).status_code == 200 and r.get_json(),
        5,
        f"/healthz ok again: {client.get('/healthz').get_json()}",
    )
    assert body["redis"]["live_workers"] == 2, body
