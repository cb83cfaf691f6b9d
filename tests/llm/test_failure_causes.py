"""What the client reports about a call: unknown models, usage in streams, no invented cost."""

import json
from decimal import Decimal

import httpx
import pytest

from llmadmin.llm import client as llm_client
from llmadmin.llm import compute_cost
from tests.llm.test_client import BASE, call, delta, failure, sse, streaming


@pytest.mark.parametrize(
    "status, body",
    [
        # LiteLLM's proxy
        (
            400,
            {
                "error": {
                    "message": "Invalid model name passed in model=gpt-tset. Call `/v1/models` "
                    "to view available models for your key.",
                    "type": "invalid_request_error",
                }
            },
        ),
        (
            400,
            {"error": {"message": "Model Not Exist", "type": "invalid_request_error"}},
        ),  # DeepSeek
        (400, {"message": "Invalid model: gpt-tset", "type": "invalid_model"}),  # Mistral
        (400, {"error": {"code": "1211", "message": "模型不存在，请检查模型代码。"}}),  # Zhipu
        (404, {"error": {"message": 'model "gpt-tset" not found, try pulling it first'}}),  # Ollama
        (404, {"object": "error", "message": "The model `gpt-tset` does not exist."}),  # vLLM
        (422, {"detail": "Unknown model: gpt-tset"}),
    ],
)
def test_an_unknown_model_name_is_model_not_found_with_a_hint(status, body):
    exc = failure(lambda r: httpx.Response(status, json=body), model="gpt-tset")
    assert exc.kind == "model_not_found" and not exc.retryable and exc.status_code == status
    assert "gpt-tset" in exc.message and "check the model name" in exc.message
    assert BASE in exc.message and f"HTTP {status}" in exc.message


def test_a_bad_parameter_is_not_mistaken_for_a_missing_model():
    body = {"error": {"message": "temperature is out of range for this model"}}
    exc = failure(lambda r: httpx.Response(400, json=body))
    assert exc.kind == "bad_request" and BASE in exc.message


@pytest.mark.parametrize("status", [500, 429, 408, 400])
def test_every_status_message_names_the_endpoint_and_the_providers_words(status):
    exc = failure(lambda r: httpx.Response(status, json={"error": {"message": "said this"}}))
    assert BASE in exc.message and f"HTTP {status}" in exc.message and "said this" in exc.message


def test_a_server_refusing_stream_options_is_asked_again_without_it(monkeypatch):
    monkeypatch.setattr(llm_client, "_NO_STREAM_OPTIONS", set())
    bodies = []

    def handler(request):
        body = json.loads(request.content)
        bodies.append(body)
        if "stream_options" in body:
            return httpx.Response(
                400,
                json={"error": {"message": "Unrecognized request argument: stream_options"}},
            )
        return streaming(sse(delta("Hi"), delta(finish="stop")))(request)

    result = call(handler, stream=True)
    assert result.text == "Hi" and result.prompt_tokens is None
    assert ["stream_options" in b for b in bodies] == [True, False]
    # Remembered for this server and model: the next call does not ask again.
    call(handler, stream=True)
    assert ["stream_options" in b for b in bodies] == [True, False, False]
    # Another model on the same server is still asked.
    call(handler, stream=True, model="other")
    assert "stream_options" in bodies[3]


def test_a_400_about_something_else_is_not_retried_without_stream_options(monkeypatch):
    monkeypatch.setattr(llm_client, "_NO_STREAM_OPTIONS", set())
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(400, json={"error": {"message": "messages must not be empty"}})

    exc = failure(handler, stream=True)
    assert exc.kind == "bad_request" and len(calls) == 1


def test_no_cost_without_the_token_counts_the_prices_need():
    assert compute_cost(None, None, Decimal("1"), Decimal("2")) is None
    assert compute_cost(10, None, Decimal("1"), Decimal("2")) is None
    assert compute_cost(None, 1000, None, 2) == Decimal("2.000000")  # input is not priced
    assert compute_cost(0, 0, 1, 2) == Decimal("0.000000")  # reported zeros are a real 0
