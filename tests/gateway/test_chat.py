"""Chat completions through the gateway, run by a real worker on the simulated endpoint."""

from __future__ import annotations

import httpx
import openai
import pytest

from llmadmin.extensions import db
from llmadmin.models import AuditEntry, Task
from llmadmin.models.task import CANCELED, FAILURE, RUNNING, SUCCESS
from llmadmin.services.api_tokens import create_token
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.slow


def _task(task_id: int) -> Task:
    db.session.expire_all()
    row = db.session.get(Task, task_id)
    db.session.commit()
    return row


def test_a_plain_call_is_a_task_of_the_tokens_person(
    client, server, token, sim_row, workers, member_user, other_member
):
    workers.start(1)
    raw = client.chat.completions.with_raw_response.create(
        model="Sim",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        temperature=0.2,
        max_completion_tokens=50,
        seed=7,
    )
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == "Sim"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content.startswith("[simulated] echo: Say hello")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    task = _task(int(raw.headers["X-LLMAdmin-Task-Id"]))
    assert answer.id == f"chatcmpl-{task.id}"
    assert task.status == SUCCESS and task.result == answer.choices[0].message.content
    assert task.creator_id == member_user.id and task.system_prompt == "Be brief."
    assert (task.temperature, task.max_tokens, task.seed) == (0.2, 50, 7)
    assert db.session.query(AuditEntry).filter_by(action="gateway_call").count() == 1
    # Per-person isolation, as in the admin and /api/v1: only the caller's token sees it.
    other = create_token(other_member.id, "other")[1]
    url = f"{server}/api/v1/tasks/{task.id}"
    assert httpx.get(url, headers={"Authorization": f"Bearer {other}"}).status_code == 404
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_stream_arrives_piece_by_piece_with_usage(client, sim_row, workers):
    workers.start(1)
    prompt = "one two three four five six seven eight [[sim: interval_ms=150]]"
    stream = client.chat.completions.create(
        model="Sim",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, statuses_at_text = [], []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            task_id = int(chunk.id.removeprefix("chatcmpl-"))
            statuses_at_text.append(_task(task_id).status)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 3  # many pieces, not one answer at the end
    assert statuses_at_text[0] == RUNNING  # the first piece came while the call was running
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "Sim" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    task = _task(int(chunks[0].id.removeprefix("chatcmpl-")))
    assert task.status == SUCCESS and "".join(texts) == task.result


def test_a_stream_without_include_usage_has_no_usage_chunk(client, sim_row, workers):
    workers.start(1)
    chunks = list(
        client.chat.completions.create(
            model="Sim", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_an_upstream_failure_is_a_5xx(client, sim_row, workers):
    workers.start(1)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(
            model="Sim", messages=[{"role": "user", "content": "x [[sim: status=503]]"}]
        )
    assert err.value.status_code == 502 and err.value.code == "upstream_error"
    assert err.value.response.headers["x-should-retry"] == "false"  # the engine retried
    assert "503" in err.value.message
    assert db.session.query(Task).one().status == FAILURE
    with pytest.raises(openai.InternalServerError):  # streamed: the status comes before any text
        client.chat.completions.create(
            model="Sim",
            messages=[{"role": "user", "content": "y [[sim: status=500]]"}],
            stream=True,
        )


def test_a_client_that_goes_away_cancels_its_task(client, sim_row, workers):
    workers.start(1)
    stream = client.chat.completions.create(
        model="Sim",
        messages=[{"role": "user", "content": "a b c d e f g h i j [[sim: interval_ms=500]]"}],
        stream=True,
    )
    first = next(iter(stream))
    task_id = int(first.id.removeprefix("chatcmpl-"))
    stream.close()
    wait_until(lambda: _task(task_id).status == CANCELED, 30, message="canceled task")
    assert "disconnected" in _task(task_id).error


def test_a_wait_past_the_timeout_is_504_and_cancels(app, client, sim_row, workers):
    app.config["GATEWAY_TIMEOUT_SECONDS"] = 1
    # No worker listens: the task stays queued, the wait runs out.
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="Sim", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 504 and err.value.code == "timeout"
    assert db.session.query(Task).one().status == CANCELED


def test_a_repeated_idempotency_key_returns_the_first_calls_task(client, sim_row, workers):
    workers.start(1)
    body = {"model": "Sim", "messages": [{"role": "user", "content": "once"}]}
    headers = {"Idempotency-Key": "job-42"}
    first = client.chat.completions.with_raw_response.create(**body, extra_headers=headers)
    again = client.chat.completions.with_raw_response.create(**body, extra_headers=headers)
    assert first.headers["X-LLMAdmin-Task-Id"] == again.headers["X-LLMAdmin-Task-Id"]
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert db.session.query(Task).count() == 1
