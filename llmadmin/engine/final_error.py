"""The words of a task's final failure: its last real failure, why no more calls were made.

A final message is read after the fact, when nothing is going to happen any more, so it
states what happened (the status, the provider's own words and the endpoint, as
``llm.failures`` wrote them; how many calls were made; why the engine stopped) and what a
person can do — and never promises a retry. The executor calls these functions where it
records a final failure; which failures are retried is ``engine.resilience``.
"""

from __future__ import annotations

from llmadmin.engine.resilience import MAX_RETRY_AFTER_SECONDS
from llmadmin.errors import CircuitOpen, LLMError

# Failures that may go away by themselves: the advice is to run the task again later.
_TRANSIENT_ADVICE = {
    "rate_limited": "Run the task again later, or lower the model's requests per minute.",
    "server_error": "Run the task again once the endpoint answers normally.",
    "timeout": "Run the task again later, or raise the model's timeout.",
    "connect_timeout": "Run the task again once the endpoint is reachable.",
    "connection_error": "Run the task again once the endpoint is reachable.",
    "stream_cut": "Run the task again.",
    "stream_error": "Run the task again.",
    "bad_response": "Run the task again; if it keeps happening, check the base URL.",
}


def calls_text(calls: int) -> str:
    """Say how many calls were made, e.g. ``3 calls made, all failed``."""
    if calls == 0:
        return "no call made"
    if calls == 1:
        return "1 call made"
    return f"{calls} calls made, all failed"


def _why_stopped(exc: LLMError, calls: int, max_attempts: int) -> str:
    if not exc.retryable:
        return "not tried again: the same call would fail the same way"
    if (exc.retry_after or 0) > MAX_RETRY_AFTER_SECONDS:
        return (
            f"not tried again: the server asked to wait {exc.retry_after:g} s, longer than "
            f"a task waits ({MAX_RETRY_AFTER_SECONDS:g} s)"
        )
    return f"not tried again: the model allows {max_attempts} attempt(s) per run"


def after_calls(exc: LLMError, calls: int, max_attempts: int) -> str:
    """Return the final message of a task whose last call failed and will not be repeated."""
    text = (
        f"{_sentence(exc.message)} ({calls_text(calls)}; {_why_stopped(exc, calls, max_attempts)}.)"
    )
    advice = _TRANSIENT_ADVICE.get(exc.kind) if exc.retryable else None
    return f"{text} {advice}" if advice else text


def breaker_gave_up(
    exc: CircuitOpen, last: LLMError | None, calls: int, waited: float, model_label: str
) -> tuple[str, str]:
    """Return (message, kind) for a task that stopped waiting for the model's open breaker.

    A task that had a failure of its own keeps it (message and kind) first; one that was
    never sent names the failure that last counted against the model, from any worker.
    """
    threshold = f" after {exc.threshold} consecutive failures" if exc.threshold else ""
    waiting = (
        f"it was still open after this task had waited {waited:.0f} s for it"
        if waited >= 1
        else "it was still open when this task's turn came"
    )
    breaker = (
        f"the circuit breaker of model {model_label} was open{threshold} (calls to it "
        f"paused), and {waiting}"
    )
    advice = "Fix the endpoint (or wait until it recovers), then run the task again."
    if last is not None:
        return (
            f"{_sentence(last.message)} ({calls_text(calls)}.) Then {breaker}, so no further "
            f"call was made. {advice}",
            last.kind,
        )
    # The cause is the model's failure on another task's call: this task made none itself.
    cause = (
        f" The model's last failure, on a call made for another task (not this one): "
        f"{_sentence(exc.cause)}"
        if exc.cause
        else ""
    )
    return f"Not sent: {breaker}.{cause} {advice}", exc.kind


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."
