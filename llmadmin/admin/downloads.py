"""The Download Center panel: members see their own files, admins all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import url_for
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import inspect

from llmadmin.admin import formatters
from llmadmin.admin.base import ScopedView
from llmadmin.admin.validators import text_field
from llmadmin.models.download import STATUSES, SUCCESS
from llmadmin.services import downloads

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context

    from llmadmin.models import Download


def _file_link(
    view: BaseModelView, context: Context | None, model: Download, name: str
) -> Markup | str:
    """Link the file name to its download once the file is ready."""
    if model.status != SUCCESS:
        return model.file_name
    return Markup('<a href="{}">{}</a>').format(
        url_for("downloads.fetch", download_id=model.id), model.file_name
    )


def _name(view: BaseModelView, context: Context | None, model: Download, name: str) -> str:
    """The download's name in the reader's language (one a person typed stays as typed)."""
    return downloads.display_name(model)


def _progress(view: BaseModelView, context: Context | None, model: Download, name: str) -> str:
    """Show the final row count, or the rows written so far while running."""
    if model.row_count is not None:
        return f"{model.row_count:,}"
    return f"{model.progress_rows or 0:,}…" if model.status == "RUNNING" else ""


class DownloadView(ScopedView):
    """Exported files: rename, download, delete; members see their own."""

    can_create = False
    can_export = False
    list_template = "admin/download_list.html"
    details_template = "admin/download_details.html"
    column_list = (
        "id",
        "name",
        "file_name",
        "status",
        "progress_rows",
        "size_bytes",
        "creator",
        "created_at",
        "finished_at",
        "expires_at",
    )
    column_details_list = (
        "id",
        "name",
        "file_name",
        "file_format",
        "status",
        "progress_rows",
        "row_count",
        "size_bytes",
        "md5",
        "duration_ms",
        "error",
        "creator",
        "created_at",
        "started_at",
        "finished_at",
        "expires_at",
    )
    column_searchable_list = ("name", "file_name")
    column_filters = (
        "status",
        "name",
        "file_name",
        "creator.name",
        "created_at",
        "finished_at",
        "file_format",
    )
    column_sortable_list = (
        "id",
        "name",
        "file_name",
        "status",
        "row_count",
        "size_bytes",
        "created_at",
        "finished_at",
        "expires_at",
    )
    column_default_sort = ("id", True)
    column_labels = {
        "id": _l("ID"),
        "name": _l("Task name"),
        "file_name": _l("File name"),
        "status": _l("Status"),
        "size_bytes": _l("Size"),
        "progress_rows": _l("Rows"),
        "row_count": _l("Rows"),
        "md5": _l("MD5"),
        "duration_ms": _l("Duration"),
        "error": _l("Error"),
        "creator": _l("Creator"),
        "creator.name": _l("Creator"),
        "file_format": _l("Format"),
        "created_at": _l("Created at"),
        "started_at": _l("Started at"),
        "finished_at": _l("Finished at"),
        "expires_at": _l("Expires at"),
    }
    column_formatters = {
        "name": _name,
        "status": formatters.status_badge,
        "size_bytes": formatters.byte_size,
        "file_name": _file_link,
        "duration_ms": formatters.milliseconds,
        "progress_rows": _progress,
    }
    column_formatters_detail = column_formatters
    column_choices = {"status": formatters.status_choices(STATUSES)}
    form_columns = ("name",)
    form_args = {
        "name": {
            "label": _l("Task name"),
            "validators": [text_field(_l("Task name"), required=True, max_chars=300)],
        }
    }

    def on_model_change(self, form, model: Download, is_created: bool) -> None:
        """A name a person types is theirs: it is no longer rendered from the export's frame."""
        if inspect(model).attrs.name.history.has_changes():
            model.name_frame = None
        super().on_model_change(form, model, is_created)

    @action("delete", _l("Delete"), _l("Delete the selected downloads and their files?"))
    def action_delete(self, ids: list[str]) -> None:
        """Delete the ticked downloads now; their files go in the background."""
        count = self.run_ticked("delete", self.visible_ids(ids))
        self.flash_ticked(
            _(
                "%(count)s download(s) deleted; their files are removed in the background.",
                count=count,
            )
        )
