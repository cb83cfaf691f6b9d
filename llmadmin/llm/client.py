"""The one HTTP boundary to LLM endpoints: the OpenAI chat-completions wire protocol.

Every failure leaves this module as an ``LLMError`` whose message a business user can
read (HTTP status, a short sanitized excerpt of the provider's own words) and whose
``kind``/``retryable`` drive the retry and circuit-breaker policy in ``llmadmin.engine``.
The API key is never put in a repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import re
import ssl
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import httpx

from llmadmin.errors import LLMError

logger = logging.getLogger(__name__)

USER_AGENT = "llmadmin/1.0 (+httpx)"
SIX_PLACES = Decimal("0.000001")


def mask_key(key: str | None) -> str:
    """Show an API key as its first 3 and last 4 characters at most."""
    if not key:
        return ""
    return "•" * 6 if len(key) <= 10 else f"{key[:3]}…{key[-4:]}"


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call; ``timeout`` is the total budget in seconds."""

    base_url: str
    api_key: str | None
    model: str
    messages: list[dict]
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    connect_timeout: float | None = None  # None -> min(10, timeout)
    stream: bool = False

    def __post_init__(self) -> None:
        if self.connect_timeout is None:
            object.__setattr__(self, "connect_timeout", min(10.0, float(self.timeout)))

    def __repr__(self) -> str:
        # Prompts can be long and keys are secret: show neither in full.
        return (
            f"ChatRequest(base_url={display_url(self.base_url)!r}, api_key={mask_key(self.api_key) or None!r}, "
            f"model={self.model!r}, messages=<{len(self.messages)} message(s)>, "
            f"temperature={self.temperature!r}, max_tokens={self.max_tokens!r}, "
            f"timeout={self.timeout!r}, connect_timeout={self.connect_timeout!r}, stream={self.stream!r})"
        )

    @property
    def url(self) -> str:
        """The chat-completions endpoint for this request's base URL."""
        return f"{self.base_url.rstrip('/')}/chat/completions"


@dataclass
class ChatResult:
    """What a successful call returned."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    status_code: int
    latency_ms: float = 0.0
    finish_reason: str | None = None
    streamed: bool = False


@dataclass
class _StreamState:
    parts: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    saw_choice: bool = False
    done: bool = False


def build_messages(prompt: str, system_prompt: str | None = None,
                   history: list[dict] | None = None) -> list[dict]:
    """Build the ``messages`` list: optional system prompt, prior turns, then the user prompt."""
    messages: list[dict] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in history or []:
        messages.append({"role": turn["role"], "content": turn["content"]})
    messages.append({"role": "user", "content": prompt})
    return messages


def compute_cost(prompt_tokens: int | None, completion_tokens: int | None,
                 price_in_per_1k, price_out_per_1k) -> Decimal | None:
    """Return the call's cost from per-1k-token prices, or None when the model has no prices."""
    if price_in_per_1k is None and price_out_per_1k is None:
        return None
    price_in = Decimal(str(price_in_per_1k or 0))
    price_out = Decimal(str(price_out_per_1k or 0))
    cost = (Decimal(prompt_tokens or 0) * price_in + Decimal(completion_tokens or 0) * price_out) / 1000
    return cost.quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


def make_async_client(max_connections: int = 64,
                      transport: httpx.AsyncBaseTransport | None = None,
                      verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """Build an AsyncClient sized for ``max_connections`` calls in flight."""
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections, keepalive_expiry=30.0)
    return httpx.AsyncClient(limits=limits, transport=transport, follow_redirects=False, verify=verify,
                             timeout=httpx.Timeout(60.0, connect=10.0),
                             headers={"User-Agent": USER_AGENT})


def chat_blocking(req: ChatRequest, transport: httpx.AsyncBaseTransport | None = None) -> ChatResult:
    """Run one call synchronously with a fresh client (connection tests, benchmark baseline)."""

    async def run() -> ChatResult:
        async with make_async_client(max_connections=4, transport=transport) as client:
            return await chat(client, req)

    return asyncio.run(run())


async def chat(client: httpx.AsyncClient, req: ChatRequest,
               on_delta: Callable[[str], None] | None = None) -> ChatResult:
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
        raise LLMError(f"The model did not finish answering within {req.timeout:g} seconds "
                       f"(the configured timeout).", kind="timeout", retryable=True) from exc
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise transport_error(exc, req) from exc
    except Exception as exc:
        # Log where it happened but not str(exc), which might quote a secret.
        logger.error("unexpected %s calling %s:\n%s", type(exc).__name__, display_url(req.base_url),
                     "".join(traceback.format_tb(exc.__traceback__)))
        raise LLMError(f"Unexpected error while calling model {req.model}: "
                       f"{type(exc).__name__}: {sanitize(str(exc), req.api_key)}",
                       kind="unexpected", retryable=False) from exc
    result.latency_ms = round((time.monotonic() - started) * 1000, 3)
    return result


def _payload(req: ChatRequest) -> dict:
    body: dict = {"model": req.model, "messages": req.messages, "stream": req.stream}
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.stream:
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
    return httpx.Timeout(connect=req.connect_timeout, read=req.timeout, write=req.timeout,
                         pool=req.timeout)


async def _chat_once(client: httpx.AsyncClient, req: ChatRequest) -> ChatResult:
    response = await client.post(req.url, json=_payload(req), headers=_headers(req),
                                 timeout=_timeouts(req))
    if not response.is_success:
        raise status_error(response, req)
    return _parse_completion(response, req)


def _looks_like_html(text: str, content_type: str) -> bool:
    head = text.lstrip()[:200].lower()
    return "html" in content_type or head.startswith(("<!doctype", "<html", "<head", "<body"))


def _parse_json_body(response: httpx.Response, req: ChatRequest) -> dict:
    text = response.text
    try:
        data = json.loads(text)
    except ValueError as exc:
        if _looks_like_html(text, response.headers.get("content-type", "")):
            # A web page, not an API: retrying will not change the base URL.
            raise LLMError(f"The endpoint at {display_url(req.base_url)} returned an HTML page "
                           f"instead of JSON (HTTP {response.status_code}) — is the base URL right? "
                           f"It usually ends in /v1.", kind="bad_response", retryable=False,
                           status_code=response.status_code) from exc
        # Truncated or garbled JSON is usually a transient fault of the server or a proxy.
        raise LLMError(f"The model returned malformed JSON (HTTP {response.status_code}): "
                       f"\"{sanitize(text, req.api_key, 80)}\".", kind="bad_response",
                       retryable=True, status_code=response.status_code) from exc
    if not isinstance(data, dict):
        raise _shape_error(req, response.status_code, "the answer is not a JSON object")
    return data


def _shape_error(req: ChatRequest, status: int, what: str) -> LLMError:
    # Valid JSON in the wrong shape means a wrong endpoint or server: do not retry.
    return LLMError(f"The model's answer could not be read (HTTP {status}): {what} — "
                    f"is {display_url(req.base_url)} an OpenAI-compatible endpoint?",
                    kind="bad_response", retryable=False, status_code=status)


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
    return ChatResult(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      status_code=status, finish_reason=finish_reason, streamed=False)


async def _chat_stream(client: httpx.AsyncClient, req: ChatRequest,
                       on_delta: Callable[[str], None] | None) -> ChatResult:
    async with client.stream("POST", req.url, json=_payload(req), headers=_headers(req),
                             timeout=_timeouts(req)) as response:
        if not response.is_success:
            await response.aread()
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
    return ChatResult(text="".join(state.parts), prompt_tokens=state.prompt_tokens,
                      completion_tokens=state.completion_tokens, status_code=response.status_code,
                      finish_reason=state.finish_reason, streamed=True)


def _cut_error(req: ChatRequest, state: _StreamState, status: int) -> LLMError:
    received = sum(len(p) for p in state.parts)
    return LLMError(f"The streamed answer from model {req.model} was cut off after {received} "
                    f"characters, before the model finished.", kind="stream_cut", retryable=True,
                    status_code=status)


async def _read_events(response: httpx.Response, req: ChatRequest, state: _StreamState,
                       on_delta: Callable[[str], None] | None) -> None:
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


def _apply_event(data: str, req: ChatRequest, state: _StreamState,
                 on_delta: Callable[[str], None] | None) -> bool:
    """Apply one SSE data payload; return True at ``[DONE]``."""
    if data.strip() == "[DONE]":
        state.done = True
        return True
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise LLMError(f"The model's stream contained malformed JSON: \"{sanitize(data, req.api_key, 80)}\".",
                       kind="bad_response", retryable=True, status_code=200) from exc
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



# --- failures -> LLMError ----------------------------------------------------------------

KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key)-[A-Za-z0-9_\-]{8,}|(?<=Bearer )\S+", re.IGNORECASE)
CONTEXT_TOO_LONG = re.compile(r"context[ _]length|maximum context|context window|too many tokens"
                              r"|prompt is too long|input is too long")
MODEL_MISSING = re.compile(r"model_not_found|unknown model|no such model"
                           r"|model\b.{0,120}(not found|does not exist|not exist)")
TRANSIENT = re.compile(r"overload|server[ _]error|internal|unavailable|timed? ?out|try again|capacity"
                       r"|rate.?limit")


def sanitize(text: object, api_key: str | None = None, limit: int = 200) -> str:
    """Return ``text`` on one printable line, secrets masked, at most ``limit`` characters."""
    text = str(text)
    if api_key:
        text = text.replace(api_key, mask_key(api_key))
    text = KEY_LIKE.sub(lambda m: mask_key(m.group(0)), text)
    text = "".join(ch for ch in " ".join(text.split()) if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def display_url(url: str) -> str:
    """Show a URL without credentials, query string or fragment."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except Exception:  # an unparsable URL is still worth naming, minus anything secret-looking
        return sanitize(url.split("?")[0], limit=120)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Read ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms`` as seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = (headers.get(name) or "").strip()
        try:
            seconds = float(value) * scale
        except ValueError:
            seconds = _seconds_until(value) if name == "retry-after" else None
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _seconds_until(http_date: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


def _error_text(data: object) -> tuple[str, str]:
    """Return (message, searchable text) from an error body in any common provider shape."""
    if not isinstance(data, dict):
        return "", ""
    error = data.get("error")
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg") or ""
        extra = [error.get("code"), error.get("type")]
    elif error:
        message, extra = error, []
    else:
        message = data.get("detail") or data.get("message") or ""
        extra = [data.get("code"), data.get("type")]
    if not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False, default=str)
    return message, " ".join(str(x) for x in [message, *extra] if x).lower()


def _body_error_text(response: httpx.Response) -> tuple[str, str]:
    text = response.text
    try:
        return _error_text(json.loads(text))
    except ValueError:
        if _looks_like_html(text, response.headers.get("content-type", "")):
            return "", "html page"
        return text, text.lower()


def status_error(response: httpx.Response, req: ChatRequest) -> LLMError:
    """Map a non-2xx response to an LLMError with a message a business user understands."""
    status, where = response.status_code, display_url(req.base_url)
    message, haystack = _body_error_text(response)
    said = f' (the provider said: "{sanitize(message, req.api_key)}")' if message.strip() else ""
    retry_after = parse_retry_after(response.headers)

    def error(text: str, kind: str, retryable: bool = False, wait: float | None = None) -> LLMError:
        return LLMError(text, kind=kind, retryable=retryable, status_code=status, retry_after=wait)

    if status in (401, 403):
        return error(f"The API key was rejected (HTTP {status}) by {where} — check the model's "
                     f"API key{said}.", "auth")
    if status == 402 or "insufficient_quota" in haystack:
        return error(f"The provider refused the call because the account's quota or balance is "
                     f"used up (HTTP {status}){said}.", "quota_exceeded")
    if status in (400, 413, 422) and CONTEXT_TOO_LONG.search(haystack):
        return error(f"The prompt is too long for model {req.model} (HTTP {status}) — shorten the "
                     f"prompt or lower max tokens{said}.", "context_too_long")
    if status == 404 or (status == 400 and MODEL_MISSING.search(haystack)):
        return error(f'Model "{req.model}" was not found at {where} (HTTP {status}) — check the '
                     f"model name and the base URL (it usually ends in /v1){said}.", "model_not_found")
    if status == 429:
        wait = f", asking to wait {retry_after:g} s" if retry_after is not None else ""
        return error(f"The model endpoint is rate-limiting calls (HTTP 429){wait}{said}.",
                     "rate_limited", True, retry_after)
    if status == 408:
        return error(f"The model endpoint timed out handling the call (HTTP 408){said}.", "timeout", True)
    if status >= 500:
        return error(f"The model endpoint had a server error (HTTP {status}){said}.",
                     "server_error", True, retry_after)
    if 300 <= status < 400:
        target = display_url(response.headers.get("location", "another address"))
        return error(f"The endpoint redirected the call (HTTP {status}) to {target} — use the "
                     f"final address as the base URL.", "bad_response")
    return error(f"The model endpoint rejected the request as invalid (HTTP {status}){said}.",
                 "bad_request")


def embedded_error(data: dict, req: ChatRequest, kind: str, status: int = 200) -> LLMError:
    """Map an ``{"error": ...}`` body inside a 200 answer (or stream) to an LLMError."""
    message, haystack = _error_text(data)
    # Only an overload/internal error is worth another attempt; anything else is about
    # the request (content filter, bad parameter) and would fail the same way again.
    retryable = bool(TRANSIENT.search(haystack))
    where = " in the middle of its streamed answer" if kind == "stream_error" else ""
    return LLMError(f'The model reported an error{where}: "{sanitize(message or haystack, req.api_key)}".',
                    kind=kind, retryable=retryable, status_code=status)


def transport_error(exc: Exception, req: ChatRequest) -> LLMError:
    """Map an httpx transport failure (no HTTP status) to an LLMError."""
    where = display_url(req.base_url)
    reason = sanitize(str(exc) or type(exc).__name__, req.api_key, 120)
    if isinstance(exc, httpx.ConnectTimeout):
        return LLMError(f"Could not connect to {where} within {req.connect_timeout:g} seconds — is "
                        f"the server up and reachable?", kind="connect_timeout", retryable=True)
    if isinstance(exc, httpx.PoolTimeout):
        return LLMError(f"No free connection to {where} within {req.timeout:g} seconds (too many "
                        f"calls in flight).", kind="timeout", retryable=True)
    if isinstance(exc, httpx.TimeoutException):
        return LLMError(f"The model did not answer within {req.timeout:g} seconds (the configured "
                        f"timeout).", kind="timeout", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return LLMError(f"The base URL \"{where}\" is not a valid http:// or https:// address.",
                        kind="bad_request", retryable=False)
    if isinstance(exc, httpx.ConnectError):
        return LLMError(f"Could not connect to {where} ({reason}) — is the server running and the "
                        f"base URL right?", kind="connection_error", retryable=True)
    return LLMError(f"The connection to {where} failed ({type(exc).__name__}: {reason}).",
                    kind="connection_error", retryable=True)
