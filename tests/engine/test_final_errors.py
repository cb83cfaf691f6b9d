"""A task's final error keeps its real cause and promises nothing (issue: "a failure keeps its
real cause"): the status, the provider's words and the endpoint; the calls made; why it stopped."""

import re

import httpx
import pytest

from llmadmin.engine import final_error
from llmadmin.errors import CircuitOpen, LLMError
from llmadmin.models.task import FAILURE, SUCCESS
from tests.engine.test_executor import Recorder, completion, make_tasks, run_all

# Words that promise something the engine will not do once a task is final.
PROMISE = re.compile(r"will be tried|tried again in|will retry|retrying|again in about", re.I)


def test_bulk_run_on_a_failing_endpoint_keeps_the_500_in_every_final_error(
    app, sim_model, monkeypatch
):
    """The reported case: 500s open the breaker; no final error is only the breaker's promise."""
    app.config["BREAKER_WAIT_SECONDS"] = 0
    ids, _ = make_tasks(
        sim_model,
        6,
        max_attempts=3,
        breaker_threshold=2,
        breaker_cooldown_seconds=60,
        max_concurrency=1,
    )
    handler = Recorder(
        lambda p, n, b: httpx.Response(500, json={"error": {"message": "upstream exploded"}})
    )
    tasks = run_all(ids, handler, [], monkeypatch)
    assert {t.status for t in tasks.values()} == {FAILURE}
    for task in tasks.values():
        assert "HTTP 500" in task.error, task.error
        assert "upstream exploded" in task.error, task.error
        assert "http://127.0.0.1:9/v1" in task.error, task.error
        assert not PROMISE.search(task.error), task.error
        assert "run the task again" in task.error.lower()
    first = tasks[ids[0]]
    # Its own two calls failed, then the breaker (opened by them) made it give up.
    assert first.error_kind == "server_error" and first.calls == 2
    assert "2 calls made" in first.error and "circuit breaker" in first.error
    assert len(handler.calls) == 2
    for task_id in ids[1:]:
        never_sent = tasks[task_id]
        assert never_sent.error_kind == "circuit_open" and never_sent.calls == 0
        assert never_sent.error.startswith("Not sent:") and "another task" in never_sent.error


def test_retries_exhausted_count_calls_not_runs(app, sim_model, monkeypatch):
    ids, _ = make_tasks(sim_model, 1, max_attempts=3, breaker_threshold=100)
    handler = Recorder(lambda p, n, b: httpx.Response(502, text="bad gateway"))
    task = run_all(ids, handler, [], monkeypatch)[ids[0]]
    assert len(handler.calls) == 3
    assert task.calls == 3 and task.attempts == 1  # three calls in one run
    assert "3 calls made, all failed" in task.error and "allows 3 attempt" in task.error
    assert "bad gateway" in task.error and not PROMISE.search(task.error)


def test_success_after_retries_records_the_calls(app, sim_model, monkeypatch):
    ids, _ = make_tasks(sim_model, 1, max_attempts=3, breaker_threshold=100)

    def answer(prompt, n, body):
        if n == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, json=completion("ok"))

    task = run_all(ids, Recorder(answer), [], monkeypatch)[ids[0]]
    assert task.status == SUCCESS and task.calls == 2 and task.attempts == 1


def test_a_retry_after_longer_than_a_task_waits_is_said_plainly(app, sim_model, monkeypatch):
    ids, _ = make_tasks(sim_model, 1, max_attempts=3)
    handler = Recorder(
        lambda p, n, b: httpx.Response(
            429, headers={"Retry-After": "600"}, json={"error": {"message": "slow down"}}
        )
    )
    task = run_all(ids, handler, [], monkeypatch)[ids[0]]
    assert task.error_kind == "rate_limited" and task.calls == 1
    assert "asked to wait 600 s" in task.error and "slow down" in task.error
    assert not PROMISE.search(task.error)


@pytest.mark.parametrize(
    "finish, flagged", [("length", True), ("content_filter", True), ("stop", False)]
)
def test_finish_reason_is_recorded(app, sim_model, finish, flagged):
    ids, _ = make_tasks(sim_model, 1)

    def answer(prompt, n, body):
        data = completion("partial answ")
        data["choices"][0]["finish_reason"] = finish
        return httpx.Response(200, json=data)

    task = run_all(ids, Recorder(answer))[ids[0]]
    assert task.status == SUCCESS and task.finish_reason == finish


def test_cost_is_blank_when_the_server_reports_no_token_counts(app, sim_model):
    sim_model.price_input_per_1k = 1
    sim_model.price_output_per_1k = 2
    ids, _ = make_tasks(sim_model, 1)

    def answer(prompt, n, body):
        data = completion("no usage here")
        del data["usage"]
        return httpx.Response(200, json=data)

    task = run_all(ids, Recorder(answer))[ids[0]]
    assert task.status == SUCCESS
    assert task.prompt_tokens is None and task.cost is None


def test_a_rerun_clears_the_outcome_details(app, sim_model):
    from llmadmin.services import tasks as svc

    ids, _ = make_tasks(sim_model, 1)

    def answer(prompt, n, body):
        data = completion("x")
        data["choices"][0]["finish_reason"] = "length"
        return httpx.Response(200, json=data)

    run_all(ids, Recorder(answer))
    svc.run_tasks(ids)
    task = run_all(ids, lambda request: httpx.Response(401, json={"error": "no"}))[ids[0]]
    assert task.status == FAILURE and task.finish_reason is None and task.calls == 1


# --- the messages themselves ---------------------------------------------------------------


def test_breaker_message_without_an_own_failure_names_the_models_last_failure():
    exc = CircuitOpen(
        "paused", retry_after=30, threshold=5, cause="The model endpoint had a server error"
    )
    message, kind, _frame = final_error.breaker_gave_up(exc, None, 0, 45.2, "Qwen")
    assert kind == "circuit_open"
    assert message.startswith("Not sent: the circuit breaker of model Qwen was open after 5")
    assert (
        "waited 45 s" in message
        and "on a call made for another task (not this one): The model endpoint had a server error."
        in message
    )
    assert not PROMISE.search(message)


def test_non_retryable_failures_say_so():
    exc = LLMError("The API key was rejected (HTTP 401).", kind="auth", status_code=401)
    message = final_error.after_calls(exc, 1, 3).message
    assert message.startswith("The API key was rejected (HTTP 401).")
    assert "1 call made" in message and "the same call would fail the same way" in message


def test_a_task_never_sent_says_the_quoted_failure_was_another_calls():
    """The breaker's cause came from another task's call: the message must not sound like this
    task's own failure (QA: "The last failure: … (HTTP 500)" on a task with no call)."""
    exc = CircuitOpen("open", threshold=2, cause="HTTP 500 from http://x/v1: upstream exploded")
    message, kind, _frame = final_error.breaker_gave_up(exc, None, 0, 0.0, "Sim")
    assert kind == "circuit_open"
    assert message.startswith("Not sent:")
    assert "The model's last failure, on a call made for another task (not this one):" in message
    assert "HTTP 500" in message and "The last failure:" not in message
