"""Export actions for list views: queue a CSV / XLSX / ZIP file in the Download Center.

Both "ticked rows" and "all rows matching the search and filters" are handled here
rather than through the bulk action registry (``services.bulk.ACTIONS``): a bulk service
is applied to chunks of ids, while an export must produce *one* file and the request
must not count or read the rows at all. So the request stores the list's selection
(``services.selections``) on a PENDING Download row, and the worker expands it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import flash, redirect, request, url_for
from flask_admin.actions import action
from flask_admin.helpers import get_redirect_target
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from llmadmin.admin.validators import parse_ids
from llmadmin.errors import ValidationError
from llmadmin.i18n import markup_text
from llmadmin.labels import inner_quotes
from llmadmin.services import downloads as download_service
from llmadmin.services import export_sources
from llmadmin.services.selections import Selection

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

PREFIX = "export_"


class ExportActionsMixin:
    """List the export actions; put the mixin before ProtectedView/ScopedView in the bases."""

    export_source = ""  # key of services.downloads.SOURCES; found from the endpoint when empty
    # More exports of the same rows: action name -> (SOURCES key, format).
    extra_exports: dict[str, tuple[str, str]] = {}

    def export_source_key(self) -> str:
        """Return the SOURCES key that says what this list exports."""
        return self.export_source or export_sources.source_for_endpoint(self.endpoint)

    @action("export_csv", _l("Export CSV to Download Center"), None)
    def action_export_csv(self, ids: list[str]) -> ResponseReturnValue:
        """Queue a CSV export of the ticked rows."""
        return self.queue_export("csv", ids)

    @action("export_xlsx", _l("Export XLSX to Download Center"), None)
    def action_export_xlsx(self, ids: list[str]) -> ResponseReturnValue:
        """Queue an XLSX export of the ticked rows."""
        return self.queue_export("xlsx", ids)

    @action("export_zip", _l("Export ZIP (CSV + prompt and output files) to Download Center"), None)
    def action_export_zip(self, ids: list[str]) -> ResponseReturnValue:
        """Queue a ZIP export (CSV plus prompt and output files) of the ticked rows."""
        return self.queue_export("zip", ids)

    def export_target(self, name: str) -> tuple[str, str]:
        """Return the (SOURCES key, format) an export action's name stands for."""
        if name in self.extra_exports:
            return self.extra_exports[name]
        return self.export_source_key(), name[len(PREFIX) :]

    def is_action_allowed(self, name: str) -> bool:
        """Hide export actions whose source or format this list does not offer."""
        if name.startswith(PREFIX):
            key, fmt = self.export_target(name)
            source = export_sources.SOURCES.get(key)
            if source is None or fmt not in source.formats:
                return False
        return super().is_action_allowed(name)

    def handle_action(self, return_view: str | None = None) -> ResponseReturnValue:
        """Send 'all matching' exports to ``queue_export``; other actions go on as usual."""
        name = request.form.get("action", "")
        if name.startswith(PREFIX) and request.form.get("all_matching") == "1":
            return self.queue_export(name[len(PREFIX) :], None)
        return super().handle_action(return_view)

    def queue_export(self, fmt: str, ids: list[str] | None) -> ResponseReturnValue:
        """Record the export (ticked ``ids``, or all matching rows when None) and enqueue it.

        ``fmt`` is the action's name without its prefix: a format, or an ``extra_exports`` entry.
        """
        back = get_redirect_target() or self.get_url(".index_view")
        if not self.is_action_allowed(PREFIX + fmt):
            flash(_("This export is not available here."), "error")
            return redirect(back)
        source_key, fmt = self.export_target(PREFIX + fmt)
        try:
            if ids is None:
                selection = self.selection_from_form()
            else:
                ids = self.visible_ids(ids) if hasattr(self, "visible_ids") else parse_ids(ids)
                selection = Selection(self.endpoint, current_user.id, ids=tuple(sorted(set(ids))))
            download, queued = download_service.create_export(source_key, fmt, selection)
        except ValidationError as exc:
            flash(str(exc), "error")
            return redirect(back)
        center = Markup('<a href="{}">{}</a>').format(
            url_for("download.index_view"), _("Download Center")
        )
        operation_id = download_service.operation_of(download.id)
        if operation_id is not None:
            center += Markup(' (<a href="{}">{}</a>)').format(
                url_for("bulkoperation.details_view", id=operation_id),
                _("Bulk operation #%(id)s", id=operation_id),
            )
        if queued:
            message = markup_text(
                "“%(name)s” is being prepared in the %(center)s; you will be told here "
                "when it is ready.",
                name=inner_quotes(download.name),
                center=center,
            )
            flash(message, "success")
        else:
            message = markup_text(
                "“%(name)s” waits in the %(center)s: the job queue is unreachable right "
                "now, and the export starts automatically when it is back.",
                name=inner_quotes(download.name),
                center=center,
            )
            flash(message, "warning")
        return redirect(back)
