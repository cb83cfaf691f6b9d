"""Turn every way an LLM call can fail into an ``LLMError`` a business user can read.

HTTP statuses, provider error bodies (OpenAI-style or not), transport errors and cut
streams each get a kind (which drives retries and the circuit breaker), a retry hint and
a short message with the provider's own words, sanitized: an API key never survives.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from datetime import UTC, datetime

import httpx

from llmadmin.errors import LLMError
from llmadmin.llm.redact import display_url, mask_key, sanitize  # noqa: F401  (public here too)
from llmadmin.llm.request import ChatRequest

CONTEXT_TOO_LONG = re.compile(
    r"context[ _]length|maximum context|context window|too many tokens"
    r"|prompt is too long|input is too long"
)
# How servers say "no such model" in a 400 (a 404 always is): OpenAI, vLLM, Ollama, LiteLLM
# ("Invalid model name passed in model=…"), Mistral ("Invalid model: …"), DeepSeek ("Model Not
# Exist"), Moonshot ("Not found the model …"), Together, Gemini, Zhipu ("模型不存在").
MODEL_MISSING = re.compile(
    r"model_not_found|unknown model|no such model|invalid model|not found the model"
    r"|unable to access model|models/\S+ is not found|模型不存在"
    r"|model\b.{0,120}(not found|does not exist|not exist|is not available|not deployed)"
)
TRANSIENT = re.compile(
    r"overload|server[ _]error|internal|unavailable|timed? ?out|try again|capacity"
    r"|rate.?limit"
)


def looks_like_html(text: str, content_type: str) -> bool:
    head = text.lstrip()[:200].lower()
    return "html" in content_type or head.startswith(("<!doctype", "<html", "<head", "<body"))


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
        if looks_like_html(text, response.headers.get("content-type", "")):
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
        return error(
            f"The API key was rejected (HTTP {status}) by {where} — check the model's "
            f"API key{said}.",
            "auth",
        )
    if status == 402 or "insufficient_quota" in haystack:
        return error(
            f"The provider at {where} refused the call because the account's quota or balance "
            f"is used up (HTTP {status}) — top it up or use another key{said}.",
            "quota_exceeded",
        )
    if status in (400, 413, 422) and CONTEXT_TOO_LONG.search(haystack):
        return error(
            f"The prompt is too long for model {req.model} at {where} (HTTP {status}) — "
            f"shorten the prompt or lower max tokens{said}.",
            "context_too_long",
        )
    if status == 404 or (status in (400, 422) and MODEL_MISSING.search(haystack)):
        return error(
            f'Model "{req.model}" was not found at {where} (HTTP {status}) — check the '
            f"model name (the server lists its models at /v1/models) and the base URL (it "
            f"usually ends in /v1){said}.",
            "model_not_found",
        )
    if status == 429:
        wait = f", asking to wait {retry_after:g} s" if retry_after is not None else ""
        return error(
            f"The model endpoint at {where} is rate-limiting calls (HTTP 429){wait}{said}.",
            "rate_limited",
            True,
            retry_after,
        )
    if status == 408:
        return error(
            f"The model endpoint at {where} timed out handling the call (HTTP 408){said}.",
            "timeout",
            True,
        )
    if status >= 500:
        return error(
            f"The model endpoint at {where} had a server error (HTTP {status}){said}.",
            "server_error",
            True,
            retry_after,
        )
    if 300 <= status < 400:
        target = display_url(response.headers.get("location", "another address"))
        return error(
            f"The endpoint redirected the call (HTTP {status}) to {target} — use the "
            f"final address as the base URL.",
            "bad_response",
        )
    return error(
        f"The model endpoint at {where} rejected the request as invalid (HTTP {status}) — "
        f"check the model's settings (temperature, max tokens){said}.",
        "bad_request",
    )


def embedded_error(data: dict, req: ChatRequest, kind: str, status: int = 200) -> LLMError:
    """Map an ``{"error": ...}`` body inside a 200 answer (or stream) to an LLMError."""
    message, haystack = _error_text(data)
    # Only an overload/internal error is worth another attempt; anything else is about
    # the request (content filter, bad parameter) and would fail the same way again.
    retryable = bool(TRANSIENT.search(haystack))
    where = " in the middle of its streamed answer" if kind == "stream_error" else ""
    return LLMError(
        f"The model at {display_url(req.base_url)} reported an error{where}: "
        f'"{sanitize(message or haystack, req.api_key)}".',
        kind=kind,
        retryable=retryable,
        status_code=status,
    )


def transport_error(exc: Exception, req: ChatRequest) -> LLMError:
    """Map an httpx transport failure (no HTTP status) to an LLMError."""
    where = display_url(req.base_url)
    reason = sanitize(str(exc) or type(exc).__name__, req.api_key, 120)
    if isinstance(exc, httpx.ConnectTimeout):
        return LLMError(
            f"Could not connect to {where} within {req.connect_timeout:g} seconds — is "
            f"the server up and reachable?",
            kind="connect_timeout",
            retryable=True,
        )
    if isinstance(exc, httpx.PoolTimeout):
        return LLMError(
            f"No free connection to {where} within {req.timeout:g} seconds (too many "
            f"calls in flight).",
            kind="timeout",
            retryable=True,
        )
    if isinstance(exc, httpx.TimeoutException):
        return LLMError(
            f"The model did not answer within {req.timeout:g} seconds (the configured timeout).",
            kind="timeout",
            retryable=True,
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return LLMError(
            f'The base URL "{where}" is not a valid http:// or https:// address.',
            kind="bad_request",
            retryable=False,
        )
    if isinstance(exc, httpx.ConnectError):
        return LLMError(
            f"Could not connect to {where} ({reason}) — is the server running and the "
            f"base URL right?",
            kind="connection_error",
            retryable=True,
        )
    return LLMError(
        f"The connection to {where} failed ({type(exc).__name__}: {reason}).",
        kind="connection_error",
        retryable=True,
    )
