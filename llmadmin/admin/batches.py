"""The Batches panel: upload a file of prompts, preview, confirm; live counts, results, retry, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, flash, g, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from markupsafe import Markup, escape
from wtforms import HiddenField, StringField
from wtforms.validators import Length, Optional

from llmadmin.admin.base import ScopedView
from llmadmin.admin.batch_cells import (
    COUNTS,
    LIVE_CELLS,
    actions_cell,
    count_cell,
    creation_progress,
    line_errors_cell,
    status_badge,
    status_cell,
)
from llmadmin.errors import LLMAdminError, QueueUnavailable
from llmadmin.models.batch import BATCH_STATUSES
from llmadmin.services import batch_files, batches

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from llmadmin.models import Batch


class UploadForm(FlaskForm):
    """The upload form: the file and an optional name for the batch."""

    file = FileField(_l("File"), validators=[FileRequired(_l("Choose a file to upload."))])
    name = StringField(
        _l("Name"),
        validators=[
            Optional(),
            Length(max=200, message=_l("The name may be at most %(max)d characters.")),
        ],
        description=_l("Defaults to the file's name."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file.description = upload_help()


def upload_help() -> str:
    """The file field's help: the columns in the reader's language (either name is accepted)."""
    labels = batch_files.COLUMN_LABELS
    return _(
        "CSV (UTF-8) or XLSX whose first row names the columns; accepted: %(columns)s. "
        "%(prompt)s and %(model)s are required, %(parameters)s is JSON. Or JSONL: one task "
        "object per line (messages: earlier turns), or OpenAI batch request lines (multi-turn "
        "messages accepted).",
        columns=batch_files.accepted_columns(),
        prompt=labels["prompt"],
        model=labels["model"],
        parameters=labels["parameters"],
    )


class ConfirmForm(FlaskForm):
    """The preview's confirm button: which upload, under which name."""

    upload_id = HiddenField()
    name = HiddenField()


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
        "status": status_cell,
        "actions": actions_cell,
        **{name: count_cell for name in COUNTS},
    }
    column_formatters_detail = {**column_formatters, "line_errors": line_errors_cell}

    def get_list(self, *args: Any, **kwargs: Any) -> Any:
        """The page's rows with their counts (one GROUP BY for the page; open batches settle)."""
        count, rows = super().get_list(*args, **kwargs)
        if kwargs.get("execute", True) and rows:
            g.batch_counts = batches.refresh(list(rows))
        return count, rows

    def get_one(self, id: Any) -> Batch:
        """The batch, settled first (one commit) so that its page shows one consistent state."""
        row = super().get_one(id)
        g.batch_counts = {**(g.get("batch_counts") or {}), **batches.refresh([row])}
        return row

    @expose("/status.json")
    def status_json(self) -> Response:
        """Statuses, counts and changing cells of the given batches, for live refresh.

        ``?view=details`` renders the cells as the details page shows them.
        """
        rows = self.rows_for_live_status()
        g.batch_counts = found = batches.refresh(rows)
        details = request.args.get("view") == "details"
        formatters = self.column_formatters_detail if details else self.column_formatters
        types = self.column_type_formatters_detail if details else self.column_type_formatters
        return jsonify(
            {
                str(row.id): {
                    "status": row.status,
                    "badge": str(status_badge(self, None, row, "status")),
                    "progress": creation_progress(row),
                    "cells": {
                        name: str(escape(self._get_list_value(None, row, name, formatters, types)))
                        for name in LIVE_CELLS
                    },
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
            made = batches.batch_of_upload(form.upload_id.data, current_user.id)
            if made is None:
                flash(str(exc), "error")
                return redirect(self.get_url(".create_view"))
            flash(_("Batch #%(id)s was already created from this upload.", id=made.id), "info")
            return redirect(self.get_url(".details_view", id=made.id))
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
