"""The Bulk operations panel (read-only): who did what to which rows, and how far it got."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import jsonify, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from llmadmin.admin import formatters
from llmadmin.admin.base import ScopedView
from llmadmin.models.bulk_operation import BulkStatus
from llmadmin.services import selections

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
    return Markup('<a href="{}">{}</a>').format(
        url_for("download.details_view", id=model.download_id),
        _("Download #%(id)s", id=model.download_id),
    )


ACTION_LABELS = {
    "run": _l("Run / Re-run"),
    "retry": _l("Retry failed"),
    "cancel": _l("Cancel"),
    "duplicate": _l("Duplicate to another model…"),
    "delete": _l("Delete"),
    "test": _l("Test connection"),
    "enable": _l("Enable"),
    "disable": _l("Disable"),
    "sign_out": _l("Sign out everywhere"),
    "export_csv": _l("Export CSV"),
    "export_xlsx": _l("Export XLSX"),
    "export_zip": _l("Export ZIP"),
}
LIST_LABELS = {
    "task": _l("Tasks"),
    "llmmodel": _l("LLM Models"),
    "person": _l("People"),
    "download": _l("Download Center"),
}


def _action(view: BaseModelView, context: Context | None, model: BulkOperation, name: str) -> str:
    """Show an action's name in the viewer's language."""
    label = ACTION_LABELS.get(model.action)
    return str(label) if label is not None else model.action.replace("_", " ")


def _list_name(
    view: BaseModelView, context: Context | None, model: BulkOperation, name: str
) -> str:
    """Show a list's name in the viewer's language."""
    label = LIST_LABELS.get(model.list_name)
    return str(label) if label is not None else model.list_name


def _rows(view: BaseModelView, context: Context | None, model: BulkOperation, name: str) -> str:
    """Describe the rows acted on in the viewer's language, from the stored selection."""
    return selections.describe_stored(model.selection, model.description)


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
    phone_columns = ("id", "action", "status", "processed")
    column_sortable_list = ("id", "action", "list_name", "status", "matched", "created_at")
    column_sortable_list += ("finished_at",)
    column_searchable_list = ("description",)
    column_filters = ("status", "action", "list_name", "creator.name", "created_at")
    column_labels = {
        "id": _l("ID"),
        "creator": _l("Who"),
        "action": _l("Action"),
        "list_name": _l("List"),
        "description": _l("Rows"),
        "status": _l("Status"),
        "matched": _l("Matched"),
        "processed": _l("Processed"),
        "changed": _l("Changed"),
        "skipped": _l("Skipped"),
        "created_at": _l("Created at"),
        "started_at": _l("Started at"),
        "finished_at": _l("Finished at"),
        "error": _l("Error"),
        "download": _l("File"),
        "arguments": _l("Arguments"),
        "last_id": _l("Last ID"),
        "job_id": _l("Job ID"),
        "creator.name": _l("Who"),
    }
    column_formatters = {
        "status": formatters.status_badge,
        "download": _download_link,
        "action": _action,
        "list_name": _list_name,
        "description": _rows,
        **{name: _count for name in COUNTS},
    }
    column_formatters_detail = column_formatters
    column_choices = {"status": formatters.status_choices(s.value for s in BulkStatus)}

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
