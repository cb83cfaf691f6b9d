"""The Bulk operations panel (read-only): who did what to which rows, and how far it got."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import jsonify, url_for
from flask_admin import expose
from markupsafe import Markup

from llmadmin.admin import formatters
from llmadmin.admin.base import ScopedView
from llmadmin.models.bulk_operation import BulkStatus

if TYPE_CHECKING:
    from flask import Response
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context

    from llmadmin.models import BulkOperation

COUNTS = ("matched", "processed", "changed", "skipped")


def _count(view: BaseModelView, context: Context | None, model: BulkOperation, name: str) -> Markup:
    """A count the list page refreshes in place while the operation runs."""
    value = getattr(model, name)
    return Markup('<span class="js-count" data-id="{}" data-field="{}">{}</span>').format(
        model.id, name, "" if value is None else f"{value:,}"
    )


def _download_link(
    view: BaseModelView, context: Context | None, model: BulkOperation, name: str
) -> Markup | str:
    """Link to the Download Center row an export operation produced."""
    if model.download_id is None:
        return ""
    return Markup('<a href="{}">Download #{}</a>').format(
        url_for("download.details_view", id=model.download_id), model.download_id
    )


def _action(view: BaseModelView, context: Context | None, model: BulkOperation, name: str) -> str:
    """Show an action's name with spaces instead of underscores."""
    return model.action.replace("_", " ")


class BulkOperationView(ScopedView):
    """Members see their own operations, admins all; nothing can be edited here."""

    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    live_status = True
    column_list = (
        "id",
        "creator",
        "action",
        "list_name",
        "description",
        "status",
        *COUNTS,
        "created_at",
        "finished_at",
        "error",
        "download",
    )
    column_details_list = (*column_list[:-1], "arguments", "last_id", "job_id", "started_at")
    column_default_sort = ("id", True)
    column_sortable_list = ("id", "action", "list_name", "status", "matched", "created_at")
    column_sortable_list += ("finished_at",)
    column_searchable_list = ("description",)
    column_filters = ("status", "action", "list_name", "creator.name", "created_at")
    column_labels = {
        "creator": "Who",
        "list_name": "List",
        "description": "Rows",
        "download": "File",
        "creator.name": "Who",
    }
    column_formatters = {
        "status": formatters.status_badge,
        "download": _download_link,
        "action": _action,
        **{name: _count for name in COUNTS},
    }
    column_formatters_detail = column_formatters
    column_choices = {"status": [(s.value, s.value) for s in BulkStatus]}

    @expose("/status.json")
    def status_json(self) -> Response:
        """Statuses and counts of the given operations, for live refresh without reloading."""
        rows = self.rows_for_live_status()
        return jsonify(
            {
                str(op.id): {
                    "status": op.status,
                    "badge": str(formatters.status_badge(self, None, op, "status")),
                    **{
                        name: "" if getattr(op, name) is None else f"{getattr(op, name):,}"
                        for name in COUNTS
                    },
                }
                for op in rows
            }
        )
