"""Real tasks through the engine against a third-party OpenAI-compatible server, not our simulator.

The server is fakellm (PyPI, pinned in requirements.txt): a FastAPI app written by others that
answers /v1/chat/completions from YAML rules, plain and streamed, with no model weights. It
is started here on 127.0.0.1 and a free port; the tasks run through ``run_chunk`` over real
sockets. Its streams carry no token counts (it ignores ``stream_options``), which is exactly
the case where the cost must stay blank. It must not be skipped: a missing package fails.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest

from llmadmin.engine import calls as engine_calls
from llmadmin.engine.executor import run_chunk
from llmadmin.extensions import db
from llmadmin.llm import compute_cost
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import FAILURE, SUCCESS
from llmadmin.services import tasks as svc

RULES = """
rules:
  - name: unknown-model
    when:
      model_matches: "no-such-model"
    respond:
      status: 404
      error: "The model `no-such-model` does not exist."
  - name: boom
    when:
      messages_contain: "[[boom]]"
    respond:
      status: 500
      error: "upstream exploded"
  - name: hello
    when:
      messages_contain: "hello"
    respond:
      content: "Hello from a third-party server"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory):
    """Start fakellm's server; yield its base URL (…/v1)."""
    if importlib.util.find_spec("fakellm") is None:
        pytest.fail(
            "The third-party server package fakellm is not installed: install the project's "
            "requirements (pip install --require-hashes -r requirements.lock, or python3 run.py)."
        )
    config = tmp_path_factory.mktemp("fakellm") / "fakellm.yaml"
    config.write_text(RULES)
    port = _free_port()
    env = {**os.environ, "FAKELLM_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fakellm.server:app", "--host", "127.0.0.1"]
        + ["--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/_fakellm/stats", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"fakellm did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _model(base_url: str, admin_user, **settings) -> LLMModel:
    model = LLMModel(
        name="Third party",
        base_url=base_url,
        model_name=settings.pop("model_name", "gpt-4o-mini"),
        max_concurrency=4,
        timeout_seconds=20,
        maintainer_id=admin_user.id,
        price_input_per_1k=Decimal("0.5"),
        price_output_per_1k=Decimal("1.5"),
        **settings,
    )
    db.session.add(model)
    db.session.commit()
    return model


def _run(model: LLMModel, prompts: list[str], monkeypatch) -> list[Task]:
    async def no_backoff(delay):
        return None

    monkeypatch.setattr(engine_calls, "backoff_sleep", no_backoff)
    ids = [
        svc.create_task(prompt=p, model_id=model.id, creator_id=None, run=False).id for p in prompts
    ]
    svc.run_tasks(ids)
    jobs: dict[str, list[int]] = {}
    for job_id, task_id in db.session.execute(
        db.select(Task.job_id, Task.id).where(Task.id.in_(ids))
    ):
        jobs.setdefault(job_id, []).append(task_id)
    for job_id, task_ids in jobs.items():
        run_chunk(job_id, task_ids)  # real httpx, real sockets: no injected transport
    db.session.expire_all()
    return [db.session.get(Task, i) for i in ids]


def test_plain_answers_have_text_tokens_finish_reason_and_cost(
    app, admin_user, fakellm, monkeypatch
):
    model = _model(fakellm, admin_user, stream=False)
    tasks = _run(model, ["hello there", "hello again", "say anything"], monkeypatch)
    assert [t.status for t in tasks] == [SUCCESS] * 3, [t.error for t in tasks]
    first = tasks[0]
    assert first.result == "Hello from a third-party server"
    assert first.prompt_tokens and first.prompt_tokens > 0
    assert first.completion_tokens and first.completion_tokens > 0
    assert first.finish_reason == "stop" and first.calls == 1
    expected = compute_cost(first.prompt_tokens, first.completion_tokens, "0.5", "1.5")
    assert first.cost == expected and first.cost > 0
    assert tasks[2].result.startswith("[mock response for gpt-4o-mini")  # its default echo


def test_streamed_answers_without_usage_leave_the_cost_blank(app, admin_user, fakellm, monkeypatch):
    model = _model(fakellm, admin_user, stream=True)
    (task,) = _run(model, ["hello, stream please"], monkeypatch)
    assert task.status == SUCCESS, task.error
    assert task.result == "Hello from a third-party server"  # assembled from word deltas
    assert task.finish_reason == "stop" and task.calls == 1
    # fakellm's streams report no token counts: unknown, so blank — never 0.000000.
    assert task.prompt_tokens is None and task.completion_tokens is None
    assert task.cost is None


def test_an_unknown_model_is_model_not_found_with_a_hint(app, admin_user, fakellm, monkeypatch):
    model = _model(fakellm, admin_user, stream=False, model_name="no-such-model", max_attempts=3)
    (task,) = _run(model, ["hello"], monkeypatch)
    assert task.status == FAILURE and task.error_kind == "model_not_found"
    assert "HTTP 404" in task.error and fakellm in task.error
    assert "check the model name" in task.error and "does not exist" in task.error
    assert task.calls == 1  # not retried: the same call would fail the same way


def test_server_errors_keep_the_providers_words_and_the_calls_made(
    app, admin_user, fakellm, monkeypatch
):
    model = _model(fakellm, admin_user, stream=False, max_attempts=2, breaker_threshold=100)
    (task,) = _run(model, ["[[boom]] please"], monkeypatch)
    assert task.status == FAILURE and task.error_kind == "server_error"
    assert "HTTP 500" in task.error and "upstream exploded" in task.error
    assert fakellm in task.error and "2 calls made" in task.error and task.calls == 2
    assert "tried again in" not in task.error
