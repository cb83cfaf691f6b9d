"""Relay a gateway call from the worker to the web request waiting for it (Redis pub/sub).

A ``/v1/chat/completions`` call is an ordinary task whose ``submission_key`` starts with
``gateway:`` (``gateway:stream:`` when the client streams). The web request subscribes to
the task's channel *before* the task is queued; the worker publishes on it:

- ``{"d": text}`` — a piece of streamed text, in order, as it arrives;
- ``{"r": 1}`` — the call is being retried: the text streamed so far is void;
- ``{"done": 1, "o": {...}}`` — the outcome is committed, and ``o`` is that committed
  outcome (status, result, error, error_kind, finish_reason, tokens): the web request answers
  from it without reading the row again. Without ``o`` (the write could not tell that the
  row took exactly these values, e.g. it was canceled meanwhile, or the text is huge) the
  web request reads the task row: the row is the truth.

Nothing here is needed for correctness: a lost message only costs the web request a
(slow, periodic) look at the row. Publishing is best effort and never fails a task.
"""

from __future__ import annotations

import asyncio
import json
import logging

from llmadmin.queues import REDIS_OUTAGE, get_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "gateway:"
STREAM_PREFIX = "gateway:stream:"
# The outcome fields "done" carries (the task row's columns the gateway answers from).
OUTCOME_FIELDS = (
    "status",
    "result",
    "error",
    "error_kind",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
)
MAX_RELAYED_RESULT = 1_000_000  # characters; a longer answer is read from the row


def channel(prefix: str, task_id: int) -> str:
    """Return the pub/sub channel of a gateway task."""
    return f"{prefix}:gateway:task:{task_id}"


def is_relayed(submission_key: str | None) -> bool:
    """Tell whether a task's submission key marks a gateway call."""
    return bool(submission_key) and submission_key.startswith(KEY_PREFIX)


def wants_stream(submission_key: str | None) -> bool:
    """Tell whether a gateway call's client reads the answer as a stream."""
    return bool(submission_key) and submission_key.startswith(STREAM_PREFIX)


class Relay:
    """The worker's side: publish deltas (from the event loop) and "done" (after a write)."""

    def __init__(self, redis, prefix: str):
        self.redis = redis  # the chunk's asyncio client
        self.prefix = prefix
        self.watched: set[int] = set()  # gateway tasks: "done" is published
        self.streaming: set[int] = set()  # of which the client streams: deltas too
        self.buffer: list[tuple[str, str]] = []
        self.wake = asyncio.Event()

    def watch(self, task_id: int, submission_key: str | None) -> bool:
        """Start relaying ``task_id`` if it is a gateway call; return True when it streams."""
        if not is_relayed(submission_key):
            return False
        self.watched.add(task_id)
        if wants_stream(submission_key):
            self.streaming.add(task_id)
            return True
        return False

    def delta(self, task_id: int, text: str) -> None:
        """Queue a piece of streamed text (sent in order by ``pump``)."""
        if task_id in self.streaming:
            self._queue(task_id, {"d": text})

    def reset(self, task_id: int) -> None:
        """Say that the text streamed so far is void (the call is retried)."""
        if task_id in self.streaming:
            self._queue(task_id, {"r": 1})

    def _queue(self, task_id: int, message: dict) -> None:
        self.buffer.append((channel(self.prefix, task_id), json.dumps(message)))
        self.wake.set()

    async def pump(self) -> None:
        """Send queued messages in order, one pipeline per wake-up, until cancelled."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.buffer = self.buffer, []
            try:
                pipe = self.redis.pipeline(transaction=False)
                for name, data in batch:
                    pipe.publish(name, data)
                await pipe.execute()
            except REDIS_OUTAGE as exc:
                logger.warning("gateway relay: %d message(s) lost (%s)", len(batch), exc)

    def written(self, rows: list[dict], committed: bool = False) -> None:
        """Say "done" for the gateway tasks among the final ``rows`` of a committed write.

        ``committed``: every row was written exactly as given, so "done" may carry it.
        """
        done = [row for row in rows if row["id"] in self.watched]
        if not done:
            return
        ids = [row["id"] for row in done]
        self.watched.difference_update(ids)
        self.streaming.difference_update(ids)
        try:
            pipe = get_redis().pipeline(transaction=False)
            for row in done:
                pipe.publish(channel(self.prefix, row["id"]), done_message(row, committed))
            pipe.execute()
        except REDIS_OUTAGE as exc:
            logger.warning("gateway relay: done not sent for %s (%s)", ids, exc)


def done_message(row: dict, committed: bool) -> str:
    """The "done" message of a final row: with its outcome when that is the committed one."""
    result = row.get("result")
    if not committed or (isinstance(result, str) and len(result) > MAX_RELAYED_RESULT):
        return '{"done": 1}'
    outcome = {name: row.get(name) for name in OUTCOME_FIELDS}
    outcome["status"] = str(outcome["status"])
    return json.dumps({"done": 1, "o": outcome}, ensure_ascii=False, default=str)
