"""Every execution is a run row written with the outcome; calls send the task's own parameters."""

from __future__ import annotations

import json

import httpx

from llmadmin.engine import calls as engine_calls
from llmadmin.extensions import db
from llmadmin.models import Task, TaskRun
from llmadmin.models.task import CANCELED, FAILURE, SUCCESS
from llmadmin.services import tasks as svc
from tests.engine.test_executor import Recorder, completion, run_all


def runs_of(task_id: int) -> list[TaskRun]:
    db.session.expire_all()
    return list(
        db.session.execute(
            db.select(TaskRun).where(TaskRun.task_id == task_id).order_by(TaskRun.id)
        ).scalars()
    )


def queued_task(model, prompt="p", **params) -> int:
    task = svc.create_task(prompt=prompt, model_id=model.id, creator_id=None, params=params)
    return task.id


def test_a_call_sends_the_tasks_parameters_and_the_model_fills_the_rest(app, sim_model):
    sim_model.temperature, sim_model.max_tokens = 0.7, 256
    db.session.commit()
    own = queued_task(
        sim_model,
        "own",
        temperature="0.1",
        max_tokens="32",
        top_p="0.5",
        stop="END",
        seed="7",
        response_format="json_object",
    )
    plain = queued_task(sim_model, "plain")
    bodies = {}

    def answer(prompt, n, body):
        bodies[prompt] = body
        return httpx.Response(200, json=completion('{"ok": true}'))

    run_all([own, plain], Recorder(answer))
    sent = bodies["own"]
    assert (sent["temperature"], sent["max_tokens"], sent["top_p"], sent["seed"]) == (
        0.1,
        32,
        0.5,
        7,
    )
    assert sent["stop"] == ["END"] and sent["response_format"] == {"type": "json_object"}
    default = bodies["plain"]
    assert (default["temperature"], default["max_tokens"]) == (0.7, 256)
    assert not {"top_p", "stop", "seed", "response_format"} & set(default)


def test_the_run_row_is_written_with_the_outcome(app, sim_model):
    sim_model.price_input_per_1k = 1
    db.session.commit()
    task_id = queued_task(sim_model, "hello", temperature="0.2")
    run_all([task_id], Recorder(lambda p, n, b: httpx.Response(200, json=completion("hi there"))))
    (run,) = runs_of(task_id)
    task = db.session.get(Task, task_id)
    assert run.status == SUCCESS == task.status
    assert run.result == "hi there" == task.result
    assert (run.prompt_tokens, run.completion_tokens, run.attempts) == (3, 2, 1)
    assert run.finish_reason == "stop" and run.cost == task.cost and run.latency_ms is not None
    assert run.model_id == sim_model.id and run.model_label == "Sim"
    assert run.job_id == task.job_id and run.started_at and run.finished_at == task.finished_at
    assert json.loads(run.params) == {"temperature": 0.2, "max_tokens": sim_model.max_tokens}
    assert run.output_is_json is None  # not JSON mode


def test_a_rerun_keeps_the_previous_run(app, sim_model):
    task_id = queued_task(sim_model, "again")
    answers = iter(["first answer", "second answer"])
    handler = Recorder(lambda p, n, b: httpx.Response(200, json=completion(next(answers))))
    run_all([task_id], handler)
    svc.run_tasks([task_id], overrides={"temperature": "1.2"})
    run_all([task_id], handler)
    first, second = runs_of(task_id)
    assert (first.result, second.result) == ("first answer", "second answer")
    assert json.loads(first.params)["temperature"] != 1.2
    assert json.loads(second.params)["temperature"] == 1.2
    assert db.session.get(Task, task_id).result == "second answer"


def test_a_failure_is_a_run_too_with_its_error_and_attempts(app, sim_model, monkeypatch):
    sim_model.max_attempts = 2
    db.session.commit()
    task_id = queued_task(sim_model, "boom")

    async def no_sleep(delay):
        return None

    monkeypatch.setattr(engine_calls, "backoff_sleep", no_sleep)
    run_all([task_id], Recorder(lambda p, n, b: httpx.Response(500, json={"error": "down"})))
    (run,) = runs_of(task_id)
    assert run.status == FAILURE and run.error_kind == "server_error"
    assert "HTTP 500" in run.error and run.attempts == db.session.get(Task, task_id).attempts


def test_json_mode_output_that_is_not_json_is_flagged(app, sim_model):
    good = queued_task(sim_model, "good", response_format="json_object")
    bad = queued_task(sim_model, "bad", response_format='{"type": "object"}')
    texts = {"good": '{"a": 1}', "bad": "Sure! Here is your JSON: {a: 1}"}
    run_all([good, bad], Recorder(lambda p, n, b: httpx.Response(200, json=completion(texts[p]))))
    assert db.session.get(Task, good).output_is_json is True
    assert db.session.get(Task, bad).output_is_json is False
    assert [r.output_is_json for r in runs_of(bad)] == [False]


def test_a_cancel_that_wins_leaves_no_run(app, sim_model):
    task_id = queued_task(sim_model, "slow")

    def answer(prompt, n, body):
        svc.cancel_tasks([task_id])  # the person presses Cancel while the call is answered
        return httpx.Response(200, json=completion("too late"))

    run_all([task_id], Recorder(answer))
    assert db.session.get(Task, task_id).status == CANCELED
    assert runs_of(task_id) == []


def test_a_task_failed_before_its_call_keeps_that_run(app, sim_model):
    task_id = queued_task(sim_model, "never sent")
    sim_model.enabled = False
    db.session.commit()
    run_all([task_id], Recorder(lambda p, n, b: httpx.Response(200, json=completion())))
    (run,) = runs_of(task_id)
    assert run.status == FAILURE and run.error_kind == "model_disabled"


def test_a_call_sends_the_earlier_turns_between_system_prompt_and_prompt(app, sim_model):
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    items = [
        {"prompt": "talk", "system_prompt": "sys", "model": sim_model.name, "messages": turns},
        {"prompt": "alone", "system_prompt": "sys", "model": sim_model.name},
    ]
    items[0]["parameters"] = {"frequency_penalty": 1, "presence_penalty": -0.5}
    talk, alone = svc.create_tasks(items, None).ids
    bodies = {}

    def answer(prompt, n, body):
        bodies[prompt] = body
        return httpx.Response(200, json=completion("ok"))

    run_all([talk, alone], Recorder(answer))
    assert bodies["talk"]["messages"] == [
        {"role": "system", "content": "sys"},
        *turns,
        {"role": "user", "content": "talk"},
    ]
    assert (bodies["talk"]["frequency_penalty"], bodies["talk"]["presence_penalty"]) == (1, -0.5)
    # A task without turns sends what it always did: the system prompt and the prompt only.
    assert bodies["alone"]["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "alone"},
    ]
    assert set(bodies["alone"]) == {"model", "messages", "stream", "temperature", "max_tokens"}
    (run,) = runs_of(talk)
    assert json.loads(run.params)["frequency_penalty"] == 1
