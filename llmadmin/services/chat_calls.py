"""Gateway chat calls: one ``/v1/chat/completions`` request is one task, run by a worker.

``start_call`` validates and writes the task already QUEUED under its job (attributed to
the token's person, audited, one transaction), subscribes to its relay channel
(``engine.relay``) and only then enqueues the job at the front of the queue, so no message
can be missed. ``ChatCall.events`` yields the streamed text as the worker relays it and
ends with the task's committed outcome: the one "done" carries when the worker's write
vouches for it, else read from the row (the row is the truth, relayed text only a preview). Without a message for a second the row is read once,
so a lost message (or a cancel in the admin) costs a second, never a stuck request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from llmadmin.engine import relay
from llmadmin.errors import ItemsInvalid, NotFound, QueueUnavailable, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import CANCELED, FINAL_STATUSES, PENDING, QUEUED, RUNNING
from llmadmin.queues import REDIS_OUTAGE, get_pubsub_redis
from llmadmin.services import audit, call_groups, tasks
from llmadmin.services.jobs_control import stop_jobs_without_live_tasks
from llmadmin.texts import error_columns

logger = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 1.0  # without a relayed message, read the row this often
# A listener that breaks (Redis away, or redis-py's "I/O operation on closed file") only makes
# the call read its row once a second: the row, not the relay, is the truth.
LISTENER_ERRORS = (*REDIS_OUTAGE, redis.RedisError, ValueError)


def usable_models() -> list[LLMModel]:
    """Return the models a gateway caller may use (every enabled one), by name."""
    return list(
        db.session.execute(
            select(LLMModel).where(LLMModel.enabled.is_(True)).order_by(LLMModel.name)
        ).scalars()
    )


def usable_model(name: object) -> LLMModel:
    """Return the enabled model called ``name``; NotFound otherwise."""
    model = None
    if isinstance(name, str) and name:
        model = db.session.execute(
            select(LLMModel).where(LLMModel.name == name, LLMModel.enabled.is_(True))
        ).scalar_one_or_none()
    if model is None:
        raise NotFound(_("The model %(name)r does not exist or is disabled.", name=name))
    return model


@dataclass(frozen=True)
class Outcome:
    """A finished gateway task, read from its row."""

    task_id: int
    status: str
    text: str | None
    error: str | None
    error_kind: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def _submission_key(person_id: int, stream: bool, request_key: str | None) -> str:
    prefix = relay.STREAM_PREFIX if stream else relay.KEY_PREFIX
    if not request_key:
        return prefix + uuid.uuid4().hex
    digest = hashlib.sha256(f"{person_id}\x00{request_key}".encode()).hexdigest()[:40]
    return prefix + digest


def start_call(
    person_id: int,
    model: LLMModel,
    prompt: str,
    system_prompt: str | None,
    parameters: dict,
    *,
    stream: bool,
    request_key: str | None = None,
    turns: list[dict] | None = None,
) -> ChatCall:
    """Create (or, for a repeated ``request_key``, find) the call's task and queue it.

    ``turns`` are the conversation's earlier messages (``services.conversation``).
    Raises ItemsInvalid for a prompt or parameter the task rules refuse and
    QueueUnavailable when Redis is away (the task is then canceled, never left waiting).
    """
    key = _submission_key(person_id, stream, request_key)
    earlier = tasks.find_submitted(key) if request_key else None
    if earlier is not None and earlier.creator_id == person_id:
        call = _subscribed(earlier.id)
        call.read_first = True  # it may have finished long ago: no message will come
        return call
    item = {
        "prompt": prompt,
        "system_prompt": system_prompt,
        "messages": turns,
        "model_id": model.id,
        "parameters": parameters,
    }
    # The row is written QUEUED under its job, with its audit entry, in one transaction
    # shared with the calls that arrive at the same time (``call_groups``); then each call
    # subscribes and one job for them all goes to the front of the queue (one pipeline).
    try:  # the task rules, with the model already read (validate_tasks would read it again)
        row = tasks.task_row(item, {("id", model.id): model}, person_id, True)
    except ValidationError as exc:
        error = {"index": 0, "field": exc.field, "message": str(exc)}
        raise ItemsInvalid(str(exc), [error]) from exc
    row.update(status=QUEUED, queued_at=row["created_at"], submission_key=key)
    summary = f"Chat completion through the /v1 gateway on model {model.name}"
    entry = audit.entry("gateway_call", "task", None, summary)
    member, call = call_groups.submit(model, row, entry, _subscribed)
    if member.error is not None:  # e.g. the database stayed locked: no task may run for nobody
        if call is not None:
            call.close()
        if member.task_id is not None:
            _abandon_quietly(member.task_id, "gateway_not_queued")
        raise member.error
    if member.waiting:
        call.close()
        abandon(member.task_id, "queue_unreachable")
        raise QueueUnavailable(_("The job queue (Redis) is unreachable right now; try again."))
    return call


def _abandon_quietly(task_id: int, reason: str) -> None:
    """Cancel a task whose request is failing anyway; log, never mask, a second failure."""
    try:
        db.session.rollback()
        abandon(task_id, reason)
    except Exception:
        logger.exception("gateway: task %s could not be canceled; the reconciler will", task_id)


# One pub/sub connection per web thread, kept between calls: a call subscribes on it (no new
# connection, no handshake) and unsubscribes when it ends; a broken one is dropped.
_LISTENERS = threading.local()


def _listener():
    client = get_pubsub_redis()
    pubsub = getattr(_LISTENERS, "pubsub", None)
    if pubsub is None or pubsub.connection_pool is not client.connection_pool:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        _LISTENERS.pubsub = pubsub
    return pubsub


def _subscribed(task_id: int) -> ChatCall:
    """Listen to the task's channel; without a listener the call still reads its row."""
    name = relay.channel(current_app.config["QUEUE_PREFIX"], task_id)
    pubsub = _listener()
    try:
        pubsub.subscribe(name)
    except LISTENER_ERRORS as exc:
        logger.warning("gateway: task %s waits without a listener (%r)", task_id, exc)
        _close(pubsub)
        pubsub = None
    return ChatCall(task_id, pubsub, name)


def _close(pubsub) -> None:
    if getattr(_LISTENERS, "pubsub", None) is pubsub:
        _LISTENERS.pubsub = None
    try:
        pubsub.close()
    except LISTENER_ERRORS:
        pass


def abandon(task_id: int, reason: str, **values) -> bool:
    """Cancel a gateway task nobody waits for any more; False when it had already finished.

    ``reason`` is a key of ``texts.TASK_TEXTS`` (with its ``values``): stored as data.
    """

    job_ids = set(
        db.session.execute(
            select(Task.job_id).where(Task.id == task_id, Task.job_id.is_not(None))
        ).scalars()
    )
    changed = transition(
        [task_id],
        CANCELED,
        from_statuses=(PENDING, QUEUED, RUNNING),
        **error_columns(reason, **values),
        error_kind="canceled",
        run_requested_at=None,
        queue_note=None,
    )
    if changed:
        stop_jobs_without_live_tasks(job_ids)
    return bool(changed)


def outcome(task_id: int) -> Outcome | None:
    """Return the task's outcome when it has finished, else None (ends the read at once)."""
    row = db.session.execute(
        select(
            Task.status,
            Task.result,
            Task.error,
            Task.error_kind,
            Task.finish_reason,
            Task.prompt_tokens,
            Task.completion_tokens,
        ).where(Task.id == task_id)
    ).one_or_none()
    db.session.rollback()  # no snapshot held open between reads
    if row is None:
        return Outcome(task_id, CANCELED, None, "The task was deleted.", "deleted", *[None] * 3)
    if row.status not in FINAL_STATUSES:
        return None
    return Outcome(task_id, str(row.status), *row[1:])


def relayed_outcome(task_id: int, fields: object) -> Outcome | None:
    """The outcome a "done" message carries (committed by the worker), or None if malformed."""
    if not isinstance(fields, dict) or fields.get("status") not in FINAL_STATUSES:
        return None
    try:
        return Outcome(task_id, *(fields.get(name) for name in relay.OUTCOME_FIELDS))
    except TypeError:  # pragma: no cover - Outcome's fields are relay.OUTCOME_FIELDS
        return None


class ChatCall:
    """A gateway task being waited for: its relayed text, then its outcome."""

    def __init__(self, task_id: int, pubsub, channel: str | None = None):
        self.task_id = task_id
        self.pubsub = pubsub
        self.channel = channel  # on a kept connection: unsubscribed at the end, not closed
        self.sent = ""  # text handed to the client so far
        self.current = ""  # the current attempt's text
        self.diverged = False  # a retry produced text that contradicts what was sent
        self.read_first = False  # read the row before the first wait

    def events(self, deadline: float) -> Iterator[tuple[str, object]]:
        """Yield ("text", piece)… then ("final", Outcome), or ("idle", None) while waiting.

        Ends with ("timeout", None) when ``deadline`` (time.monotonic) passes first.
        """
        last_check = time.monotonic()
        final = outcome(self.task_id) if self.read_first else None
        if final is not None:
            yield "final", final
            return
        while True:
            now = time.monotonic()
            if now >= deadline:
                yield "timeout", None
                return
            message = self._next_message(min(IDLE_CHECK_SECONDS, deadline - now))
            if message is not None and message.get("done") and message.get("o"):
                final = relayed_outcome(self.task_id, message["o"])
                if final is not None:  # the committed outcome, as written: no need to re-read
                    yield "final", final
                    return
            if message is None or message.get("done") or now - last_check >= IDLE_CHECK_SECONDS:
                last_check = time.monotonic()
                final = outcome(self.task_id)
                if final is not None:
                    yield "final", final
                    return
                if message is None:
                    yield "idle", None
                    continue
            if "d" in message:
                self.current += message["d"]
                piece = self._advance()
                if piece:
                    yield "text", piece
            elif message.get("r"):
                self.current = ""

    def _next_message(self, timeout: float) -> dict | None:
        """The next relayed message, or None when ``timeout`` passes without one.

        The subscription's confirmation and late messages for an earlier call on this
        connection are skipped, not taken for silence (each would cost a read of the row).
        """
        until = time.monotonic() + max(0.0, timeout)
        while True:
            if self.pubsub is None:
                time.sleep(max(0.0, until - time.monotonic()))
                return None
            try:
                raw = self.pubsub.get_message(timeout=max(0.0, until - time.monotonic()))
            except LISTENER_ERRORS as exc:  # the row still tells the outcome: read it each second
                logger.warning("gateway relay lost (%r); reading the task row", exc)
                _close(self.pubsub)
                self.pubsub = None
                continue
            message = self._decoded(raw)
            if message is not None or time.monotonic() >= until:
                return message

    def _decoded(self, raw) -> dict | None:
        if raw is None or raw.get("type") != "message":
            return None
        if self.channel is not None and _text(raw.get("channel")) != self.channel:
            return None  # a late message for an earlier call on this connection
        try:
            message = json.loads(raw["data"])
        except (ValueError, TypeError):
            return None
        return message if isinstance(message, dict) else None

    def _advance(self) -> str:
        """Return the new text to hand out (nothing while a retry repeats what was sent)."""
        if len(self.current) > len(self.sent) and self.current.startswith(self.sent):
            piece, self.sent = self.current[len(self.sent) :], self.current
            return piece
        if not self.sent.startswith(self.current):
            self.diverged = True
        return ""

    def rest_of(self, final: Outcome) -> str | None:
        """The final text not yet handed out; None when it contradicts what was sent."""
        text = final.text or ""
        if self.diverged or not text.startswith(self.sent):
            return None
        rest, self.sent = text[len(self.sent) :], text
        return rest

    def close(self) -> None:
        """Stop listening (best effort); a kept connection stays for the thread's next call."""
        if self.pubsub is None:
            return
        pubsub, self.pubsub = self.pubsub, None
        if self.channel is None or getattr(_LISTENERS, "pubsub", None) is not pubsub:
            _close(pubsub)
            return
        try:
            pubsub.unsubscribe(self.channel)
        except LISTENER_ERRORS:
            _close(pubsub)


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
