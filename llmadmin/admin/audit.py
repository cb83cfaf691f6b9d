"""The Audit Log panel: read-only for everyone, admins only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from llmadmin.admin.read_only import ReadOnlyLogView

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context

    from llmadmin.models import AuditEntry


def _changes(
    view: BaseModelView, context: Context | None, model: AuditEntry, name: str
) -> Markup | str:
    """Show an entry's recorded changes as preformatted text."""
    if not model.changes:
        return ""
    return Markup('<pre class="llm-text">{}</pre>').format(model.changes)


class AuditView(ReadOnlyLogView):
    """Who did what, when and from where: every change, action and sign-in."""

    column_list = ("at", "person_label", "ip", "action", "object_type", "object_id", "summary")
    phone_columns = ("at", "person_label", "summary")
    column_details_list = (
        "at",
        "person_id",
        "person_label",
        "ip",
        "action",
        "object_type",
        "object_id",
        "summary",
        "changes",
    )
    column_filters = ("person_label", "action", "object_type", "object_id", "at", "ip")
    column_searchable_list = ("person_label", "action", "object_id", "summary")
    column_sortable_list = ("at", "person_label", "action", "object_type")
    column_labels = {
        "person_id": _l("Person ID"),
        "person_label": _l("Person"),
        "at": _l("When"),
        "ip": _l("IP"),
        "action": _l("Action"),
        "object_type": _l("Object"),
        "object_id": _l("Object id"),
        "summary": _l("Summary"),
        "changes": _l("Changes"),
    }
    column_formatters_detail = {"changes": _changes}
