"""At-least-once delivery: the same execute_tasks(job_id, ids) delivered twice, then once more."""

from __future__ import annotations

import math
import time

import pytest
from rq.job import Job

from llmadmin.jobs.tasks import execute_tasks
from llmadmin.models.task import SUCCESS
from llmadmin.queues import get_queue, get_redis
from llmadmin.services import tasks as svc
from tests.faults.harness import FAULT_TASKS, assert_clean, rows, wait_for

pytestmark = pytest.mark.slow


def _finished(job: Job) -> dict:
    wait_for(
        lambda: job.get_status(refresh=True) in ("finished", "failed"), 60, f"job {job.id} done"
    )
    assert job.get_status() == "finished", job.latest_result()
    return job.return_value()


def test_job_delivered_twice_writes_once_and_calls_once(app, fault):
    fault.name = "job delivered twice (concurrently)"
    fault.sim.configure(latency_ms=300)
    model = fault.model(max_concurrency=8)
    ids = fault.create(model, FAULT_TASKS)
    app.config["TASK_CHUNK_FACTOR"] = math.ceil(len(ids) / model.max_concurrency)  # one job
    svc.run_tasks(ids)
    (job_id,) = {r.job_id for r in rows(ids).values()}
    queue = get_queue("llm")
    first = Job.fetch(job_id, connection=get_redis())
    second = queue.enqueue(execute_tasks, job_id, ids, job_timeout=600, result_ttl=3600)
    workers = fault.start_workers(2)  # both deliveries are waiting: each worker takes one

    elapsed = fault.wait_final(ids, timeout=120)
    results = [_finished(first), _finished(second)]
    report = fault.report(
        ids, recovery_s=elapsed, note="both deliveries handed the chunk to their worker's engine"
    )
    assert_clean(report, workers)
    assert all(r["handed_to_engine"] for r in results), results
    assert all(r.status == SUCCESS and r.attempts == 1 for r in rows(ids).values())
    assert set(fault.calls().values()) == {1}

    late = queue.enqueue(execute_tasks, job_id, ids, job_timeout=600, result_ttl=3600)
    _finished(late)
    time.sleep(1)  # the engine finds nothing of the chunk left to claim
    assert all(r.status == SUCCESS and r.attempts == 1 for r in rows(ids).values())
    assert set(fault.calls().values()) == {1}, "a late third delivery called the endpoint again"
