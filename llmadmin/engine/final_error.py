"""The words of a task's final failure: its last real failure, why no more calls were made.

A final message is read after the fact, when nothing is going to happen any more, so it
states what happened (the status, the provider's own words and the endpoint, as
``llm.failures`` wrote them; how many calls were made; why the engine stopped) and what a
person can do — and never promises a retry. The executor calls these functions where it
records a final failure; which failures are retried is ``engine.resilience``.

Each returns a ``Final``: the English message (``task.error``: the API, exports) and its
frame (``task.error_frame``: the same facts as data, which the screens render in the
reader's language around the provider's unchanged words — ``llmadmin.texts``).
"""

from __future__ import annotations

from typing import NamedTuple

from llmadmin.engine.resilience import MAX_RETRY_AFTER_SECONDS
from llmadmin.errors import CircuitOpen, LLMError
from llmadmin.texts import FRAME_VERSION, TRANSIENT_ADVICE, calls_made, render_task_error


class Final(NamedTuple):
    """A final failure: English message, error class, and its frame (JSON-ready)."""

    message: str
    kind: str
    frame: dict


def calls_text(calls: int) -> str:
    """Say how many calls were made, e.g. ``3 calls made, all failed``."""
    return calls_made(calls)


def _stop(exc: LLMError) -> dict:
    """Why no further call: the same failure again, a wait too long, or no attempts left."""
    if not exc.retryable:
        return {"stop": "same"}
    if (exc.retry_after or 0) > MAX_RETRY_AFTER_SECONDS:
        return {"stop": "wait", "wait": exc.retry_after, "limit": MAX_RETRY_AFTER_SECONDS}
    return {"stop": "attempts"}


def after_calls(exc: LLMError, calls: int, max_attempts: int) -> Final:
    """Return the final failure of a task whose last call failed and will not be repeated."""
    frame = {
        "v": FRAME_VERSION,
        "frame": "calls",
        "cause": exc.message,
        "calls": calls,
        "attempts": max_attempts,
        **_stop(exc),
        "advice": exc.kind if exc.retryable and exc.kind in TRANSIENT_ADVICE else None,
    }
    return Final(render_task_error(frame), exc.kind, frame)


def breaker_gave_up(
    exc: CircuitOpen, last: LLMError | None, calls: int, waited: float, model_label: str
) -> Final:
    """Return the final failure of a task that stopped waiting for the model's open breaker.

    A task that had a failure of its own keeps it (message and kind) first; one that was
    never sent names the failure that last counted against the model, from any worker.
    """
    frame = {
        "v": FRAME_VERSION,
        "frame": "breaker",
        "cause": last.message if last is not None else None,
        "calls": calls,
        "model": model_label,
        "threshold": exc.threshold,
        "waited": waited,
        # The model's failure on another task's call: this task made none itself.
        "other": exc.cause if last is None else None,
    }
    kind = last.kind if last is not None else exc.kind
    return Final(render_task_error(frame), kind, frame)
