"""Column formatters ``(view, context, model, name)`` shared by the admin views."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import literal, select, union_all

from llmadmin.extensions import db
from llmadmin.i18n import exact_time, viewer_zone_name
from llmadmin.labels import ROLE_LABELS, STATUS_LABELS, status_label
from llmadmin.models import LLMModel, Person
from llmadmin.models.task import FINAL_STATUSES
from llmadmin.texts import N_, render_task_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context

BADGE_CLASSES = {
    "PENDING": "secondary",
    "QUEUED": "info",
    "RUNNING": "primary",
    "SUCCESS": "success",
    "FAILURE": "danger",
    "CANCELED": "dark",
}


def status_choices(statuses) -> list[tuple[str, str]]:
    """Filter options ``(stored value, label)`` for a status column."""
    return [(s, STATUS_LABELS.get(s, s)) for s in statuses]


def status_badge(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup:
    """Render a status as a coloured badge that the list page can refresh in place."""
    status = getattr(model, name) or ""
    css = BADGE_CLASSES.get(status, "light")
    note = queue_note_label(model)
    title = f' title="{escape(queue_note_text(model, note))}"' if note else ""
    # Every row of a list draws one: f-strings with escape(), not Markup.format (several times faster).
    badge = (
        f'<span class="badge badge-{escape(css)} js-status" data-id="{escape(model.id)}" '
        f'data-status="{escape(status)}"{title}>{escape(status_label(status))}</span>'
    )
    if note:
        badge += f' <small class="text-muted">{escape(note)}</small>'
    return Markup(badge) + finish_flag(getattr(model, "finish_reason", None))


# The stored note is the engine's English free text ("parked: <reason>; waits until 01:46 UTC",
# "re-queued: ..."): people read a label for its first word and, for a parked task, the time
# it waits until (``not_before``) in their own zone.
QUEUE_NOTE_LABELS = {
    "parked": _l("waiting"),
    "re-queued": _l("re-queued"),
    "waiting for queue": _l("waiting for the queue"),
}


def queue_note_label(model: Any) -> str:
    """The short, translated label of a task's queue note; "" once the task is final."""
    note = getattr(model, "queue_note", None)
    if not note or getattr(model, "status", None) in FINAL_STATUSES:
        return ""
    prefix = note.split(":")[0]
    return str(QUEUE_NOTE_LABELS.get(prefix, prefix))


def queue_note_text(model: Any, label: str | None = None) -> str:
    """The queue note as people read it: its label, when the wait ends (local time) and why.

    The reason stays the engine's words (an endpoint's or Redis's state, as the worker saw it);
    the stored "waits until … UTC" gives way to ``not_before`` in the viewer's zone.
    """
    label = queue_note_label(model) if label is None else label
    if not label:
        return ""
    not_before = getattr(model, "not_before", None)
    if not_before is not None:
        label = _(
            "%(label)s until %(time)s (%(zone)s)",
            label=label,
            time=exact_time(not_before),
            zone=viewer_zone_name(),
        )
    reason = _note_reason(model.queue_note)
    return f"{label} — {reason}" if reason else label


# Every reason the engine writes in a queue note (``engine/calls.py``, ``parking``,
# ``chunk_rows``, ``dispatch``, ``executor``, ``services/reconcile``), read back into its
# values and said in the viewer's language. The note stays the engine's English (the worker's
# hot path writes it; the API shows it): a reason not listed here is shown as written.
_NUMBER = r"(?P<seconds>[0-9][0-9.e+]*)"
NOTE_REASONS = (
    (
        re.compile(r"rate limit of (?P<model>.+) \((?P<rpm>\d+)/min\) reached"),
        N_("the rate limit of %(model)s (%(rpm)s per minute) is reached"),
    ),
    (
        re.compile(r"all (?P<cap>\d+) slots of (?P<model>.+) busy"),
        N_("all %(cap)s slots of %(model)s are busy"),
    ),
    (
        re.compile(r"circuit breaker of (?P<model>.+) open"),
        N_("the circuit breaker of %(model)s is open"),
    ),
    (
        re.compile(rf"call (?P<call>\d+) failed \((?P<kind>\w+), Retry-After {_NUMBER} s\)"),
        N_("call %(call)s failed (%(kind)s) and the server asked to wait %(seconds)s s"),
    ),
    (
        re.compile(r"call (?P<call>\d+) failed \((?P<kind>\w+)\)"),
        N_("call %(call)s failed (%(kind)s)"),
    ),
    (
        re.compile(rf"(?P<model>.+) asked for a pause \(Retry-After {_NUMBER} s\)"),
        N_("%(model)s asked for a pause of %(seconds)s s"),
    ),
    (re.compile(r"worker shut down"), N_("its worker shut down")),
    (re.compile(r"Redis was unreachable"), N_("Redis was unreachable")),
    (
        re.compile(r"Redis was unreachable; will be sent automatically"),
        N_("Redis was unreachable; the task is sent automatically when it is back"),
    ),
    (re.compile(r"its worker was lost"), N_("its worker was lost")),
    (re.compile(r"its job vanished from the queue"), N_("its job vanished from the queue")),
)


def _note_reason(note: str) -> str:
    """What follows the note's first word, in the viewer's language where the engine's words
    are known, without the stored UTC time of the wait's end."""
    _prefix, _colon, reason = note.partition(":")
    reason = reason.split("; waits until ")[0].strip()
    for pattern, text in NOTE_REASONS:
        found = pattern.fullmatch(reason)
        if found:
            return _(text, **found.groupdict())
    return reason


def queue_note(view: BaseModelView, context: Context | None, model: Any, name: str) -> str:
    """Details page: the queue note in the viewer's language and zone, nothing once final."""
    return queue_note_text(model)


# Finish reasons a person must notice: the output is not the whole answer the model would give.
FINISH_FLAGS = {
    "length": (
        _l("cut off"),
        _l("The answer was cut off at the model's max tokens: raise max tokens and run it again."),
    ),
    "content_filter": (
        _l("content filter"),
        _l("The provider's content filter stopped or removed (part of) the answer."),
    ),
}


def finish_flag(finish_reason: str | None) -> Markup:
    """Return a warning badge for a flagged finish reason ("length", "content_filter"), else nothing."""
    flag = FINISH_FLAGS.get(finish_reason or "")
    if flag is None:
        return Markup("")
    return Markup(
        ' <span class="badge badge-warning js-finish" data-finish="{}" title="{}">{}</span>'
    ).format(finish_reason, str(flag[1]), str(flag[0]))


def finish_reason(
    view: BaseModelView, context: Context | None, model: Any, name: str
) -> Markup | str:
    """Show why the model stopped, with the warning badge when the answer is incomplete."""
    value = getattr(model, name)
    if not value:
        return ""
    return Markup("{}{}").format(value, finish_flag(value))


def preformatted(
    view: BaseModelView, context: Context | None, model: Any, name: str
) -> Markup | str:
    """Show long text with its line breaks kept (escaped: untrusted text never runs)."""
    value = getattr(model, name)
    if value is None:
        return ""
    return Markup('<pre class="llm-text" data-field="{}">{}</pre>').format(name, value)


TURN_ROLES = {"user": _l("User"), "assistant": _l("Assistant")}


def conversation(
    view: BaseModelView, context: Context | None, model: Any, name: str
) -> Markup | str:
    """Show a conversation's earlier turns in order, each under its speaker (escaped)."""
    turns = getattr(model, name) or []
    if not isinstance(turns, list) or not turns:
        return ""
    items = Markup("").join(
        Markup(
            '<li class="mb-2" data-role="{}"><div class="small text-muted">{}</div>'
            '<pre class="llm-text mb-0">{}</pre></li>'
        ).format(
            turn.get("role"),
            TURN_ROLES.get(turn.get("role"), turn.get("role")),
            turn.get("content"),
        )
        for turn in turns
        if isinstance(turn, dict)
    )
    return Markup('<ol class="list-unstyled mb-0" data-field="{}">{}</ol>').format(name, items)


def truncated(
    view: BaseModelView, context: Context | None, model: Any, name: str, length: int = 80
) -> Markup:
    """Show the first line of long text in a list cell, the whole text as a tooltip."""
    value = getattr(model, name) or ""
    short = value if len(value) <= length else value[:length] + "…"
    return Markup(f'<span title="{escape(value[:1000])}">{escape(short)}</span>')


def milliseconds(view: BaseModelView, context: Context | None, model: Any, name: str) -> str:
    """Show a latency in ms or s; none for a task that made no call (``calls`` 0: never sent)."""
    value = getattr(model, name)
    if value is None or getattr(model, "calls", None) == 0:
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def email(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup:
    """Show an e-mail that a narrow cell may break only after its "@" and its dots."""
    value = str(escape(getattr(model, name) or ""))
    return Markup(value.replace("@", "@<wbr>").replace(".", ".<wbr>"))


def byte_size(view: BaseModelView, context: Context | None, model: Any, name: str) -> str:
    """Show a size in human units."""
    value = getattr(model, name)
    if value is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def role_label(view: BaseModelView, context: Context | None, model: Any, name: str) -> str:
    """Show a role as people read it."""
    value = getattr(model, name)
    return str(ROLE_LABELS.get(value, value or ""))


def yes_no_badge(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup:
    """Show a boolean as a small badge."""
    value = getattr(model, name)
    return Markup('<span class="badge badge-{}">{}</span>').format(
        "success" if value else "secondary", _("yes") if value else _("no")
    )


# What a member reads about a failed call: our own words per error class, never the endpoint's
# reply (an internal service's body, an address, a port that answered or not). Admins see all.
MEMBER_ERROR_TEXT = {
    "auth": _l("The model's API key was rejected. Ask the model's maintainer to check it."),
    "quota_exceeded": _l("The provider account's quota is used up. Ask the model's maintainer."),
    "context_too_long": _l(
        "The prompt is too long for this model. Shorten it or lower max tokens."
    ),
    "model_not_found": _l("The model was not found at its endpoint. Ask the model's maintainer."),
    "rate_limited": _l("The model endpoint is rate-limiting calls. Run the task again later."),
    "server_error": _l("The model endpoint had a server error (HTTP 5xx). Try again later."),
    "bad_request": _l("The model endpoint rejected the request (HTTP 4xx). Ask an administrator."),
    "bad_response": _l(
        "The model endpoint gave an answer that could not be used. Ask an administrator."
    ),
    "timeout": _l("The model endpoint did not answer in time. Try again later."),
    "connect_timeout": _l("The model endpoint could not be reached. Ask the model's maintainer."),
    "connection_error": _l("The model endpoint could not be reached. Ask the model's maintainer."),
    "stream_cut": _l("The model's answer was cut off. Run the task again."),
    "stream_error": _l("The model reported an error while answering. Run the task again."),
    "blocked_url": _l(
        "The model's address is not allowed by the outbound policy. Ask an administrator."
    ),
    "circuit_open": _l(  # only a task never sent gets this kind: the failures were others'
        "This task was not sent: the model failed repeatedly on other calls and is paused. "
        "Try again in a few minutes."
    ),
    "canceled": _l("The task was canceled."),
    "worker_lost": _l("The worker running the task stopped. Run the task again."),
}
MEMBER_ERROR_DEFAULT = _l("The call to the model failed. An administrator can see the details.")


def _viewer_is_admin() -> bool:
    """Tell whether the person viewing the page is a logged-in admin."""
    return bool(current_user and current_user.is_authenticated and current_user.is_admin)


def error_for_viewer(kind: str | None, error: str | None) -> str:
    """Return a task error as the viewer may see it: in full for admins, classified for members."""
    if not error or _viewer_is_admin():
        return error or ""
    return str(MEMBER_ERROR_TEXT.get(kind or "", MEMBER_ERROR_DEFAULT))


def task_error_text(row: Any) -> str:
    """A task's (or a run's) error in the viewer's language, as far as the viewer may see it.

    With its frame (``error_frame``, ``llmadmin.texts``) the engine's words are rendered in
    the viewer's language around the cause, the provider's words kept as they were; a
    member reads the error class in our words instead of the cause. A row without a frame
    (written before migration 0018) shows its stored text as before (``error_for_viewer``).
    """
    error = getattr(row, "error", None)
    frame = getattr(row, "error_frame", None)
    if not error or not isinstance(frame, dict):
        return error_for_viewer(getattr(row, "error_kind", None), error)
    member_cause = None
    if frame.get("frame") != "text" and not _viewer_is_admin():
        member_cause = str(MEMBER_ERROR_TEXT.get(row.error_kind or "", MEMBER_ERROR_DEFAULT))
    try:
        return render_task_error(frame, _, member_cause)
    except (KeyError, TypeError, ValueError):  # a frame this version cannot read
        return error_for_viewer(row.error_kind, error)


def task_error(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup | str:
    """Show a task's error: the full text to admins, a short classified sentence to members."""
    text = task_error_text(model)
    if not text:
        return ""
    shown = Markup('<pre class="llm-text" data-field="{}">{}</pre>').format(name, text)
    summary = _admin_summary(model)
    return Markup('<div class="small">{}</div>').format(summary) + shown if summary else shown


def _admin_summary(row: Any) -> str:
    """For an admin reading another language: the error class in it, above the full text.

    The cause inside the text stays in the words the engine and the provider wrote it
    (``llm.failures``: English around the provider's own); its class, in the viewer's
    language, says what happened at a glance. A text of ours alone needs none.
    """
    kind, frame = row.error_kind, getattr(row, "error_frame", None)
    if not row.error or not _viewer_is_admin() or kind not in MEMBER_ERROR_TEXT:
        return ""
    if isinstance(frame, dict) and frame.get("frame") == "text":
        return ""
    locale = get_locale()
    return "" if locale is None or locale.language == "en" else str(MEMBER_ERROR_TEXT[kind])


def status_class(status: int | None) -> str:
    """Name an HTTP status by its class ("2xx", "5xx"), or "no reply"."""
    return f"{status // 100}xx" if status else _("no reply")


def connection_test(
    view: BaseModelView, context: Context | None, model: Any, name: str
) -> Markup | str:
    """Show a model's last connection test; members get status class and latency, no reply text."""
    if model.last_test_at is None:
        return ""
    ok = model.last_test_error is None
    admin = _viewer_is_admin()
    return Markup(
        '<span class="badge badge-{}">{}</span> {} <small class="text-muted">{}</small>'
    ).format(
        "success" if ok else "danger",
        (model.last_test_status or _("no reply"))
        if admin
        else status_class(model.last_test_status),
        milliseconds(view, context, model, "last_test_latency_ms"),
        (model.last_test_error or "") if admin else ("" if ok else _("failed")),
    )


def task_status(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup:
    """A task's status badge, with flags when its output is outdated or JSON mode's output is not JSON."""
    badge = status_badge(view, context, model, name)
    if getattr(model, "result_outdated", False):
        badge += Markup(' <span class="badge badge-warning" title="{}">{}</span>').format(
            _("The prompt, model or parameters changed after this output was made."), _("outdated")
        )
    if getattr(model, "output_is_json", None) is False:
        badge += Markup(' <span class="badge badge-danger" title="{}">{}</span>').format(
            _("JSON mode was asked for, but the output does not parse as JSON."), _("not JSON")
        )
    return badge


def outdated_note(
    view: BaseModelView, context: Context | None, model: Any, name: str
) -> Markup | str:
    """Say plainly whether the shown output belongs to the task as it is now."""
    if not getattr(model, name):
        return _("no")
    return Markup('<span class="badge badge-warning">{}</span> {}').format(
        _("outdated"),
        _(
            "The prompt, model or parameters were edited after this output was produced; "
            "it belongs to the previous version. Run the task again to replace it."
        ),
    )


def json_flag(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup | str:
    """JSON mode's check of the output: valid, not valid, or not asked for."""
    value = getattr(model, name)
    if value is None:
        return ""
    if value:
        return Markup('<span class="badge badge-success">{}</span>').format(_("valid JSON"))
    return Markup('<span class="badge badge-danger">{}</span> {}').format(
        _("not valid JSON"), _("JSON mode was asked for, but the output does not parse as JSON.")
    )


def task_link(view: BaseModelView, context: Context | None, model: Any, name: str) -> Markup | str:
    """Link to a related task (e.g. the source of a duplicate): "#18 name"."""
    task = getattr(model, name)
    if task is None:
        return ""
    return Markup('<a href="{}">#{} {}</a>').format(
        url_for("task.details_view", id=task.id), task.id, task.name
    )


class LazyOptions:
    """Filter options read when a page is rendered (Flask-Admin reads a callable only once).

    Read once per request: the same options serve a picker's four filters (equal, not equal,
    in list, not in list), so a list page pays one query per picker, not four.
    """

    def __init__(self, load: Callable[[], list[tuple[str, str]]]) -> None:
        self.load = load

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if not has_request_context():
            return iter(self.load())
        cache = g.setdefault("_lazy_filter_options", {})
        if self.load not in cache:
            cache[self.load] = self.load()
        return iter(cache[self.load])


def _picker_names() -> dict[str, list[str]]:
    """Every model's name and, for admins, every person's name: one statement per request.

    The task list's model and creator pickers share it (``LazyOptions`` keeps each picker's
    options for the request; this keeps the names they are made of).
    """
    if has_request_context() and "_picker_names" in g:
        return g._picker_names
    models = select(literal("model").label("kind"), LLMModel.name.label("name"))
    if _viewer_is_admin():
        people = select(literal("person").label("kind"), Person.name.label("name"))
        statement = union_all(models, people)
    else:
        statement = models
    names: dict[str, list[str]] = {"model": [], "person": []}
    for kind, name in db.session.execute(statement.order_by("kind", "name")):
        names[kind].append(name)
    if has_request_context():
        g._picker_names = names
    return names


def model_name_options() -> list[tuple[str, str]]:
    """The model-name filter's picker: every model's name."""
    return [(n, n) for n in dict.fromkeys(_picker_names()["model"])]


def creator_name_options() -> list[tuple[str, str]]:
    """The creator filter's picker: everybody for admins, oneself for members."""
    if not _viewer_is_admin():
        return [(current_user.name, current_user.name)]
    return [(n, n) for n in dict.fromkeys(_picker_names()["person"])]
