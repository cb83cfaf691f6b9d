"""Texts stored as data: what a row says is kept as a frame, and read in the reader's language.

A text written by a worker or a service and read later by someone else (a task's final
failure, why it was canceled) must not be frozen in the language of the moment it was
written. The row keeps a *frame* (a small JSON dict: which text, and its numbers, names and
reasons) next to the English text that the API, exports and old rows use; a screen renders
the frame with ``render_task_error(frame, say=gettext)``. The English text is the same
function with ``say=english``, so the two never drift apart. The provider's own words (the
``cause`` of a failure, as ``llm.failures`` wrote them) travel inside the frame unchanged.

The msgids are marked with ``N_`` (extracted by pybabel's default keywords) and translated
only when rendered. Messages of the checks whose results are stored (a batch's rejected
lines) are said with ``say``: a ``Said`` is the text in the current language that also
remembers its msgid and values, so ``said_frame`` can store it and ``render_said`` can say
it again in another reader's language.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import gettext
from flask_babel.speaklater import LazyString

Say = Callable[..., str]

FRAME_VERSION = 1


def N_(msgid: str) -> str:  # noqa: N802  (gettext's name for "mark only")
    """Mark a text for translation without translating it (rendered later, per reader)."""
    return msgid


def english(msgid: str, **values) -> str:
    """Render a marked text in English (the stored text, the API's and the exports')."""
    return msgid % values if values else msgid


# The engine's advice after a failure that may go away by itself, by error class.
TRANSIENT_ADVICE = {
    "rate_limited": N_("Run the task again later, or lower the model's requests per minute."),
    "server_error": N_("Run the task again once the endpoint answers normally."),
    "timeout": N_("Run the task again later, or raise the model's timeout."),
    "connect_timeout": N_("Run the task again once the endpoint is reachable."),
    "connection_error": N_("Run the task again once the endpoint is reachable."),
    "stream_cut": N_("Run the task again."),
    "stream_error": N_("Run the task again."),
    "bad_response": N_("Run the task again; if it keeps happening, check the base URL."),
}

# Whole sentences of ours that end a task (no provider's words): key -> text with %(values)s.
TASK_TEXTS = {
    "canceled_by_person": N_("Canceled by a person."),
    "model_deleted": N_("The task's model was deleted before the task ran."),
    "model_disabled": N_("The model %(model)s is disabled."),
    "worker_lost": N_(
        "Worker lost: the worker running this task stopped %(attempts)s time(s) (killed or "
        "machine lost), so it is not run again by itself. Check the workers, then run the "
        "task again."
    ),
    "batch_failed": N_("Not run: the batch failed while its tasks were being created."),
    "batch_expired": N_(
        "Not run: the batch expired (its completion window of %(window)s ended first)."
    ),
    "gateway_gave_up": N_("Canceled: the gateway client stopped waiting after %(seconds)s s."),
    "gateway_disconnected": N_("Canceled: the gateway client disconnected before the end."),
    "gateway_not_queued": N_("Canceled: the gateway could not queue the call."),
    "queue_unreachable": N_("Canceled: the job queue (Redis) was unreachable."),
}


def task_text(key: str, **values) -> tuple[str, dict]:
    """Return (English text, frame) of one of ``TASK_TEXTS``, for a task's ``error`` columns."""
    return english(TASK_TEXTS[key], **values), {
        "v": FRAME_VERSION,
        "frame": "text",
        "key": key,
        **values,
    }


def error_columns(key: str, **values) -> dict:
    """Return a task's ``error`` and ``error_frame`` columns for one of ``TASK_TEXTS``."""
    error, frame = task_text(key, **values)
    return {"error": error, "error_frame": frame}


def sentence(text: str) -> str:
    """End a text with a full stop unless it already ends a sentence."""
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…", "。", "！", "？")) else text + "."


def calls_made(calls: int, say: Say = english) -> str:
    """Say how many calls were made, e.g. ``3 calls made, all failed``."""
    if calls == 0:
        return say(N_("no call made"))
    if calls == 1:
        return say(N_("1 call made"))
    return say(N_("%(calls)s calls made, all failed"), calls=calls)


def _why_stopped(frame: dict, say: Say) -> str:
    stop = frame.get("stop")
    if stop == "same":
        return say(N_("not tried again: the same call would fail the same way"))
    if stop == "wait":
        return say(
            N_(
                "not tried again: the server asked to wait %(wait)s s, longer than a task "
                "waits (%(limit)s s)"
            ),
            wait=f"{frame['wait']:g}",
            limit=f"{frame['limit']:g}",
        )
    return say(
        N_("not tried again: the model allows %(attempts)s attempt(s) per run"),
        attempts=frame.get("attempts"),
    )


def _breaker(frame: dict, say: Say) -> str:
    threshold = frame.get("threshold")
    waited = frame.get("waited") or 0
    if waited >= 1:
        waiting = say(
            N_("it was still open after this task had waited %(seconds)s s for it"),
            seconds=f"{waited:.0f}",
        )
    else:
        waiting = say(N_("it was still open when this task's turn came"))
    if threshold:
        return say(
            N_(
                "the circuit breaker of model %(model)s was open after %(threshold)s "
                "consecutive failures (calls to it paused), and %(waiting)s"
            ),
            model=frame.get("model"),
            threshold=threshold,
            waiting=waiting,
        )
    return say(
        N_("the circuit breaker of model %(model)s was open (calls to it paused), and %(waiting)s"),
        model=frame.get("model"),
        waiting=waiting,
    )


def render_task_error(frame: dict, say: Say = english, member_cause: str | None = None) -> str:
    """Render a task's final failure from its frame in the language of ``say``.

    The ``cause`` (the last failure in the provider's and ``llm.failures``' words) is kept
    as it was. ``member_cause`` replaces it for a reader who may not see the endpoint's
    words (a member): then the other task's failure and the admin's advice are left out.
    """
    kind = frame.get("frame")
    if kind == "text":
        values = {k: v for k, v in frame.items() if k not in ("v", "frame", "key")}
        return say(TASK_TEXTS[frame["key"]], **values)
    cause = member_cause if member_cause is not None else frame.get("cause")
    calls = calls_made(int(frame.get("calls") or 0), say)
    if kind == "calls":
        text = say(
            N_("%(cause)s (%(calls)s; %(why)s.)"),
            cause=sentence(cause or ""),
            calls=calls,
            why=_why_stopped(frame, say),
        )
        advice = frame.get("advice")
        if advice in TRANSIENT_ADVICE and member_cause is None:
            return say(N_("%(text)s %(advice)s"), text=text, advice=say(TRANSIENT_ADVICE[advice]))
        return text
    if kind != "breaker":
        raise ValueError(f"unknown error frame {kind!r}")
    breaker = _breaker(frame, say)
    if frame.get("cause"):  # the task's own last failure (a member reads its class instead)
        text = say(
            N_("%(cause)s (%(calls)s.) Then %(breaker)s, so no further call was made."),
            cause=sentence(cause),
            calls=calls,
            breaker=breaker,
        )
    else:
        text = say(N_("Not sent: %(breaker)s."), breaker=breaker)
        if frame.get("other") and member_cause is None:
            text = say(
                N_(
                    "%(text)s The model's last failure, on a call made for another task "
                    "(not this one): %(other)s"
                ),
                text=text,
                other=sentence(frame["other"]),
            )
    if member_cause is not None:
        return text
    return say(
        N_("%(text)s %(advice)s"),
        text=text,
        advice=say(N_("Fix the endpoint (or wait until it recovers), then run the task again.")),
    )


class Said(str):
    """A text in the current language that remembers how it was said (msgid and values)."""

    msgid: str
    values: dict


def say(msgid: str, **values) -> Said:
    """``gettext`` that keeps the msgid and values (a drop-in for ``_`` in checks)."""
    text = Said(gettext(msgid, **values))
    text.msgid, text.values = msgid, values
    return text


def _stored_value(value):
    if isinstance(value, Said):
        return {"said": said_frame(value)}
    if isinstance(value, LazyString) and value._args:  # lazy_gettext(msgid, **values)
        return {"said": {"id": value._args[0], "values": value._kwargs}}
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def said_frame(text) -> dict | None:
    """How a ``Said`` text was said, JSON-ready; None for any other text."""
    if not isinstance(text, Said):
        return None
    return {"id": text.msgid, "values": {k: _stored_value(v) for k, v in text.values.items()}}


def render_said(frame: dict, say: Say = gettext) -> str:
    """Say a stored ``said_frame`` again in the current reader's language."""
    values = {
        key: render_said(value["said"], say) if isinstance(value, dict) else value
        for key, value in (frame.get("values") or {}).items()
    }
    return say(frame["id"], **values)
