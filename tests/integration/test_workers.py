"""End to end with real worker processes, real Redis and the simulated endpoint over sockets."""

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import CANCELED, SUCCESS
from llmadmin.services import tasks as svc
from tests.integration.conftest import statuses, wait_until


def _model(simulator, **kw) -> LLMModel:
    model = LLMModel(
        name="Simulated", base_url=simulator.url, model_name="sim-chat", simulated=True, **kw
    )
    db.session.add(model)
    db.session.commit()
    return model


def test_single_task_runs_end_to_end(app, simulator, workers):
    model = _model(simulator, max_concurrency=4, stream=True)
    workers.start(1)
    task = svc.create_task(prompt="Say hello", model_id=model.id, creator_id=None)
    wait_until(
        lambda: statuses([task.id]).get(SUCCESS) == 1, 30, message=f"success\n{workers.logs()}"
    )
    task = db.session.get(Task, task.id)
    db.session.refresh(task)
    assert task.result.startswith("[simulated]") and "Say hello" in task.result
    assert task.prompt_tokens and task.completion_tokens and task.latency_ms > 0


def test_limits_hold_across_two_worker_processes(app, simulator, workers):
    """Cap 3 and 12 requests/minute for two workers together: the endpoint counts."""
    model = _model(simulator, max_concurrency=3, rpm_limit=12)
    app.config["TASK_CHUNK_FACTOR"] = 1  # 3 tasks per job, so both workers get work
    workers.start(2)
    ids = [
        svc.create_task(prompt=f"task {i}", model_id=model.id, creator_id=None, run=False).id
        for i in range(24)
    ]
    svc.run_tasks(ids)
    wait_until(
        lambda: statuses(ids).get(SUCCESS, 0) >= 12, 60, message=f"12 successes\n{workers.logs()}"
    )
    # The 13th request must wait for the minute window: give the workers time to (wrongly) send it.
    import time

    time.sleep(2.0)
    stats = simulator.stats()
    assert stats["total_requests"] == 12 and stats["max_requests_per_60s"] == 12, stats
    assert stats["max_in_flight"] <= 3, stats
    assert statuses(ids).get(SUCCESS) == 12
    # Cancel what is left: queued and waiting tasks end CANCELED, nothing stays running.
    svc.cancel_tasks(ids)
    wait_until(lambda: statuses(ids) == {SUCCESS: 12, CANCELED: 12}, 20, message="final states")
    assert simulator.stats()["total_requests"] == 12


def test_connection_test_runs_through_the_worker(app, simulator, workers):
    from llmadmin.services.llm_models import request_connection_test

    good = _model(simulator, max_concurrency=2)
    bad = LLMModel(name="Wrong model", base_url=simulator.url, model_name="gpt-nonexistent")
    db.session.add(bad)
    db.session.commit()
    workers.start(1)
    assert request_connection_test([good.id, bad.id]) == 2

    def tested():
        db.session.expire_all()
        rows = [db.session.get(LLMModel, good.id), db.session.get(LLMModel, bad.id)]
        db.session.commit()
        return all(r.last_test_at for r in rows) and rows

    good_row, bad_row = wait_until(tested, 30, message=f"connection tests\n{workers.logs()}")
    assert good_row.last_test_status == 200 and good_row.last_test_error is None
    assert good_row.last_test_latency_ms > 0
    assert bad_row.last_test_status == 404 and "gpt-nonexistent" in bad_row.last_test_error


def test_an_idle_worker_stops_at_once_on_sigterm(app, workers):
    """work_until_stopped must tell a requested stop from a Redis failure and not start again."""
    import signal
    import time

    from rq import Worker

    from llmadmin.queues import get_redis

    (proc,) = workers.start(1)
    wait_until(
        lambda: Worker.count(connection=get_redis()) == 1, 30, message="the worker registered"
    )
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    # A worker that took the stop for a Redis failure would start a new RQ worker and never
    # exit; the timeout only keeps that case from hanging the suite.
    assert proc.wait(timeout=30) == 0, workers.logs()
    assert Worker.count(connection=get_redis()) == 0, "it registered its death"
    logs = workers.logs()
    assert "lost Redis" not in logs and "Redis unreachable" not in logs, logs
