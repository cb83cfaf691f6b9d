"""The one HTTP boundary to LLM endpoints: the OpenAI chat-completions wire protocol.

Every failure leaves this module as an ``LLMError`` whose message a business user can
read (HTTP status, a short sanitized excerpt of the provider's own words) and whose
``kind``/``retryable`` drive the retry and circuit-breaker policy in ``llmadmin.engine``.
The API key is never put in a repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.cookiejar import CookieJar

import httpx

from llmadmin.errors import LLMError
from llmadmin.llm.failures import (  # noqa: F401  (parse_retry_after: public via llmadmin.llm)
    embedded_error,
    looks_like_html,
    parse_retry_after,
    status_error,
    transport_error,
)
from llmadmin.llm.redact import display_url, mask_key, sanitize  # noqa: F401  (public via llmadmin.llm)
from llmadmin.llm.request import ChatRequest, ChatResult

logger = logging.getLogger(__name__)

USER_AGENT = "llmadmin/1.0 (+httpx)"
SIX_PLACES = Decimal("0.000001")
# ChatRequest fields sent only when set, in this order (after temperature and max_tokens).
OPTIONAL_FIELDS = (
    "top_p",
    "stop",
    "seed",
    "response_format",
    "frequency_penalty",
    "presence_penalty",
)


@dataclass
class _StreamState:
    parts: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    saw_choice: bool = False
    done: bool = False


def build_messages(
    prompt: str, system_prompt: str | None = None, history: list[dict] | None = None
) -> list[dict]:
    """Build the ``messages`` list: optional system prompt, prior turns, then the user prompt."""
    messages: list[dict] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in history or []:
        messages.append({"role": turn["role"], "content": turn["content"]})
    messages.append({"role": "user", "content": prompt})
    return messages


def compute_cost(
    prompt_tokens: int | None, completion_tokens: int | None, price_in_per_1k, price_out_per_1k
) -> Decimal | None:
    """Return the call's cost from per-1k-token prices, or None when it cannot be known.

    Unknown means: the model has no prices, or the server did not report the token count
    of a priced side (a blank cost, never a made-up 0).
    """
    if price_in_per_1k is None and price_out_per_1k is None:
        return None
    if (price_in_per_1k is not None and prompt_tokens is None) or (
        price_out_per_1k is not None and completion_tokens is None
    ):
        return None
    price_in = Decimal(str(price_in_per_1k or 0))
    price_out = Decimal(str(price_out_per_1k or 0))
    cost = (
        Decimal(prompt_tokens or 0) * price_in + Decimal(completion_tokens or 0) * price_out
    ) / 1000
    return cost.quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


class _NoJar(CookieJar):
    def set_cookie(self, cookie) -> None:
        return None


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing (and does not read responses for cookies)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies(_NoJar())


class CookielessClient(httpx.AsyncClient):
    """An AsyncClient that neither keeps nor sends cookies.

    LLM endpoints authenticate with a key; a cookie one task's call got must not travel
    with another task's call, and reading the Set-Cookie headers of every answer (httpx
    wraps each response for ``http.cookiejar``) cost ≈ 6 % of a call's CPU.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value) -> None:
        pass  # nothing is kept


def make_async_client(
    max_connections: int = 64,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """Build an AsyncClient sized for ``max_connections`` calls in flight (no cookies)."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )
    return CookielessClient(
        limits=limits,
        transport=transport,
        follow_redirects=False,
        verify=verify,
        timeout=httpx.Timeout(60.0, connect=10.0),
        headers={"User-Agent": USER_AGENT},
    )


def chat_blocking(
    req: ChatRequest, transport: httpx.AsyncBaseTransport | None = None
) -> ChatResult:
    """Run one call synchronously with a fresh client (connection tests, benchmark baseline)."""

    async def run() -> ChatResult:
        async with make_async_client(max_connections=4, transport=transport) as client:
            return await chat(client, req)

    return asyncio.run(run())


async def chat(
    client: httpx.AsyncClient, req: ChatRequest, on_delta: Callable[[str], None] | None = None
) -> ChatResult:
    """Call the chat-completions endpoint; raise LLMError on any failure.

    When streaming, ``on_delta`` receives each new piece of text (the delta, not the
    accumulated text) as it arrives.
    """
    started = time.monotonic()
    try:
        async with asyncio.timeout(req.timeout):
            if req.stream:
                result = await _chat_stream(client, req, on_delta)
            else:
                result = await _chat_once(client, req)
    except LLMError:
        raise
    except TimeoutError as exc:  # the total budget ran out (asyncio.timeout)
        raise LLMError(
            f"The model did not finish answering within {req.timeout:g} seconds "
            f"(the configured timeout).",
            kind="timeout",
            retryable=True,
        ) from exc
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise transport_error(exc, req) from exc
    except Exception as exc:
        # Log where it happened but not str(exc), which might quote a secret.
        logger.error(
            "unexpected %s calling %s:\n%s",
            type(exc).__name__,
            display_url(req.base_url),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        raise LLMError(
            f"Unexpected error while calling model {req.model}: "
            f"{type(exc).__name__}: {sanitize(str(exc), req.api_key)}",
            kind="unexpected",
            retryable=False,
        ) from exc
    result.latency_ms = round((time.monotonic() - started) * 1000, 3)
    return result


# Servers (base URL, model) that refused ``stream_options`` with a 400: asked once, per process.
_NO_STREAM_OPTIONS: set[tuple[str, str]] = set()


class _StreamOptionsRefused(Exception):
    """The server rejected ``stream_options``; the call is made again without it."""


def _asks_usage(req: ChatRequest) -> bool:
    return req.stream and (req.base_url, req.model) not in _NO_STREAM_OPTIONS


def _payload(req: ChatRequest, ask_usage: bool = False) -> dict:
    body: dict = {"model": req.model, "messages": req.messages, "stream": req.stream}
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    for name in OPTIONAL_FIELDS:  # sent only when set
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    if ask_usage:
        # Token counts in a stream arrive only when asked for (OpenAI, vLLM, DeepSeek...).
        body["stream_options"] = {"include_usage": True}
    return body


def _headers(req: ChatRequest) -> dict:
    headers = {"Content-Type": "application/json"}
    if req.stream:
        headers["Accept"] = "text/event-stream"
    if req.api_key:
        headers["Authorization"] = f"Bearer {req.api_key}"
    return headers


def _timeouts(req: ChatRequest) -> httpx.Timeout:
    return httpx.Timeout(
        connect=req.connect_timeout, read=req.timeout, write=req.timeout, pool=req.timeout
    )


async def _chat_once(client: httpx.AsyncClient, req: ChatRequest) -> ChatResult:
    response = await client.post(
        req.url, json=_payload(req), headers=_headers(req), timeout=_timeouts(req)
    )
    if not response.is_success:
        raise status_error(response, req)
    return _parse_completion(response, req)


def _parse_json_body(response: httpx.Response, req: ChatRequest) -> dict:
    text = response.text
    try:
        data = json.loads(text)
    except ValueError as exc:
        if looks_like_html(text, response.headers.get("content-type", "")):
            # A web page, not an API: retrying will not change the base URL.
            raise LLMError(
                f"The endpoint at {display_url(req.base_url)} returned an HTML page "
                f"instead of JSON (HTTP {response.status_code}) — is the base URL right? "
                f"It usually ends in /v1.",
                kind="bad_response",
                retryable=False,
                status_code=response.status_code,
            ) from exc
        # Truncated or garbled JSON is usually a transient fault of the server or a proxy.
        raise LLMError(
            f"The model returned malformed JSON (HTTP {response.status_code}): "
            f'"{sanitize(text, req.api_key, 80)}".',
            kind="bad_response",
            retryable=True,
            status_code=response.status_code,
        ) from exc
    if not isinstance(data, dict):
        raise _shape_error(req, response.status_code, "the answer is not a JSON object")
    return data


def _shape_error(req: ChatRequest, status: int, what: str) -> LLMError:
    # Valid JSON in the wrong shape means a wrong endpoint or server: do not retry.
    return LLMError(
        f"The model's answer could not be read (HTTP {status}): {what} — "
        f"is {display_url(req.base_url)} an OpenAI-compatible endpoint?",
        kind="bad_response",
        retryable=False,
        status_code=status,
    )


def _content_text(content) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return str(content)


def _usage(data: dict) -> tuple[int | None, int | None]:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens"))


def _int_or_none(value) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _parse_completion(response: httpx.Response, req: ChatRequest) -> ChatResult:
    status = response.status_code
    data = _parse_json_body(response, req)
    if "error" in data and not data.get("choices"):
        raise embedded_error(data, req, "bad_response", status)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        what = "it has no choices" if isinstance(choices, list) else "it has no 'choices' field"
        raise _shape_error(req, status, what)
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    finish_reason = choice.get("finish_reason")
    text = _content_text(message.get("content"))
    if text is None:
        # No text is a valid answer only when the model says why it stopped (tool calls, filter).
        if not finish_reason and not message.get("tool_calls"):
            raise _shape_error(req, status, "the first choice has no message content")
        text = ""
    prompt_tokens, completion_tokens = _usage(data)
    return ChatResult(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        status_code=status,
        finish_reason=finish_reason,
        streamed=False,
    )


async def _chat_stream(
    client: httpx.AsyncClient, req: ChatRequest, on_delta: Callable[[str], None] | None
) -> ChatResult:
    """Stream one call, asking for usage; a server that refuses the option is asked without it."""
    if not _asks_usage(req):
        return await _stream_once(client, req, on_delta, ask_usage=False)
    try:
        return await _stream_once(client, req, on_delta, ask_usage=True)
    except _StreamOptionsRefused:
        logger.info(
            "%s refused stream_options for model %s; streaming without token counts",
            display_url(req.base_url),
            req.model,
        )
        _NO_STREAM_OPTIONS.add((req.base_url, req.model))
        return await _stream_once(client, req, on_delta, ask_usage=False)


def _refuses_stream_options(response: httpx.Response) -> bool:
    return response.status_code in (400, 422) and "stream_options" in response.text.lower()


async def _stream_once(
    client: httpx.AsyncClient,
    req: ChatRequest,
    on_delta: Callable[[str], None] | None,
    ask_usage: bool,
) -> ChatResult:
    payload = _payload(req, ask_usage)
    async with client.stream(
        "POST", req.url, json=payload, headers=_headers(req), timeout=_timeouts(req)
    ) as response:
        if not response.is_success:
            await response.aread()
            if ask_usage and _refuses_stream_options(response):
                raise _StreamOptionsRefused
            raise status_error(response, req)
        content_type = response.headers.get("content-type", "")
        if "json" in content_type or "html" in content_type:
            # The server ignored stream=true (or is not an API at all): read it whole.
            await response.aread()
            return _parse_completion(response, req)
        state = _StreamState()
        try:
            await _read_events(response, req, state, on_delta)
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as exc:
            raise _cut_error(req, state, response.status_code) from exc
    if not state.done and not state.finish_reason:
        # A clean close after finish_reason is a complete answer from a server that omits
        # [DONE]; without either the answer was cut off.
        raise _cut_error(req, state, response.status_code)
    if not state.saw_choice:
        raise _shape_error(req, response.status_code, "the stream carried no choices")
    return ChatResult(
        text="".join(state.parts),
        prompt_tokens=state.prompt_tokens,
        completion_tokens=state.completion_tokens,
        status_code=response.status_code,
        finish_reason=state.finish_reason,
        streamed=True,
    )


def _cut_error(req: ChatRequest, state: _StreamState, status: int) -> LLMError:
    received = sum(len(p) for p in state.parts)
    return LLMError(
        f"The streamed answer from model {req.model} was cut off after {received} "
        f"characters, before the model finished.",
        kind="stream_cut",
        retryable=True,
        status_code=status,
    )


async def _read_events(
    response: httpx.Response,
    req: ChatRequest,
    state: _StreamState,
    on_delta: Callable[[str], None] | None,
) -> None:
    """Assemble SSE events (data lines up to a blank line) and apply each one."""
    data_lines: list[str] = []
    async for line in response.aiter_lines():
        if not line.strip():
            if data_lines and _apply_event("\n".join(data_lines), req, state, on_delta):
                return
            data_lines.clear()
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
        # Comments (":keep-alive"), "event:", "id:" and "retry:" lines carry no data for us.
    if data_lines:
        _apply_event("\n".join(data_lines), req, state, on_delta)


def _apply_event(
    data: str, req: ChatRequest, state: _StreamState, on_delta: Callable[[str], None] | None
) -> bool:
    """Apply one SSE data payload; return True at ``[DONE]``."""
    if data.strip() == "[DONE]":
        state.done = True
        return True
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise LLMError(
            f'The model\'s stream contained malformed JSON: "{sanitize(data, req.api_key, 80)}".',
            kind="bad_response",
            retryable=True,
            status_code=200,
        ) from exc
    if not isinstance(chunk, dict):
        return False
    if chunk.get("error"):
        raise embedded_error(chunk, req, "stream_error")
    prompt_tokens, completion_tokens = _usage(chunk)
    if prompt_tokens is not None or completion_tokens is not None:
        state.prompt_tokens, state.completion_tokens = prompt_tokens, completion_tokens
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        state.saw_choice = True
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        piece = _content_text(delta.get("content"))
        if piece:
            state.parts.append(piece)
            if on_delta is not None:
                on_delta(piece)
        if choice.get("finish_reason"):
            state.finish_reason = choice["finish_reason"]
    return False
