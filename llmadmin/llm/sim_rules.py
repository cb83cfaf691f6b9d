"""What the SIMULATED endpoint answers: directives, deterministic replies, errors and counters.

Kept apart from the server (``llm.simulator``) so the rules of the simulation — which
``[[sim: ...]]`` directives exist, how replies and token counts are made, what an error
body looks like — read on one page.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, deque

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MODELS = ("sim-chat", "sim-chat-stream")
WINDOW_SECONDS = 60.0
HANG_SECONDS = 3600.0
TRICKLE_SECONDS = 0.05  # per byte
DIRECTIVE = re.compile(r"\[\[\s*sim\s*:(.*?)\]\]", re.IGNORECASE | re.DOTALL)
PAIR = re.compile(r"([A-Za-z_]+)\s*=\s*([^,\s\]]+)")
FAILURES = (
    "status",
    "hang",
    "trickle",
    "malformed",
    "html",
    "cut",
    "stream_error",
    "context_too_long",
    "empty_choices",
)
# echo=messages: the reply lists every message received ("role: text | ..."), in order.
DIRECTIVES = frozenset(
    FAILURES + ("retry_after", "fail_times", "key", "latency_ms", "interval_ms", "echo")
)
CONFIG_KEYS = DIRECTIVES | {"api_key"}
ERRORS = {  # status -> (type, code, message), shaped like OpenAI's
    400: ("invalid_request_error", None, "Invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
    403: ("invalid_request_error", None, "You are not allowed to use this model"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist"),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests"),
    500: ("server_error", None, "The server had an error while processing your request"),
    502: ("server_error", None, "Bad gateway"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Simulated web page</title></head><body>"
    b"<h1>Simulated web page</h1><p>This is not an API.</p></body></html>"
)


def parse_directives(text: str) -> dict:
    """Return the ``key=value`` pairs of every ``[[sim: ...]]`` directive in ``text``."""
    found: dict = {}
    for body in DIRECTIVE.findall(text or ""):
        for key, raw in PAIR.findall(body):
            found[key.lower()] = _scalar(raw)
    return found


def _scalar(raw: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: whitespace-separated words, at least 1."""
    return max(1, len(str(text).split()))


def prompt_tokens(messages: list[dict]) -> int:
    """Deterministic prompt size: the words of every message, directives left out."""
    return sum(count_tokens(DIRECTIVE.sub("", _text_of(m.get("content")))) for m in messages)


def reply_for(
    prompt: str, max_tokens: int | None = None, messages: list | None = None
) -> tuple[str, str]:
    """Return the simulated reply to ``prompt`` (or to all ``messages``) and its finish reason."""
    if messages is not None:
        said = (
            f"{m.get('role')}: {DIRECTIVE.sub('', _text_of(m.get('content'))).strip()}"
            for m in messages
        )
        text = f"[simulated] messages: {' | '.join(said)}"
    else:
        text = f"[simulated] echo: {prompt[:200]}"
    words = text.split(" ")
    if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
        return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def _text_of(content) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def error_body(status: int, message: str | None = None, code: str | None = None) -> bytes:
    """An OpenAI-style error body, labelled simulated."""
    kind, default_code, default_message = ERRORS.get(status, ("api_error", None, "Error"))
    return json.dumps(
        {
            "error": {
                "message": f"{message or default_message} (simulated)",
                "type": kind,
                "param": None,
                "code": code or default_code,
            }
        }
    ).encode()


class SimState:
    """Runtime defaults and counters; touched only on the server's event loop."""

    def __init__(self, **defaults) -> None:
        self.initial = {k: v for k, v in defaults.items() if v is not None}
        self.reset()

    def reset(self) -> None:
        """Restore the start-up defaults and zero every counter."""
        self.config = dict(self.initial)
        self.in_flight = self.max_in_flight = self.total = self.max_in_window = 0
        self.starts: deque[float] = deque()
        self.per_key: Counter = Counter()
        self.by_status: Counter = Counter()

    def started(self, key: str | None) -> int:
        """Count a request start; return how many requests carried ``key`` so far."""
        now = time.monotonic()
        self.total += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.starts.append(now)
        while self.starts[0] <= now - WINDOW_SECONDS:
            self.starts.popleft()
        self.max_in_window = max(self.max_in_window, len(self.starts))
        if key is None:
            return 0
        self.per_key[key] += 1
        return self.per_key[key]

    def finished(self, status: int) -> None:
        """Count a request end."""
        self.in_flight -= 1
        self.by_status[str(status)] += 1

    def snapshot(self) -> dict:
        """The counters as JSON-ready data."""
        now = time.monotonic()
        return {
            "simulated": True,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "total_requests": self.total,
            "max_requests_per_60s": self.max_in_window,
            "requests_last_60s": sum(1 for t in self.starts if t > now - WINDOW_SECONDS),
            "per_key": dict(self.per_key),
            "by_status": dict(self.by_status),
            "config": {k: ("***" if k == "api_key" else v) for k, v in self.config.items()},
        }
