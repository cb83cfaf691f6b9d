"""The Batches panel's cells: counts, status badge, one-click buttons, rejected lines.

Each is a Flask-Admin formatter ``(view, context, model, name)``; the list, the details page
and ``status.json`` (their live refresh) render the same ones.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flask import g, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from llmadmin.models.batch import BatchStatus
from llmadmin.services import batches
from llmadmin.texts import render_said

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context

    from llmadmin.models import Batch

COUNTS = ("total", "queued", "running", "succeeded", "failed", "canceled")
BADGES = {
    BatchStatus.VALIDATING: "secondary",
    BatchStatus.IN_PROGRESS: "primary",
    BatchStatus.FINALIZING: "info",
    BatchStatus.COMPLETED: "success",
    BatchStatus.FAILED: "danger",
    BatchStatus.EXPIRED: "warning",
    BatchStatus.CANCELLING: "dark",
    BatchStatus.CANCELLED: "dark",
}


def _counts_of(view: BaseModelView, batch: Batch):
    cache = g.get("batch_counts")
    if cache is None or batch.id not in cache:
        cache = {**(cache or {}), **batches.refresh([batch])}
        g.batch_counts = cache
    return cache[batch.id]


def count_cell(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
    """A count read from the batch's tasks, refreshed in place while it runs."""
    value = _counts_of(view, model).as_dict()[name]
    return Markup('<span class="js-count" data-id="{}" data-field="{}">{}</span>').format(
        model.id, name, f"{value:,}"
    )


def status_badge(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
    """The batch's status as a badge the list refreshes while the batch is open."""
    return Markup(
        '<span class="badge badge-{} js-status" data-id="{}" data-status="{}">{}</span>'
    ).format(
        BADGES.get(model.status, "light"),
        model.id,
        model.status,
        batches.status_label(model.status),
    )


def creation_progress(model: Batch) -> str:
    """How far the job creating the batch's tasks got (empty once it is done)."""
    if model.status != BatchStatus.VALIDATING:
        return ""
    if model.line_count:
        return _(
            "creating tasks: %(done)s of %(count)s line(s) read",
            done=f"{model.lines:,}",
            count=f"{model.line_count:,}",
        )
    return _("checking the file and creating tasks: %(done)s line(s) read", done=f"{model.lines:,}")


def status_cell(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
    """The badge, and while the tasks are being created, how far that got (refreshed live)."""
    return Markup(
        '{} <small class="text-muted js-count" data-id="{}" data-field="progress">{}</small>'
    ).format(status_badge(view, context, model, name), model.id, creation_progress(model))


def _post_button(url: str, label: str, css: str, confirm: str | None = None) -> Markup:
    return Markup(
        '<form method="post" action="{}" class="d-inline js-batch-action" data-confirm="{}">'
        '<input type="hidden" name="csrf_token" value="{}">'
        '<button class="btn btn-sm btn-{} mb-1" type="submit">{}</button></form> '
    ).format(url, confirm or "", generate_csrf(), css, label)


def actions_cell(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
    """One-click buttons: results (CSV, XLSX), retry failed lines, cancel; and its tasks."""
    found = _counts_of(view, model)
    parts = [
        Markup('<a class="btn btn-sm btn-outline-secondary mb-1" href="{}">{}</a> ').format(
            url_for("task.index_view", flt0_batch_equals=model.id), _("Tasks")
        )
    ]
    for fmt in ("csv", "xlsx"):
        parts.append(
            _post_button(
                view.get_url(".results_view", batch_id=model.id, fmt=fmt),
                _("Results %(format)s", format=fmt.upper()),
                "outline-primary",
            )
        )
    if found.failed:
        parts.append(
            _post_button(
                view.get_url(".retry_view", batch_id=model.id),
                _("Retry failed lines (%(count)s)", count=f"{found.failed:,}"),
                "outline-warning",
            )
        )
    if batches.is_open(model):
        parts.append(
            _post_button(
                view.get_url(".cancel_view", batch_id=model.id),
                _("Cancel"),
                "outline-danger",
                _("Cancel this batch? Unfinished tasks are canceled; results so far are kept."),
            )
        )
    return Markup("").join(parts)


ERRORS_SHOWN = 50
LIVE_CELLS = ("completed_at", "cancelled_at", "actions")  # change while a batch is open


def line_error_text(error: dict) -> str:
    """A rejected line's message in the reader's language (stored as data since 0018's time;
    older rows, and a text the code cannot read, show the message as stored)."""
    frame = error.get("text")
    if isinstance(frame, dict):
        try:
            return render_said(frame)
        except (KeyError, TypeError, ValueError):
            pass
    return error.get("message") or ""


def line_errors_cell(
    view: BaseModelView, context: Context | None, model: Batch, name: str
) -> Markup:
    """The first rejected lines (all of them are in the results file)."""
    errors = json.loads(model.line_errors) if model.line_errors else []
    if not errors:
        return Markup("")
    rows = Markup("").join(
        Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            e["line"], e.get("custom_id") or "", e.get("field") or "", line_error_text(e)
        )
        for e in errors[:ERRORS_SHOWN]
    )
    head = Markup("<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>").format(
        _("Line"), _("Custom ID"), _("Field"), _("Error")
    )
    note = ""
    if model.invalid_lines > ERRORS_SHOWN:
        note = _(
            "The first %(count)s are shown; the results file lists every one.",
            count=ERRORS_SHOWN,
        )
    return Markup('<table class="table table-sm mb-1">{}{}</table><small>{}</small>').format(
        head, rows, note
    )
