"""Rows disappear under running work: a model, a person, a task cancelled mid-call."""

from __future__ import annotations

import time

import pytest

from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import CANCELED, FAILURE, RUNNING, SUCCESS
from llmadmin.services import llm_models as model_service
from llmadmin.services import people as people_service
from llmadmin.services import tasks as svc
from tests.faults.harness import FAULT_TASKS, assert_clean, count_final, rows, wait_for

pytestmark = pytest.mark.slow


def _busy(fault, ids, workers, finished: int):
    wait_for(
        lambda: (
            count_final(ids) >= finished and any(r.status == RUNNING for r in rows(ids).values())
        ),
        60,
        f"work under way\n{workers.logs()}",
        interval=0.05,
    )


def test_model_deleted_while_its_tasks_are_queued_and_running(app, fault):
    fault.name = "model deleted mid-run"
    app.config["TASK_CHUNK_FACTOR"] = 1  # many small jobs: some running, most still queued
    fault.sim.configure(latency_ms=500)
    model = fault.model(max_concurrency=4)
    workers = fault.start_workers(2, TASK_CHUNK_FACTOR=1)
    ids = fault.create(model, FAULT_TASKS)
    workers.wait_registered(2)
    svc.run_tasks(ids)
    _busy(fault, ids, workers, finished=4)

    calls_at_delete = fault.sim.stats()["total_requests"]
    deleted, kept = model_service.delete_models([model.id])
    assert (deleted, kept) == (1, len(ids))
    elapsed = fault.wait_final(ids, timeout=60)
    calls_after = fault.sim.stats()["total_requests"] - calls_at_delete
    report = fault.report(
        ids, recovery_s=elapsed, note=f"{calls_after} call(s) started after the delete (cap 4)"
    )
    assert_clean(report, workers)
    for row in rows(ids).values():
        assert row.status in (SUCCESS, FAILURE), row
        if row.status == FAILURE:
            assert row.error_kind == "model_deleted" and "model was deleted" in row.error, row
    # A deleted model is not called again beyond the calls its running chunks had claimed.
    assert calls_after <= 2 * model.max_concurrency, calls_after


def test_person_deleted_while_their_tasks_run(app, fault):
    fault.name = "person deleted mid-run"
    fault.sim.configure(latency_ms=300)
    person = people_service.create_user("gone@example.com", "gone-password", name="Gone Soon")
    model = fault.model(max_concurrency=8)
    workers = fault.start_workers(2)
    ids = fault.create(model, FAULT_TASKS, creator_id=person.id)
    workers.wait_registered(2)
    svc.run_tasks(ids)
    _busy(fault, ids, workers, finished=len(ids) // 5)

    t0 = time.monotonic()
    counts = people_service.delete_person(person.id)
    assert counts["tasks"] == len(ids)
    fault.wait_final(ids, timeout=60)
    report = fault.report(ids, recovery_s=time.monotonic() - t0, note="creator set to nobody")
    assert_clean(report, workers)
    db.session.expire_all()
    creators = (
        db.session.execute(db.select(Task.creator_id).where(Task.id.in_(ids))).scalars().all()
    )
    db.session.commit()
    assert set(creators) == {None}
    assert {r.status for r in rows(ids).values()} == {SUCCESS}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_task_cancelled_while_running_gets_no_result_afterwards(fault, stream):
    """Cancel three of six 3-second calls: they stay CANCELED and nothing is written afterwards."""
    fault.name = f"task cancelled mid-call ({'stream' if stream else 'plain'})"
    model = fault.model(max_concurrency=8, stream=stream)
    workers = fault.start_workers(1)
    # Streams send a word every 300 ms, so partial text is saved while the call runs.
    directive = "interval_ms=300" if stream else "latency_ms=3000"
    ids = fault.create(model, 6, directive)
    workers.wait_registered(1)
    svc.run_tasks(ids)
    wait_for(
        lambda: fault.sim.stats()["in_flight"] == len(ids), 30, f"calls in flight\n{workers.logs()}"
    )
    time.sleep(1.5)

    victims, others = ids[:3], ids[3:]
    assert svc.cancel_tasks(victims).changed == 3
    at_cancel = {r.id: r.result for r in rows(victims).values()}
    fault.wait_final(others, timeout=30)
    time.sleep(2.0)  # past the moment the cancelled calls would have finished
    report = fault.report(ids, recovery_s=None, note="3 of 6 cancelled 1.5 s into their calls")
    assert_clean(report, workers)
    current = rows(ids)
    for task_id in victims:
        row = current[task_id]
        assert row.status == CANCELED and row.error == "Canceled by a person.", row
        assert row.result == at_cancel[task_id], f"written after the cancel: {row}"
        if not stream:
            assert row.result is None, row
    assert all(current[t].status == SUCCESS for t in others)
    if not stream:  # the calls were stopped, not left to run to the end (499: client went away)
        assert fault.sim.stats()["by_status"].get("499", 0) == 3
