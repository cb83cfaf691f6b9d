"""The chunk executor against an in-memory transport: outcomes, retries, breaker, cancel, streaming."""

import asyncio
import json
import random
import statistics
import threading
import time
from itertools import pairwise

import httpx
import pytest

from llmadmin.engine import calls as engine_calls
from llmadmin.engine import chunk_rows
from llmadmin.engine.executor import ChunkRunner, ModelSettings, backoff_delay, run_chunk
from llmadmin.extensions import db
from llmadmin.models import Task, TaskRun
from llmadmin.models.base import utcnow
from llmadmin.models.task import CANCELED, FAILURE, QUEUED, RUNNING, SUCCESS
from llmadmin.services import tasks as svc


def completion(text="hello", prompt_tokens=3, completion_tokens=2):
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "sim-chat",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class Recorder:
    """A transport handler that answers from a script and counts calls per prompt."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompt = body["messages"][-1]["content"]
        with self.lock:
            self.calls.append(prompt)
            n = self.calls.count(prompt)
        return self.answer(prompt, n, body)


def make_tasks(model, n, **kw):
    ids = [
        svc.create_task(prompt=f"prompt {i}", model_id=model.id, creator_id=None, run=False).id
        for i in range(n)
    ]
    for key, value in kw.items():
        setattr(model, key, value)
    db.session.commit()
    svc.run_tasks(ids)
    job_ids = {
        t.job_id for t in db.session.execute(db.select(Task).where(Task.id.in_(ids))).scalars()
    }
    return ids, job_ids


def run_all(ids, handler, sleeps=None, monkeypatch=None, wait_parked=True):
    """Run the tasks' jobs, then the jobs of tasks they parked, as RQ's scheduler would
    (after their ``not_before`` unless ``wait_parked`` is False), until none is queued."""
    if monkeypatch is not None:
        recorded = sleeps if sleeps is not None else []

        async def fake_sleep(delay):
            recorded.append(delay)

        monkeypatch.setattr(engine_calls, "backoff_sleep", fake_sleep)
    transport = httpx.MockTransport(handler)
    for _ in range(60):
        rows = db.session.execute(
            db.select(Task.job_id, Task.id, Task.not_before).where(
                Task.id.in_(ids), Task.status == QUEUED
            )
        ).all()
        db.session.commit()
        if not rows:
            break
        latest = max((r.not_before for r in rows if r.not_before), default=None)
        if wait_parked and latest is not None:
            time.sleep(max(0.0, (latest - utcnow()).total_seconds()))
        by_job: dict[str, list[int]] = {}
        for job_id, task_id, _ in rows:
            by_job.setdefault(job_id, []).append(task_id)
        for job_id, task_ids in by_job.items():
            run_chunk(job_id, task_ids, transport=transport)
    db.session.expire_all()
    return {t.id: t for t in db.session.execute(db.select(Task).where(Task.id.in_(ids))).scalars()}


def test_success_records_result_tokens_cost_latency(app, sim_model):
    sim_model.price_input_per_1k = 1
    sim_model.price_output_per_1k = 2
    ids, _ = make_tasks(sim_model, 10)
    handler = Recorder(
        lambda prompt, n, body: httpx.Response(200, json=completion(f"answer to {prompt}"))
    )
    tasks = run_all(ids, handler)
    assert all(t.status == SUCCESS for t in tasks.values())
    t = tasks[ids[3]]
    assert t.result == "answer to prompt 3"
    assert (t.prompt_tokens, t.completion_tokens) == (3, 2)
    assert float(t.cost) == pytest.approx(0.003 + 0.004)
    assert t.latency_ms is not None and t.attempts == 1 and t.finished_at is not None
    assert len(handler.calls) == 10


def test_duplicate_delivery_runs_each_call_once(app, sim_model):
    ids, job_ids = make_tasks(sim_model, 3)
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion()))
    run_all(ids, handler)
    run_all(ids, handler)  # the same job delivered again
    assert sorted(handler.calls) == sorted(f"prompt {i}" for i in range(3))


def test_job_of_another_delivery_does_not_claim(app, sim_model, monkeypatch):
    """A job handed ids queued under another job claims none of them and calls nothing."""
    ids, job_ids = make_tasks(sim_model, 2)
    owner = job_ids.pop()
    claims = []
    claim = chunk_rows.claim

    def recording_claim(job_id, batch, model_id=None, **options):
        claimed = claim(job_id, batch, model_id, **options)
        claims.append((job_id, list(batch), [r.id for r in claimed]))
        return claimed

    monkeypatch.setattr(chunk_rows, "claim", recording_claim)
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion()))
    # The runner itself, not run_chunk: run_chunk finds no row of its job and stops before
    # the claim, and this test is about the claim.
    asyncio.run(_runner("tasks-some-other-job", ids, sim_model, handler).run())
    assert claims == [("tasks-some-other-job", ids, [])]
    assert handler.calls == []
    db.session.expire_all()
    rows = [db.session.get(Task, i) for i in ids]
    assert {(t.status, t.job_id, t.attempts) for t in rows} == {(QUEUED, owner, 0)}


def test_a_canceled_and_rerun_task_belongs_to_its_new_job_only(app, sim_model):
    """Cancel one task of a queued job and run it again: the old job, delivered afterwards,
    runs only its other task; the new job runs the re-run one, once."""
    ids, job_ids = make_tasks(sim_model, 2)
    job_a = job_ids.pop()
    svc.cancel_tasks([ids[0]])
    svc.run_tasks([ids[0]])
    db.session.expire_all()
    job_b = db.session.get(Task, ids[0]).job_id
    assert job_b != job_a
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion(f"answer to {p}")))

    run_chunk(job_a, ids, transport=httpx.MockTransport(handler))
    assert handler.calls == ["prompt 1"]
    db.session.expire_all()
    rerun = db.session.get(Task, ids[0])
    assert (rerun.status, rerun.job_id, rerun.attempts) == (QUEUED, job_b, 0)

    run_chunk(job_b, [ids[0]], transport=httpx.MockTransport(handler))
    db.session.expire_all()
    rerun = db.session.get(Task, ids[0])
    assert (rerun.status, rerun.job_id, rerun.result) == (SUCCESS, job_b, "answer to prompt 0")
    assert sorted(handler.calls) == ["prompt 0", "prompt 1"]


def test_a_late_delivery_of_the_canceled_job_leaves_the_rerun_to_its_new_job(app, sim_model):
    """Cancel, re-run (queued under job B), then job A is delivered late with the same id."""
    ids, job_ids = make_tasks(sim_model, 1)
    job_a = job_ids.pop()
    svc.cancel_tasks(ids)
    svc.run_tasks(ids)
    db.session.expire_all()
    job_b = db.session.get(Task, ids[0]).job_id
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion(f"answer to {p}")))

    asyncio.run(_runner(job_a, ids, sim_model, handler).run())
    assert handler.calls == []
    run_chunk(job_b, ids, transport=httpx.MockTransport(handler))
    db.session.expire_all()
    task = db.session.get(Task, ids[0])
    assert (task.status, task.job_id, task.attempts) == (SUCCESS, job_b, 1)
    assert task.result == "answer to prompt 0" and handler.calls == ["prompt 0"]


def test_auth_error_fails_without_retry(app, sim_model):
    ids, _ = make_tasks(sim_model, 1, max_attempts=3)
    handler = Recorder(
        lambda p, n, b: httpx.Response(401, json={"error": {"message": "Invalid key"}})
    )
    task = run_all(ids, handler)[ids[0]]
    assert task.status == FAILURE and task.error_kind == "auth"
    assert "401" in task.error
    assert len(handler.calls) == 1


def test_server_errors_are_retried_then_succeed(app, sim_model, monkeypatch):
    ids, _ = make_tasks(sim_model, 2, max_attempts=3)

    def answer(prompt, n, body):
        return (
            httpx.Response(503, json={"error": {"message": "busy"}})
            if n < 3
            else httpx.Response(200, json=completion("finally"))
        )

    sleeps = []
    tasks = run_all(ids, Recorder(answer), sleeps, monkeypatch)
    assert {t.status for t in tasks.values()} == {SUCCESS}
    assert tasks[ids[0]].result == "finally"
    assert len([s for s in sleeps if s > 0.01]) >= 2  # backoff between attempts


def test_retries_exhausted_give_clear_failure(app, sim_model, monkeypatch):
    ids, _ = make_tasks(sim_model, 1, max_attempts=2, breaker_threshold=100)
    handler = Recorder(lambda p, n, b: httpx.Response(500, json={"error": {"message": "boom"}}))
    task = run_all(ids, handler, [], monkeypatch)[ids[0]]
    assert task.status == FAILURE and task.error_kind == "server_error"
    assert "2 calls made" in task.error and "500" in task.error
    assert len(handler.calls) == 2 and task.calls == 2


def test_retry_after_parks_the_task_under_a_scheduled_job(app, sim_model, monkeypatch):
    """A Retry-After wait is not slept in the worker: the task goes back to QUEUED under an
    RQ job scheduled for the end of the wait, with a note saying why and until when."""
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    from llmadmin.queues import get_queue, get_redis

    ids, (first_job,) = make_tasks(sim_model, 1, max_attempts=2)

    def answer(prompt, n, body):
        if n == 1:
            return httpx.Response(
                429, headers={"Retry-After": "7"}, json={"error": {"message": "slow down"}}
            )
        return httpx.Response(200, json=completion())

    handler, sleeps = Recorder(answer), []
    monkeypatch.setattr(engine_calls, "backoff_sleep", lambda delay: sleeps.append(delay))
    before = utcnow()
    run_chunk(first_job, ids, transport=httpx.MockTransport(handler))
    db.session.expire_all()
    task = db.session.get(Task, ids[0])
    assert task.status == QUEUED and task.job_id != first_job and sleeps == []
    assert 7 <= (task.not_before - before).total_seconds() <= 9
    assert "Retry-After 7 s" in task.queue_note and "waits until" in task.queue_note
    assert task.calls == 1 and task.attempts == 0  # the call made travels with the row
    assert task.error_kind == "rate_limited" and "slow down" in task.error  # its last failure
    registry = ScheduledJobRegistry(queue=get_queue("llm"))
    assert task.job_id in registry.get_job_ids()
    assert Job.fetch(task.job_id, connection=get_redis()).args == (task.job_id, ids)
    # Run when due (here: at once): the second attempt succeeds and is the last one allowed.
    task = run_all(ids, handler, wait_parked=False)[ids[0]]
    assert task.status == SUCCESS and len(handler.calls) == 2


def test_backoff_grows_with_each_attempt_up_to_the_cap():
    """Full jitter: each delay is uniform in [0, min(cap, base * 2^(attempt-1))]."""
    state = random.getstate()
    random.seed(20261129)
    try:
        samples = {
            a: [backoff_delay(a, None, base=0.5, cap=30) for _ in range(2000)] for a in range(1, 11)
        }
    finally:
        random.setstate(state)
    ceilings = {a: min(30.0, 0.5 * 2 ** (a - 1)) for a in samples}
    medians = {a: statistics.median(s) for a, s in samples.items()}
    for a, s in samples.items():
        assert 0 <= min(s) and max(s) <= ceilings[a], (a, min(s), max(s))
        assert max(s) >= 0.95 * ceilings[a], (a, max(s))  # the range really reaches the ceiling
        assert 0.4 * ceilings[a] <= medians[a] <= 0.6 * ceilings[a], (a, medians[a])
    growing = [medians[a] for a in range(1, 8)]  # 0.5, 1, 2, 4, 8, 16, then the cap of 30
    assert all(later > 1.5 * earlier for earlier, later in pairwise(growing)), growing
    assert 12 <= medians[10] <= 18, "past the cap the delays stop growing"


def test_retry_after_is_a_floor_of_the_backoff():
    delays = [backoff_delay(1, 5) for _ in range(200)] + [backoff_delay(9, 0.1) for _ in range(200)]
    assert all(d >= 5 for d in delays[:200]) and max(delays[:200]) <= 5.1
    assert all(d >= 0.1 for d in delays[200:])


def test_breaker_opens_fails_fast_and_recovers(app, sim_model, monkeypatch):
    ids, _ = make_tasks(
        sim_model,
        6,
        max_attempts=1,
        breaker_threshold=2,
        breaker_cooldown_seconds=60,
        max_concurrency=1,
    )
    handler = Recorder(lambda p, n, b: httpx.Response(502, text="bad gateway"))
    tasks = run_all(ids, handler, [], monkeypatch)
    kinds = [tasks[i].error_kind for i in ids]
    assert kinds[:2] == ["server_error", "server_error"]
    assert set(kinds[2:]) == {"circuit_open"}
    assert "circuit breaker" in tasks[ids[5]].error
    assert len(handler.calls) == 2  # no call while open
    # After the cooldown one probe goes through; success closes the breaker.
    from llmadmin.queues import get_redis

    get_redis().hset(f"llmadmin:breaker:{sim_model.id}", "opened_until", 1)
    ok = Recorder(lambda p, n, b: httpx.Response(200, json=completion()))
    svc.run_tasks(ids)
    tasks = run_all(ids, ok, [], monkeypatch)
    assert {t.status for t in tasks.values()} == {SUCCESS}
    assert not get_redis().exists(f"llmadmin:breaker:{sim_model.id}")


def test_tasks_wait_out_a_short_breaker_pause_without_spending_attempts(
    app, sim_model, monkeypatch
):
    """An outage shorter than BREAKER_WAIT_SECONDS: the paused tasks run after the cooldown."""
    ids, _ = make_tasks(
        sim_model,
        5,
        max_attempts=1,
        breaker_threshold=2,
        breaker_cooldown_seconds=1,
        max_concurrency=1,
    )
    handler = Recorder(
        lambda p, n, b: (
            httpx.Response(502, text="down")
            if len(handler.calls) <= 2
            else httpx.Response(200, json=completion())
        )
    )
    tasks = run_all(ids, handler, [], monkeypatch)
    statuses = [tasks[i].status for i in ids]
    assert statuses.count(FAILURE) == 2 and statuses.count(SUCCESS) == 3, statuses
    assert len(handler.calls) == 5, "no call while the breaker was open"
    assert {tasks[i].attempts for i in ids} == {1}


def test_breaker_pause_longer_than_the_wait_budget_fails_clearly(app, sim_model, monkeypatch):
    app.config["BREAKER_WAIT_SECONDS"] = 2
    ids, _ = make_tasks(
        sim_model,
        3,
        max_attempts=1,
        breaker_threshold=1,
        breaker_cooldown_seconds=3,
        max_concurrency=1,
    )
    handler = Recorder(lambda p, n, b: httpx.Response(503, text="down"))
    tasks = run_all(ids, handler, [], monkeypatch)
    assert len(handler.calls) == 1
    assert [tasks[i].error_kind for i in ids[1:]] == ["circuit_open", "circuit_open"]
    assert "Not sent" in tasks[ids[2]].error and "HTTP 503" in tasks[ids[2]].error
    assert "again in" not in tasks[ids[2]].error


def test_a_parked_task_keeps_its_calls_and_its_last_real_failure(app, sim_model, monkeypatch):
    """Calls and the last failure travel with a parked task: when the breaker then makes it
    give up, its final error is its own HTTP 502 (with the URL), not the breaker's pause."""
    from llmadmin.queues import get_redis

    app.config["BREAKER_WAIT_SECONDS"] = 3
    ids, (job_id,) = make_tasks(
        sim_model, 1, max_attempts=3, breaker_threshold=1, breaker_cooldown_seconds=2
    )
    handler = Recorder(lambda p, n, b: httpx.Response(502, text="upstream is down"))
    monkeypatch.setattr(engine_calls, "backoff_sleep", lambda delay: asyncio.sleep(0))
    run_chunk(job_id, ids, transport=httpx.MockTransport(handler))
    db.session.expire_all()
    task = db.session.get(Task, ids[0])
    assert task.status == QUEUED and "circuit breaker" in task.queue_note  # parked, not slept
    assert task.calls == 1 and task.error_kind == "server_error" and task.breaker_waited >= 2
    # The model stays down longer than the task may wait: it gives up after the park.
    get_redis().hset(f"llmadmin:breaker:{sim_model.id}", "opened_until", 2**52)
    task = run_all(ids, handler, wait_parked=False)[ids[0]]
    assert task.status == FAILURE and task.error_kind == "server_error" and task.calls == 1
    assert "(HTTP 502)" in task.error and "upstream is down" in task.error, task.error
    assert task.error.startswith(f"The model endpoint at {sim_model.base_url}")
    assert "1 call made" in task.error and "circuit breaker" in task.error
    assert "again in" not in task.error and "will retry" not in task.error
    assert len(handler.calls) == 1
    (run,) = db.session.execute(db.select(TaskRun).where(TaskRun.task_id == ids[0])).scalars()
    assert run.calls == 1 and run.error == task.error


def test_rate_limited_and_client_errors_do_not_open_breaker(app, sim_model, monkeypatch):
    ids, _ = make_tasks(sim_model, 4, max_attempts=1, breaker_threshold=1, max_concurrency=1)
    handler = Recorder(lambda p, n, b: httpx.Response(400, json={"error": {"message": "bad"}}))
    tasks = run_all(ids, handler, [], monkeypatch)
    assert {t.error_kind for t in tasks.values()} == {"bad_request"}
    assert len(handler.calls) == 4


def test_model_deleted_before_run_fails_tasks_clearly(app, sim_model):
    ids, job_ids = make_tasks(sim_model, 2)
    job_id = job_ids.pop()
    db.session.execute(db.update(Task).values(model_id=None))
    db.session.commit()
    run_chunk(job_id, ids, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    db.session.expire_all()
    assert {db.session.get(Task, i).error_kind for i in ids} == {"model_deleted"}


def test_disabled_model_fails_queued_tasks(app, sim_model):
    ids, job_ids = make_tasks(sim_model, 1)
    sim_model.enabled = False
    db.session.commit()
    run_chunk(job_ids.pop(), ids, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    db.session.expire_all()
    task = db.session.get(Task, ids[0])
    assert task.status == FAILURE and "disabled" in task.error


def _runner(job_id, ids, model, handler):
    db.session.expire_all()
    return ChunkRunner(
        job_id, ids, ModelSettings.load(model), transport=httpx.MockTransport(handler)
    )


def test_cancel_while_running_stops_call_and_writes_no_result(app, sim_model):
    ids, job_ids = make_tasks(sim_model, 1)
    job_id = job_ids.pop()
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(30)
        return httpx.Response(200, json=completion("too late"))

    async def scenario():
        runner = _runner(job_id, ids, sim_model, slow)
        run = asyncio.ensure_future(runner.run())
        await asyncio.wait_for(started.wait(), 5)
        # A second app context has its own session: the chunk's lane thread uses the first.
        with app.app_context():
            assert db.session.get(Task, ids[0]).status == RUNNING
            svc.cancel_tasks(ids)
            db.session.remove()
        await asyncio.wait_for(run, 5)  # the runner notices the cancel and stops the call

    asyncio.run(scenario())
    db.session.expire_all()
    task = db.session.get(Task, ids[0])
    assert task.status == CANCELED and task.result is None


def test_an_answer_that_arrives_after_a_cancel_does_not_overwrite_it(app, sim_model):
    """The person cancels while the call is in flight and the answer comes back before the
    runner's cancel check: the batched write must leave the task CANCELED."""
    ids, job_ids = make_tasks(sim_model, 1)

    def cancel_then_answer(request):
        # Its own app context, hence its own session: the chunk's lane thread uses the test's.
        with app.app_context():
            svc.cancel_tasks(ids)
            db.session.remove()
        return httpx.Response(200, json=completion("too late"))

    written = run_chunk(job_ids.pop(), ids, transport=httpx.MockTransport(cancel_then_answer))
    db.session.expire_all()
    task = db.session.get(Task, ids[0])
    assert (task.status, task.error_kind) == (CANCELED, "canceled")
    assert task.result is None and task.prompt_tokens is None and task.cost is None
    assert written == 1, "the outcome was collected (and its write matched no row)"


def test_streamed_partial_output_is_saved(app, sim_model, monkeypatch):
    monkeypatch.setattr(engine_calls, "PARTIAL_SAVE_SECONDS", 0)
    ids, job_ids = make_tasks(sim_model, 1, stream=True)
    job_id = job_ids.pop()
    release = asyncio.Event()

    def chunk(text):
        return (
            "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}) + "\n\n"
        ).encode()

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield chunk("Hel")
            await release.wait()
            yield chunk("lo")
            yield b"data: [DONE]\n\n"

    async def streaming(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    seen = []

    async def scenario():
        runner = _runner(job_id, ids, sim_model, streaming)
        run = asyncio.ensure_future(runner.run())
        for _ in range(200):
            await asyncio.sleep(0.02)
            # Its own connection: the chunk's database lane thread is using the session.
            with db.engine.connect() as conn:
                partial = conn.execute(db.select(Task.result).where(Task.id == ids[0])).scalar()
            if partial:
                seen.append(partial)
                break
        release.set()
        await asyncio.wait_for(run, 5)

    asyncio.run(scenario())
    db.session.expire_all()
    assert seen == ["Hel"]
    task = db.session.get(Task, ids[0])
    assert task.status == SUCCESS and task.result == "Hello"


def test_a_job_runs_only_its_chunk(app, sim_model):
    """No stealing: another model's work is never held up by one model's backlog."""
    app.config["TASK_CHUNK_FACTOR"] = 1
    ids, job_ids = make_tasks(sim_model, 8)
    first = db.session.execute(db.select(Task.job_id).where(Task.id == ids[0])).scalar()
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion()))
    run_chunk(first, ids[:4], transport=httpx.MockTransport(handler))
    assert len(handler.calls) == 4


def test_a_task_whose_redis_steps_outlast_the_wait_is_handed_back_not_failed(
    app, sim_model, monkeypatch
):
    """Redis away longer than REDIS_OUTAGE_WAIT_SECONDS: the task waits for the queue again."""
    import redis

    from llmadmin.engine.gate import Gate
    from llmadmin.models.task import PENDING

    app.config["REDIS_OUTAGE_WAIT_SECONDS"] = 0

    async def unreachable(self, park_after=None):
        raise redis.ConnectionError("Error 111 connecting to redis")

    monkeypatch.setattr(Gate, "enter", unreachable)
    ids, _ = make_tasks(sim_model, 2)
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion()))
    tasks = run_all(ids, handler, [], monkeypatch)
    assert handler.calls == []
    for task in tasks.values():
        assert task.status in (PENDING, QUEUED) and task.error is None, (task.status, task.error)
        assert task.queue_note in ("re-queued: Redis was unreachable", None)
        assert task.run_requested_at is not None or task.status == QUEUED


def test_a_retry_after_pauses_the_whole_model_without_calling_its_other_tasks(
    app, sim_model, monkeypatch
):
    """The server asked for a pause: the chunk's other tasks are parked too, uncalled."""
    ids, (job_id,) = make_tasks(sim_model, 3, max_attempts=2, max_concurrency=1)
    handler = Recorder(
        lambda p, n, b: httpx.Response(
            429, headers={"Retry-After": "30"}, json={"error": {"message": "slow down"}}
        )
    )
    run_chunk(job_id, ids, transport=httpx.MockTransport(handler))
    db.session.expire_all()
    tasks = [db.session.get(Task, i) for i in ids]
    assert len(handler.calls) == 1
    assert {t.status for t in tasks} == {QUEUED}
    assert [t.calls for t in tasks] == [1, None, None]
    assert all(t.job_id != job_id and t.not_before is not None for t in tasks)
    assert "asked for a pause (Retry-After 30 s)" in tasks[2].queue_note
