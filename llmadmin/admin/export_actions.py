"""Export actions for list views: queue a CSV / XLSX / ZIP file in the Download Center.

Both "ticked rows" and "all rows matching the search and filters" are handled here
rather than through ``ProtectedView.bulk_services``: a bulk service is applied to chunks
of ids after the request counted them, while an export must produce *one* file and the
request must not count or read the rows at all. So the request stores the ticked ids or
the list's query string on a PENDING Download row, and the worker expands it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import flash, redirect, request, url_for
from flask_admin.actions import action
from flask_admin.helpers import get_redirect_target
from flask_login import current_user
from markupsafe import Markup

from llmadmin.errors import ValidationError
from llmadmin.services import downloads as download_service
from llmadmin.services import export_sources

PREFIX = "export_"
OPERATION_SIGNS = {"equals": "=", "not equal": "≠", "greater than": ">", "smaller than": "<"}


class ExportActionsMixin:
    """List the export actions; put the mixin before ProtectedView/ScopedView in the bases."""

    export_source = ""  # key of services.downloads.SOURCES; found from the endpoint when empty

    def export_source_key(self) -> str:
        """Return the SOURCES key that says what this list exports."""
        return self.export_source or export_sources.source_for_endpoint(self.endpoint)

    @action("export_csv", "Export CSV to Download Center", None)
    def action_export_csv(self, ids):
        return self.queue_export("csv", ids)

    @action("export_xlsx", "Export XLSX to Download Center", None)
    def action_export_xlsx(self, ids):
        return self.queue_export("xlsx", ids)

    @action("export_zip", "Export ZIP (CSV + prompt and output files) to Download Center", None)
    def action_export_zip(self, ids):
        return self.queue_export("zip", ids)

    def is_action_allowed(self, name):
        if name.startswith(PREFIX):
            source = export_sources.SOURCES.get(self.export_source_key())
            if source is None or name[len(PREFIX) :] not in source.formats:
                return False
        return super().is_action_allowed(name)

    def handle_action(self, return_view=None):
        name = request.form.get("action", "")
        if name.startswith(PREFIX) and request.form.get("all_matching") == "1":
            return self.queue_export(name[len(PREFIX) :], None)
        return super().handle_action(return_view)

    def queue_export(self, fmt: str, ids):
        """Record the export (ticked ``ids``, or all matching rows when None) and enqueue it."""
        back = get_redirect_target() or self.get_url(".index_view")
        if not self.is_action_allowed(PREFIX + fmt):
            flash("This export is not available here.", "error")
            return redirect(back)
        if ids is None:
            list_args = request.form.get("list_args", "")[:4000]
            selection = {"list_args": list_args, "description": self.describe_list_args(list_args)}
        else:
            ids = self.visible_ids(ids) if hasattr(self, "visible_ids") else _ints(ids)
            selection = {"ids": ids, "description": f"{len(ids):,} ticked row(s)"}
        try:
            download, queued = download_service.create_export(
                self.export_source_key(), fmt, current_user.id, **selection
            )
        except ValidationError as exc:
            flash(str(exc), "error")
            return redirect(back)
        center = Markup('<a href="{}">Download Center</a>').format(url_for("download.index_view"))
        if queued:
            flash(
                Markup(
                    "“{}” is being prepared in the {}; you will be told here when it is ready."
                ).format(download.name, center),
                "success",
            )
        else:
            flash(
                Markup(
                    "“{}” waits in the {}: the job queue is unreachable right now, and the "
                    "export starts automatically when it is back."
                ).format(download.name, center),
                "warning",
            )
        return redirect(back)

    def describe_list_args(self, list_args: str) -> str:
        """Describe a list URL's search and filters for people, e.g. ``status=FAILURE``."""
        parts = []
        for key, value in parse_qsl(list_args):
            if key == "search" and value:
                parts.append(f"search “{value}”")
            elif key.startswith("flt") and "_" in key:
                found = (self._filter_args or {}).get(key[3:].split("_", 1)[1])
                if found:
                    parts.append(_describe_filter(found[1], value))
        return ", ".join(parts) or "all rows"


def _describe_filter(flt, value: str) -> str:
    segments = [s.strip() for s in str(flt.name).split("/")]
    label = segments[0] if len(segments) == 1 else f"{segments[0]} {segments[-1]}"
    operation = str(flt.operation())
    sign = OPERATION_SIGNS.get(operation)
    return f"{label.lower()}{sign}{value}" if sign else f"{label.lower()} {operation} {value}"


def _ints(ids) -> list[int]:
    from llmadmin.admin.base import _int_or_404

    return [_int_or_404(i) for i in ids]
