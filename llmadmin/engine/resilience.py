"""The retry policy, in one place: when a failed call is tried again, and after how long.

The kinds of failure that may be retried are decided where failures are classified
(``llm.failures`` sets ``LLMError.retryable``); how many attempts a model gets is its
``max_attempts``; this module decides the rest. The circuit breaker (``engine.breaker``)
and the shared limits (``engine.limits``) say when a model may be called at all; how long
a task may wait for an open breaker is BREAKER_WAIT_SECONDS.

Waiting never occupies a worker: a wait of PARK_MIN_SECONDS or more parks the task
(back to QUEUED under an RQ job scheduled for the end of the wait, ``engine.parking``);
only shorter pauses are slept inside the engine, where they hold one of the model's
slots but no worker.
"""

from __future__ import annotations

import random

from llmadmin.errors import LLMError

# A server asking for a longer pause than this is treated as "not now": the task fails
# with its message instead of holding a slot for minutes.
MAX_RETRY_AFTER_SECONDS = 120.0


def backoff_delay(
    attempt: int, retry_after: float | None, base: float = 0.5, cap: float = 30.0
) -> float:
    """Exponential backoff with full jitter; a server's Retry-After is a floor."""
    delay = random.uniform(0, min(cap, base * (2 ** (attempt - 1))))
    if retry_after is not None:
        delay = max(delay, float(retry_after) + random.uniform(0, 0.1))
    return delay


def retry_delay(exc: LLMError, attempt: int, max_attempts: int) -> float | None:
    """Return how long to wait before attempt ``attempt + 1``, or None to give up now."""
    if not exc.retryable or attempt >= max_attempts:
        return None
    if (exc.retry_after or 0) > MAX_RETRY_AFTER_SECONDS:
        return None
    return backoff_delay(attempt, exc.retry_after)


def should_park(delay: float, park_min_seconds: float) -> bool:
    """Tell whether a wait of ``delay`` seconds parks the task instead of sleeping in the engine."""
    return delay >= park_min_seconds


def breaker_wait(retry_after: float | None, waited: float, patience: float) -> float | None:
    """Return how long to wait for an open breaker, or None when the task waited long enough.

    Waiting for a paused model costs the task no attempt; only a wait longer than
    ``patience`` (BREAKER_WAIT_SECONDS) in all fails it (``final_error.breaker_gave_up``).
    """
    wait = float(retry_after or 1)
    if waited + wait > patience:
        return None
    return wait + random.uniform(0, 0.2)
