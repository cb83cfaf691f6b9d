"""The Batches panel: upload a file of prompts, preview, confirm; live counts, results, retry, cancel."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flask import current_app, flash, g, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from flask_wtf.file import FileField, FileRequired
from markupsafe import Markup
from wtforms import HiddenField, StringField
from wtforms.validators import Length, Optional

from llmadmin.admin.base import ScopedView
from llmadmin.errors import LLMAdminError, QueueUnavailable
from llmadmin.models.batch import BATCH_STATUSES, BatchStatus
from llmadmin.services import batches

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context
    from werkzeug.wrappers import Response

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


class UploadForm(FlaskForm):
    """The upload form: the file and an optional name for the batch."""

    file = FileField(
        _l("File"),
        validators=[FileRequired(_l("Choose a file to upload."))],
        description=_l(
            "CSV (UTF-8) or XLSX with a first row naming the columns prompt, model and "
            "optionally name, system_prompt, parameters (JSON), custom_id, temperature, "
            "max_tokens, top_p, stop, seed, response_format, frequency_penalty, "
            "presence_penalty; or JSONL: one task object per line (messages: earlier turns), "
            "or OpenAI batch request lines (multi-turn messages accepted)."
        ),
    )
    name = StringField(
        _l("Name"),
        validators=[
            Optional(),
            Length(max=200, message=_l("The name may be at most %(max)d characters.")),
        ],
        description=_l("Defaults to the file's name."),
    )


class ConfirmForm(FlaskForm):
    """The preview's confirm button: which upload, under which name."""

    upload_id = HiddenField()
    name = HiddenField()


def _counts_of(view: BaseModelView, batch: Batch):
    cache = g.get("batch_counts")
    if cache is None or batch.id not in cache:
        cache = {**(cache or {}), **batches.refresh([batch])}
        g.batch_counts = cache
    return cache[batch.id]


def _count(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
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


def _status(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
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


def _actions(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
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


def _line_errors(view: BaseModelView, context: Context | None, model: Batch, name: str) -> Markup:
    """The first rejected lines (all of them are in the results file)."""
    errors = json.loads(model.line_errors) if model.line_errors else []
    if not errors:
        return Markup("")
    rows = Markup("").join(
        Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            e["line"], e.get("custom_id") or "", e.get("field") or "", e["message"]
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


class BatchView(ScopedView):
    """Members see their own batches, admins all; batches are made by uploading a file."""

    can_create = True
    can_edit = False
    can_delete = False
    can_export = False
    live_status = True
    list_template = "admin/batch_list.html"
    details_template = "admin/batch_details.html"
    column_list = (
        "id",
        "name",
        "creator",
        "source_name",
        "status",
        *COUNTS,
        "invalid_lines",
        "created_at",
        "completed_at",
        "actions",
    )
    column_details_list = (
        *column_list[:-1],
        "source_format",
        "lines",
        "in_progress_at",
        "expires_at",
        "completion_window",
        "cancelled_at",
        "expired_at",
        "error",
        "line_errors",
        "actions",
    )
    column_default_sort = ("id", True)
    column_sortable_list = ("id", "name", "status", "created_at", "completed_at")
    column_searchable_list = ("name", "source_name")
    column_filters = ("status", "creator.name", "created_at")
    column_choices = {"status": [(s.value, batches.STATUS_LABELS[s]) for s in BATCH_STATUSES]}
    column_labels = {
        "id": _l("ID"),
        "name": _l("Name"),
        "creator": _l("Creator"),
        "creator.name": _l("Creator"),
        "source_name": _l("File"),
        "source_format": _l("Format"),
        "status": _l("Status"),
        "total": _l("Tasks"),
        "queued": _l("Queued"),
        "running": _l("Running"),
        "succeeded": _l("Succeeded"),
        "failed": _l("Failed"),
        "canceled": _l("Canceled"),
        "invalid_lines": _l("Invalid lines"),
        "lines": _l("Lines read"),
        "created_at": _l("Created at"),
        "completed_at": _l("Completed at"),
        "in_progress_at": _l("Started at"),
        "cancelled_at": _l("Canceled at"),
        "expires_at": _l("Expires at"),
        "expired_at": _l("Expired at"),
        "completion_window": _l("Completion window"),
        "error": _l("Error"),
        "actions": _l("Actions"),
        "line_errors": _l("Invalid lines"),
    }
    column_formatters = {
        "status": _status,
        "actions": _actions,
        **{name: _count for name in COUNTS},
    }
    column_formatters_detail = {**column_formatters, "line_errors": _line_errors}

    def get_list(self, *args: Any, **kwargs: Any) -> Any:
        """The page's rows with their counts (one GROUP BY for the page; open batches settle)."""
        count, rows = super().get_list(*args, **kwargs)
        if kwargs.get("execute", True) and rows:
            g.batch_counts = batches.refresh(list(rows))
        return count, rows

    @expose("/status.json")
    def status_json(self) -> Response:
        """Statuses and counts of the given batches, for the list's live refresh."""
        rows = self.rows_for_live_status()
        found = batches.refresh(rows)
        return jsonify(
            {
                str(row.id): {
                    "status": row.status,
                    "badge": str(status_badge(self, None, row, "status")),
                    "progress": creation_progress(row),
                    **{k: f"{v:,}" for k, v in found[row.id].as_dict().items()},
                }
                for row in rows
            }
        )

    # --- upload, preview, confirm ------------------------------------------------------

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> Any:
        """Upload a file and show its preview; nothing is created yet."""
        form = UploadForm()
        limit = current_app.config["BATCH_MAX_UPLOAD_BYTES"]
        if request.method == "POST" and (request.content_length or 0) > limit:
            flash(_("The file is larger than %(limit)s MB.", limit=f"{limit / 1e6:,.0f}"), "error")
            return self.render("admin/batch_upload.html", form=UploadForm(formdata=None))
        if not form.validate_on_submit():
            return self.render("admin/batch_upload.html", form=form)
        try:
            upload_id = batches.store_upload(
                form.file.data.stream, form.file.data.filename, current_user.id
            )
            meta, summary = batches.validate_upload(upload_id, current_user.id)
        except LLMAdminError as exc:
            flash(str(exc), "error")
            return self.render("admin/batch_upload.html", form=form)
        confirm = ConfirmForm(formdata=None, upload_id=upload_id, name=form.name.data or "")
        return self.render("admin/batch_preview.html", meta=meta, summary=summary, confirm=confirm)

    @expose("/confirm/", methods=("POST",))
    def confirm_view(self) -> Response:
        """Create the batch of a previewed upload: its valid lines' tasks, queued."""
        form = ConfirmForm()
        if not form.validate_on_submit():
            flash(_("The form expired; upload the file again."), "error")
            return redirect(self.get_url(".create_view"))
        try:
            batch = batches.create_batch(
                form.upload_id.data, current_user.id, form.name.data or None
            )
        except LLMAdminError as exc:
            flash(str(exc), "error")
            return redirect(self.get_url(".create_view"))
        if getattr(batch, "queued", True):
            flash(
                _(
                    "Batch #%(id)s accepted: its tasks are being created in the background; "
                    "this page shows the progress.",
                    id=batch.id,
                ),
                "success",
            )
        else:
            flash(
                _(
                    "Batch #%(id)s accepted, but the job queue is unreachable: its tasks are "
                    "created as soon as it is back.",
                    id=batch.id,
                ),
                "warning",
            )
        return redirect(self.get_url(".details_view", id=batch.id))

    # --- one-click actions -------------------------------------------------------------

    @expose("/<int:batch_id>/retry/", methods=("POST",))
    def retry_view(self, batch_id: int) -> Response:
        """Run the batch's failed lines again."""
        batch = self._posted(batch_id)
        return self._outcome(lambda: batches.retry_failed_lines(batch.id), "queued again")

    @expose("/<int:batch_id>/cancel/", methods=("POST",))
    def cancel_view(self, batch_id: int) -> Response:
        """Cancel the batch's unfinished tasks."""
        batch = self._posted(batch_id)
        return self._outcome(lambda: batches.cancel_batch(batch.id), "canceled")

    @expose("/<int:batch_id>/results/<fmt>/", methods=("POST",))
    def results_view(self, batch_id: int, fmt: str) -> Response:
        """Queue the batch's results file in the Download Center."""
        batch = self._posted(batch_id)
        try:
            download, queued = batches.export_results(batch.id, current_user, fmt)
        except LLMAdminError as exc:
            flash(str(exc), "error")
            return redirect(self._back())
        link = Markup(' <a href="{}">{}</a>').format(
            url_for("download.details_view", id=download.id), _("Download Center")
        )
        message = (
            _("The results file is being written.")
            if queued
            else _("The results file waits: the job queue is unreachable; it starts later.")
        )
        flash(Markup("{}{}").format(message, link), "success" if queued else "warning")
        return redirect(self._back())

    def _posted(self, batch_id: int) -> Batch:
        """The batch of a one-click POST (CSRF checked by the app), within the person's scope."""
        return self.get_one(str(batch_id))

    def _back(self) -> str:
        return request.referrer or self.get_url(".index_view")

    def _outcome(self, run, verb: str) -> Response:
        try:
            outcome = run()
        except QueueUnavailable as exc:
            flash(str(exc), "error")
        except LLMAdminError as exc:
            flash(str(exc), "error")
        else:
            flash(outcome.describe(verb), "success")
        return redirect(self._back())
