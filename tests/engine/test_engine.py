"""The worker's engine: chunks of several models run side by side in one process, and a
model whose calls hang never holds up another model's tasks."""

import asyncio
import json
import time

import httpx
import pytest

from llmadmin.engine import executor
from llmadmin.engine.chunk_rows import prepare_chunk
from llmadmin.engine.engine import Engine, current_engine
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import PENDING, QUEUED, RUNNING, SUCCESS
from llmadmin.services import tasks as svc
from tests.engine.test_executor import completion


@pytest.fixture
def engine_factory(app):
    started = []

    def start(handler) -> Engine:
        engine = Engine(app, transport=httpx.MockTransport(handler)).start()
        started.append(engine)
        return engine

    yield start
    app.config["WORKER_DRAIN_SECONDS"] = 0
    for engine in started:
        engine.stop(timeout=10)
    executor.DRAIN.clear()


def _tasks(model, n, word):
    ids = [
        svc.create_task(prompt=f"{word} {i}", model_id=model.id, creator_id=None, run=False).id
        for i in range(n)
    ]
    svc.run_tasks(ids)
    return ids


def _submit(engine, ids):
    chunks: dict[str, list[int]] = {}
    for job_id, task_id in db.session.execute(
        db.select(Task.job_id, Task.id).where(Task.id.in_(ids))
    ).all():
        chunks.setdefault(job_id, []).append(task_id)
    for job_id, chunk in chunks.items():
        engine.submit(job_id, chunk, prepare_chunk(job_id, chunk))


def _statuses(ids):
    db.session.expire_all()
    rows = db.session.execute(db.select(Task.status).where(Task.id.in_(ids))).scalars().all()
    db.session.commit()
    return rows


def _wait(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


async def _answer(request):
    prompt = json.loads(request.content)["messages"][-1]["content"]
    if prompt.startswith("hang"):
        await asyncio.sleep(120)
    return httpx.Response(200, json=completion(f"re: {prompt}"))


def test_a_hanging_model_does_not_hold_up_another_model(app, sim_model, engine_factory):
    other = LLMModel(
        name="Healthy", base_url=sim_model.base_url, model_name="sim-chat", max_concurrency=4
    )
    db.session.add(other)
    db.session.commit()
    app.config["TASK_CHUNK_FACTOR"] = 1  # several chunks per model
    hanging = _tasks(sim_model, 12, "hang")
    healthy = _tasks(other, 10, "quick")
    engine = engine_factory(_answer)
    assert current_engine() is engine
    _submit(engine, hanging)
    _submit(engine, healthy)
    assert _wait(lambda: set(_statuses(healthy)) == {SUCCESS})
    states = _statuses(hanging)
    # The hanging model holds exactly its cap of calls; its other tasks wait QUEUED.
    assert states.count(RUNNING) == sim_model.max_concurrency
    assert states.count(QUEUED) == len(hanging) - sim_model.max_concurrency

    app.config["WORKER_DRAIN_SECONDS"] = 0
    engine.stop(timeout=10)
    assert RUNNING not in _statuses(hanging), "a drained engine leaves nothing RUNNING"
    assert set(_statuses(hanging)) <= {PENDING, QUEUED}
    assert current_engine() is None


def test_a_chunk_delivered_twice_to_the_engine_runs_each_call_once(app, sim_model, engine_factory):
    calls = []

    def answer(request):
        calls.append(json.loads(request.content)["messages"][-1]["content"])
        return httpx.Response(200, json=completion())

    ids = _tasks(sim_model, 6, "twice")
    engine = engine_factory(answer)
    _submit(engine, ids)
    _submit(engine, ids)
    assert _wait(lambda: set(_statuses(ids)) == {SUCCESS})
    assert engine.wait_idle(10)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 6


def test_chunks_of_one_model_share_steps_and_each_outcome_is_written_once(
    app, sim_model, engine_factory
):
    """One chunk's step writes the others' outcomes too: every task still gets one run."""
    from llmadmin.models import TaskRun

    async def slow(request):
        await asyncio.sleep(0.05)
        return httpx.Response(200, json=completion())

    app.config["TASK_CHUNK_FACTOR"] = 1  # chunks of 4 tasks (the model's cap), side by side
    ids = _tasks(sim_model, 24, "shared")
    engine = engine_factory(slow)
    _submit(engine, ids)
    assert _wait(lambda: set(_statuses(ids)) == {SUCCESS})
    assert engine.wait_idle(10)
    runs = db.session.execute(db.select(TaskRun.task_id).where(TaskRun.task_id.in_(ids)))
    assert sorted(runs.scalars()) == sorted(ids)


def test_a_cancel_is_noticed_in_a_chunk_whose_check_rides_with_another_chunk(
    app, sim_model, engine_factory
):
    """The running chunks' cancel checks go with whichever chunk's step comes next."""
    from llmadmin.models.task import CANCELED

    async def answer(request):
        prompt = json.loads(request.content)["messages"][-1]["content"]
        await asyncio.sleep(30 if prompt == "shared 5" else 0.05)
        return httpx.Response(200, json=completion())

    app.config["TASK_CHUNK_FACTOR"] = 1
    ids = _tasks(sim_model, 16, "shared")
    engine = engine_factory(answer)
    _submit(engine, ids)
    assert _wait(lambda: _statuses([ids[5]]) == [RUNNING])
    svc.cancel_tasks([ids[5]])
    assert _wait(lambda: set(_statuses(ids[:5] + ids[6:])) == {SUCCESS})
    assert engine.wait_idle(10), "the canceled call was stopped"
    assert _statuses([ids[5]]) == [CANCELED]
