"""The gateway's answers that need no worker: models, and errors in OpenAI's shape."""

from __future__ import annotations

import httpx
import openai
import pytest

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task

USER = [{"role": "user", "content": "hello"}]


def test_models_lists_the_enabled_rows_by_name(client, sim_row):
    db.session.add(
        LLMModel(name="Off", base_url="http://127.0.0.1:9/v1", model_name="x", enabled=False)
    )
    db.session.commit()
    listed = client.models.list()
    assert [m.id for m in listed.data] == ["Sim"]
    assert listed.data[0].object == "model" and listed.data[0].owned_by == "llmadmin"
    assert client.models.retrieve("Sim").id == "Sim"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("Off")
    assert err.value.code == "model_not_found"


def test_a_bad_token_is_401(server, sim_row):
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="lla_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.models.list()
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="Sim", messages=USER)
    assert db.session.query(Task).count() == 0


def test_an_unknown_model_is_404_model_not_found(client, sim_row):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="Nope", messages=USER)
    assert err.value.code == "model_not_found" and err.value.param == "model"
    assert err.value.body["message"]


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"temperature": 5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"top_p": 2}, "top_p"),
        ({"seed": 1.5}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [*USER, {"role": "assistant", "content": "hi"}]}, "messages"),
        (
            {"messages": [*USER, {"role": "tool", "content": "x", "tool_call_id": "t"}]},
            "messages[1].role",
        ),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": "much"}, "presence_penalty"),
    ],
)
def test_wrong_values_are_400_naming_the_param(client, sim_row, extra, param):
    body = {"model": "Sim", "messages": USER, **extra}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**body)
    assert err.value.param == param, err.value.body
    assert err.value.type == "invalid_request_error"
    assert db.session.query(Task).count() == 0


def test_malformed_json_and_unknown_fields_are_400(server, token, sim_row):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{server}/v1/chat/completions"
    answer = httpx.post(url, content=b'{"model": "Sim", "messages": [', headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "line 1" in answer.json()["error"]["message"]
    answer = httpx.post(
        url, json={"model": "Sim", "messages": USER, "temprature": 1}, headers=headers
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "temprature"
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_the_optional_per_token_rate_is_429_with_retry_after(app, client, sim_row):
    app.config["GATEWAY_RATE_PER_MINUTE"] = 1
    client.models.list()
    with pytest.raises(openai.RateLimitError) as err:
        client.models.list()
    assert int(err.value.response.headers["Retry-After"]) >= 1


def test_an_unknown_url_under_v1_answers_in_openai_shape(server, token):
    answer = httpx.get(f"{server}/v1/nothing", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    answer = httpx.get(
        f"{server}/v1/chat/completions", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 405 and answer.json()["error"]["type"] == "invalid_request_error"


def test_an_exhausted_database_pool_is_a_503_in_openai_shape(client, sim_row, monkeypatch):
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from llmadmin.services import chat_calls

    def busy(name):
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    monkeypatch.setattr(chat_calls, "usable_model", busy)
    with pytest.raises(openai.InternalServerError) as err:
        client.with_options(max_retries=0).chat.completions.create(model="Sim", messages=USER)
    assert err.value.status_code == 503 and err.value.type == "server_error"
    assert err.value.response.headers["Retry-After"] == "5"
