"""llm.list_models: GET {base_url}/models through the one HTTP boundary."""

from __future__ import annotations

import httpx
import pytest

from llmadmin import llm
from llmadmin.errors import LLMError


def transport(status=200, body=None, seen=None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body if body is not None else {})

    return httpx.MockTransport(handler)


def test_lists_the_ids_sorted_and_sends_the_key():
    seen = []
    body = {"data": [{"id": "qwen-plus"}, {"id": "deepseek-chat"}, {"id": "qwen-plus"}, {}]}
    names = llm.list_models(
        "https://api.example.com/v1/", "sk-secret", transport=transport(body=body, seen=seen)
    )
    assert names == ["deepseek-chat", "qwen-plus"]
    assert str(seen[0].url) == "https://api.example.com/v1/models"
    assert seen[0].headers["Authorization"] == "Bearer sk-secret"


def test_no_key_sends_no_authorization():
    seen = []
    llm.list_models(
        "http://127.0.0.1:9/v1", None, transport=transport(body={"data": []}, seen=seen)
    )
    assert "Authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(401, {"error": {"message": "bad key"}}, "auth"), (200, {"object": "list"}, "bad_response")],
)
def test_a_refusal_or_an_odd_answer_is_an_llm_error(status, body, kind):
    with pytest.raises(LLMError) as caught:
        llm.list_models("https://api.example.com/v1", "sk-x", transport=transport(status, body))
    assert caught.value.kind == kind
    assert "sk-x" not in caught.value.message


def test_an_unreachable_endpoint_is_an_llm_error():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(LLMError):
        llm.list_models("http://127.0.0.1:9/v1", None, transport=httpx.MockTransport(refuse))
