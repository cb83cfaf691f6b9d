"""The LLM HTTP client against an in-memory transport: wire format, parsing, every failure class."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

from llmadmin.errors import LLMError
from llmadmin.llm import (
    ChatRequest,
    build_messages,
    chat,
    chat_blocking,
    compute_cost,
    make_async_client,
    parse_retry_after,
)

KEY = "sk-test-SECRET0123456789abcdef"
BASE = "https://llm.example.com/v1/"


def completion(text="hello", prompt_tokens=3, completion_tokens=2, finish="stop"):
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def make_req(**kw) -> ChatRequest:
    fields = dict(
        base_url=BASE,
        api_key=KEY,
        model="gpt-test",
        messages=build_messages("hi"),
        temperature=0.2,
        max_tokens=50,
        timeout=5.0,
        stream=False,
    )
    fields.update(kw)
    return ChatRequest(**fields)


def call(handler, on_delta=None, **kw):
    """Run ``chat`` against ``handler`` (sync or async) and return its result."""

    async def main():
        async with make_async_client(transport=httpx.MockTransport(handler)) as client:
            return await chat(client, make_req(**kw), on_delta=on_delta)

    return asyncio.run(main())


def failure(handler, **kw) -> LLMError:
    with pytest.raises(LLMError) as info:
        call(handler, **kw)
    assert KEY not in info.value.message and KEY not in str(info.value)
    return info.value


def sse(*events, done=True) -> bytes:
    body = "".join(f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


def delta(text=None, finish=None, **extra):
    d = {} if text is None else {"content": text}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}], **extra}


def streaming(body: bytes | list[bytes], status=200, content_type="text/event-stream"):
    parts = body if isinstance(body, list) else [body]

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            for part in parts:
                if isinstance(part, Exception):
                    raise part
                yield part

    return lambda request: httpx.Response(
        status, headers={"content-type": content_type}, stream=Body()
    )


# --- request shape and success parsing ---------------------------------------------------


def test_request_wire_format_and_result():
    seen = {}

    def handler(request):
        seen.update(
            url=str(request.url),
            auth=request.headers.get("authorization"),
            body=json.loads(request.content),
            timeout=request.extensions["timeout"],
        )
        return httpx.Response(200, json=completion("Bonjour", 11, 7))

    result = call(handler, timeout=30.0)
    assert seen["url"] == "https://llm.example.com/v1/chat/completions"
    assert seen["auth"] == f"Bearer {KEY}"
    assert seen["body"] == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 50,
        "stream": False,
    }
    assert seen["timeout"] == {"connect": 10.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("Bonjour", 11, 7)
    assert result.status_code == 200 and result.finish_reason == "stop" and result.streamed is False
    assert result.latency_ms >= 0


@pytest.mark.parametrize("key", [None, ""])
def test_no_authorization_header_without_key_and_none_values_omitted(key):
    seen = {}

    def handler(request):
        seen.update(headers=request.headers, body=json.loads(request.content))
        return httpx.Response(200, json=completion())

    call(handler, api_key=key, temperature=None, max_tokens=None)
    assert "authorization" not in seen["headers"]
    assert set(seen["body"]) == {"model", "messages", "stream"}


def test_connect_timeout_defaults_to_at_most_ten_seconds():
    assert make_req(timeout=3).connect_timeout == 3
    assert make_req(timeout=120).connect_timeout == 10
    assert make_req(timeout=120, connect_timeout=2).connect_timeout == 2


def test_build_messages_orders_system_history_prompt():
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert build_messages("q", "be brief", history) == [
        {"role": "system", "content": "be brief"},
        *history,
        {"role": "user", "content": "q"},
    ]
    assert build_messages("q") == [{"role": "user", "content": "q"}]


def test_missing_usage_gives_none_tokens_and_content_parts_are_joined():
    body = completion()
    del body["usage"]
    body["choices"][0]["message"]["content"] = [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]
    result = call(lambda r: httpx.Response(200, json=body))
    assert result.text == "ab" and result.prompt_tokens is None and result.completion_tokens is None


def test_null_content_is_empty_text_only_with_a_finish_reason():
    ok = completion(text=None, finish="tool_calls")
    assert call(lambda r: httpx.Response(200, json=ok)).text == ""
    bad = completion(text=None, finish=None)
    assert failure(lambda r: httpx.Response(200, json=bad)).kind == "bad_response"


def test_chat_blocking_uses_given_transport():
    result = chat_blocking(
        make_req(),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=completion("pong"))),
    )
    assert result.text == "pong" and result.status_code == 200


# --- HTTP status mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, kind, retryable, words",
    [
        (
            401,
            {"error": {"message": "Invalid key"}},
            "auth",
            False,
            ["API key was rejected", "HTTP 401", "Invalid key"],
        ),
        (403, {"error": {"message": "Forbidden"}}, "auth", False, ["HTTP 403"]),
        (
            402,
            {"error": {"message": "Insufficient Balance"}},
            "quota_exceeded",
            False,
            ["HTTP 402", "quota"],
        ),
        (
            429,
            {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}},
            "quota_exceeded",
            False,
            ["HTTP 429"],
        ),
        (
            404,
            {"error": {"message": "model 'gpt-test' not found"}},
            "model_not_found",
            False,
            ["gpt-test", "https://llm.example.com/v1", "HTTP 404", "model name"],
        ),
        (
            400,
            {"message": "The model `gpt-test` does not exist.", "type": "NotFoundError"},
            "model_not_found",
            False,
            ["gpt-test", "HTTP 400"],
        ),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                }
            },
            "context_too_long",
            False,
            ["too long", "8192"],
        ),
        (
            400,
            {"error": {"message": "x", "code": "context_length_exceeded"}},
            "context_too_long",
            False,
            [],
        ),
        (400, {"detail": "too many tokens in prompt"}, "context_too_long", False, []),
        (
            400,
            {"error": {"message": "temperature must be <= 2"}},
            "bad_request",
            False,
            ["HTTP 400", "temperature must be <= 2"],
        ),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
            "bad_request",
            False,
            ["HTTP 422", "field required"],
        ),
        (429, {"error": {"message": "slow down"}}, "rate_limited", True, ["HTTP 429", "slow down"]),
        (408, {"error": "request timeout"}, "timeout", True, ["HTTP 408"]),
        (500, {"error": {"message": "boom"}}, "server_error", True, ["HTTP 500", "boom"]),
        (502, "bad gateway", "server_error", True, ["HTTP 502", "bad gateway"]),
        (503, {"message": "overloaded"}, "server_error", True, ["HTTP 503", "overloaded"]),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_status_codes_map_to_kinds(status, body, kind, retryable, words, stream):
    def handler(request):
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    exc = failure(handler, stream=stream)
    assert (exc.kind, exc.retryable, exc.status_code) == (kind, retryable, status)
    for word in words:
        assert word in exc.message
    assert "\n" not in exc.message


def test_html_error_page_is_not_quoted_in_the_message():
    page = "<html><body><h1>404 Not Found</h1>" + "x" * 5000 + "</body></html>"
    exc = failure(lambda r: httpx.Response(404, html=page))
    assert exc.kind == "model_not_found" and "<html" not in exc.message


def test_provider_excerpt_is_short_and_single_line():
    long = "line one\nline two " + "y" * 1000
    exc = failure(lambda r: httpx.Response(400, json={"error": {"message": long}}))
    quoted = exc.message.split('"')[1]
    assert len(quoted) <= 200 and "\n" not in quoted and quoted.startswith("line one line two")


def test_redirect_names_the_target_without_following_it():
    exc = failure(lambda r: httpx.Response(301, headers={"location": "https://new.example.com/v1"}))
    assert exc.kind == "bad_response" and "https://new.example.com/v1" in exc.message


# --- Retry-After ------------------------------------------------------------------------


def test_retry_after_seconds_on_429_and_503():
    for status in (429, 503):
        exc = failure(lambda r, s=status: httpx.Response(s, headers={"Retry-After": "7"}))
        assert exc.retry_after == 7.0 and exc.retryable
    exc = failure(lambda r: httpx.Response(429))
    assert exc.retry_after is None and "wait" not in exc.message


def test_retry_after_http_date_and_ms_and_garbage():
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(httpx.Headers({"Retry-After": future})) <= 31
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": past})) == 0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "inf"})) is None
    exc = failure(lambda r: httpx.Response(429, headers={"Retry-After": future}))
    assert 25 <= exc.retry_after <= 31 and "asking to wait" in exc.message


# --- transport failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    "error, kind, retryable, words",
    [
        (
            httpx.ConnectTimeout("timed out"),
            "connect_timeout",
            True,
            ["Could not connect", "4 seconds"],
        ),
        (httpx.ReadTimeout("timed out"), "timeout", True, ["5 seconds"]),
        (httpx.PoolTimeout("pool"), "timeout", True, ["free connection"]),
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            "connection_error",
            True,
            ["Connection refused", "https://llm.example.com/v1"],
        ),
        (
            httpx.ConnectError("[Errno -2] Name or service not known"),
            "connection_error",
            True,
            ["Name or service"],
        ),
        (
            httpx.RemoteProtocolError("Server disconnected"),
            "connection_error",
            True,
            ["Server disconnected"],
        ),
        (
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol"),
            "bad_request",
            False,
            ["http://"],
        ),
    ],
)
def test_transport_errors_map_to_kinds(error, kind, retryable, words):
    def handler(request):
        raise error

    exc = failure(handler, connect_timeout=4)
    assert (exc.kind, exc.retryable, exc.status_code) == (kind, retryable, None)
    assert exc.__cause__ is error
    for word in words:
        assert word in exc.message


def test_total_timeout_is_enforced_even_while_bytes_keep_arriving():
    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'{"choices": '
            while True:  # a byte now and then: no read timeout would ever fire
                await asyncio.sleep(0.02)
                yield b" "

    exc = failure(lambda r: httpx.Response(200, stream=Trickle()), timeout=0.2)
    assert exc.kind == "timeout" and exc.retryable and "0.2 seconds" in exc.message


def test_unexpected_exception_is_wrapped_and_chained():
    def handler(request):
        raise ValueError(f"weird failure with {KEY}")

    exc = failure(handler)
    assert exc.kind == "unexpected" and isinstance(exc.__cause__, ValueError)
    assert "weird failure" in exc.message


# --- bad 2xx bodies ---------------------------------------------------------------------


def test_html_page_instead_of_json():
    exc = failure(
        lambda r: httpx.Response(200, html="<!DOCTYPE html><html><body>Welcome</body></html>")
    )
    assert exc.kind == "bad_response" and not exc.retryable
    assert "HTML page" in exc.message and "/v1" in exc.message


def test_malformed_json():
    exc = failure(
        lambda r: httpx.Response(
            200, text='{"choices": [{"mess', headers={"content-type": "application/json"}
        )
    )
    assert exc.kind == "bad_response" and exc.retryable and "malformed JSON" in exc.message


@pytest.mark.parametrize(
    "body, words",
    [
        ({"id": "x"}, "no 'choices'"),
        ({"choices": []}, "no choices"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_json_in_the_wrong_shape(body, words):
    exc = failure(lambda r: httpx.Response(200, json=body))
    assert exc.kind == "bad_response" and not exc.retryable and words in exc.message


def test_error_object_inside_a_200_answer():
    exc = failure(
        lambda r: httpx.Response(200, json={"error": {"message": "content policy violation"}})
    )
    assert (
        exc.kind == "bad_response"
        and not exc.retryable
        and "content policy violation" in exc.message
    )


# --- streaming --------------------------------------------------------------------------


def test_stream_request_and_deltas():
    seen, deltas = {}, []
    body = [
        b": keep-alive\n\n",
        b"event: message\n",
        sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}, done=False),
        b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\ndata:{"choi',  # split
        b'ces": [{"index": 0, "delta": {"content": "lo"}}]}\n\n',
        sse(
            delta(finish="stop"),
            {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}},
        ),
    ]

    def handler(request):
        seen.update(body=json.loads(request.content), accept=request.headers["accept"])
        return streaming(body)(request)

    result = call(handler, on_delta=deltas.append, stream=True)
    assert seen["body"]["stream"] is True and seen["body"]["stream_options"] == {
        "include_usage": True
    }
    assert "text/event-stream" in seen["accept"]
    assert deltas == ["Hel", "lo"]  # the new piece each time, never the accumulated text
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("Hello", 4, 2)
    assert result.streamed and result.finish_reason == "stop" and result.status_code == 200


def test_multi_line_data_event_is_joined():
    event = 'data: {"choices": [{"index": 0,\ndata:  "delta": {"content": "ok"}}]}\n\n'
    result = call(streaming(event.encode() + sse(delta(finish="stop"))), stream=True)
    assert result.text == "ok"


def test_stream_without_done_is_cut():
    exc = failure(streaming(sse(delta("Hel"), delta("lo"), done=False)), stream=True)
    assert exc.kind == "stream_cut" and exc.retryable and "5 characters" in exc.message


def test_stream_closed_abruptly_is_cut():
    body = [sse(delta("Hel"), done=False), httpx.RemoteProtocolError("incomplete chunked read")]
    exc = failure(streaming(body), stream=True)
    assert exc.kind == "stream_cut" and exc.retryable


def test_stream_with_finish_reason_but_no_done_is_complete():
    # Some servers omit [DONE]; a finished choice followed by a clean close is a full answer.
    result = call(streaming(sse(delta("all"), delta(finish="stop"), done=False)), stream=True)
    assert result.text == "all" and result.finish_reason == "stop"


@pytest.mark.parametrize(
    "message, retryable",
    [
        ("The server is overloaded, please try again later", True),
        ("Internal server error", True),
        ("Your request was rejected by the content filter", False),
    ],
)
def test_error_event_inside_a_stream(message, retryable):
    deltas = []
    body = sse(delta("par"), {"error": {"message": message, "type": "x"}}, done=False)
    exc = failure(streaming(body), stream=True, on_delta=deltas.append)
    assert exc.kind == "stream_error" and exc.retryable is retryable and message in exc.message
    assert deltas == ["par"]


def test_stream_error_status_is_mapped_like_non_stream():
    def handler(request):
        return httpx.Response(
            429, headers={"Retry-After": "3"}, json={"error": {"message": "slow"}}
        )

    exc = failure(handler, stream=True)
    assert (exc.kind, exc.retry_after, exc.status_code) == ("rate_limited", 3.0, 429)


def test_stream_request_answered_with_plain_json_is_accepted():
    result = call(lambda r: httpx.Response(200, json=completion("whole")), stream=True)
    assert result.text == "whole" and result.streamed is False


def test_stream_malformed_chunk_and_no_choices():
    exc = failure(streaming(b'data: {"choices": [\n\n'), stream=True)
    assert exc.kind == "bad_response" and "malformed JSON" in exc.message
    exc = failure(streaming(sse({"choices": [], "usage": {"prompt_tokens": 1}})), stream=True)
    assert exc.kind == "bad_response" and "no choices" in exc.message


# --- secrets and cost -------------------------------------------------------------------


def test_api_key_is_masked_in_repr_and_in_echoed_errors():
    req = make_req()
    assert KEY not in repr(req) and KEY not in str(req) and "sk-…cdef" in repr(req)
    echoed = {
        "error": {"message": f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"}
    }
    for status in (401, 400, 500):
        exc = failure(lambda r, s=status: httpx.Response(s, json=echoed))
        assert "SECRET" not in exc.message
    other = "sk-proj-ANOTHERSECRETKEY12345678"
    exc = failure(
        lambda r: httpx.Response(401, json={"error": {"message": f"key {other} revoked"}})
    )
    assert other not in exc.message


def test_credentials_in_base_url_are_not_shown():
    exc = failure(
        lambda r: httpx.Response(404), base_url="https://user:pa55word@llm.example.com/v1?token=t0k"
    )
    assert "pa55word" not in exc.message and "t0k" not in exc.message
    assert "pa55word" not in repr(make_req(base_url="https://user:pa55word@h/v1"))


def test_compute_cost():
    assert compute_cost(1000, 500, Decimal("0.5"), Decimal("1.5")) == Decimal("1.250000")
    assert compute_cost(3, 2, 0.0015, 0.002) == Decimal("0.000009")
    assert compute_cost(None, 1000, None, 2) == Decimal("2.000000")
    assert compute_cost(100, 100, None, None) is None
    assert compute_cost(1, 0, "0.0000001", 0).as_tuple().exponent == -6


def test_raw_key_of_any_shape_is_masked_when_echoed():
    raw = "AbCdEfGh12345678zzQQ"
    exc = failure(
        lambda r: httpx.Response(401, json={"error": {"message": f"bad key {raw}"}}), api_key=raw
    )
    assert raw not in exc.message and "bad key" in exc.message


def _sent_body(**kw) -> bytes:
    seen = []

    def handler(request):
        seen.append(request.content)
        return httpx.Response(200, json=completion())

    call(handler, **kw)
    return seen[0]


def test_a_request_without_earlier_turns_sends_exactly_the_body_it_always_did():
    """The bytes on the wire of a one-prompt task (system prompt, prompt, parameters) are
    the ones sent before conversations existed: no new key, no new order."""
    body = _sent_body(messages=build_messages("hi", "be brief"), seed=7)
    assert body == (
        b'{"model":"gpt-test","messages":[{"role":"system","content":"be brief"},'
        b'{"role":"user","content":"hi"}],"stream":false,"temperature":0.2,"max_tokens":50,'
        b'"seed":7}'
    )
    assert build_messages("hi", "be brief", None) == build_messages("hi", "be brief", [])


def test_earlier_turns_and_penalties_are_sent_in_order():
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    body = json.loads(
        _sent_body(
            messages=build_messages("q", "sys", turns),
            frequency_penalty=0.5,
            presence_penalty=-1.0,
        )
    )
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("system", "sys"),
        ("user", "a"),
        ("assistant", "b"),
        ("user", "q"),
    ]
    assert list(body)[-2:] == ["frequency_penalty", "presence_penalty"]
    assert (body["frequency_penalty"], body["presence_penalty"]) == (0.5, -1.0)
