"""Base admin views: login required, role checks, per-person scoping, bulk 'all matching'."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import abort, flash, g, redirect, request, session, url_for
from flask_admin.babel import gettext as admin_gettext
from flask_admin.contrib.sqla import ModelView
from flask_admin.helpers import get_redirect_target
from flask_admin.model import filters, typefmt
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from llmadmin import localtime
from llmadmin.admin import selection_args
from llmadmin.admin.formatters import LazyOptions
from llmadmin.admin.list_rows import RowPainter
from llmadmin.admin.listing import ScaleListMixin
from llmadmin.admin.validators import parse_id
from llmadmin.errors import LLMAdminError, QueueUnavailable
from llmadmin.extensions import db
from llmadmin.i18n import detail_datetime_formatter, list_datetime_formatter, viewer_zone
from llmadmin.services import audit, bulk
from llmadmin.services.selections import Selection

if TYPE_CHECKING:
    from collections.abc import Iterable

    from flask.typing import ResponseReturnValue
    from flask_admin.model.base import ViewArgs
    from sqlalchemy.orm import Query

logger = logging.getLogger(__name__)


class ProtectedView(ScaleListMixin, ModelView):
    """A model view for logged-in people; ``admin_only`` views need the admin role."""

    admin_only = False
    can_view_details = True
    can_set_page_size = True
    # Filters in URLs by name (flt0_status_equals=FAILURE), stable across code changes.
    named_filter_urls = True
    page_size = 20
    page_size_options = (20, 50, 100)
    list_template = "admin/model/llmadmin_list.html"
    live_status = False  # the list refreshes its status badges (and counts) via status.json
    # The columns a phone-sized screen keeps (the others are hidden below 768 px).
    phone_columns: tuple[str, ...] = ("id", "name", "status")
    details_template = "admin/model/llmadmin_details.html"
    # Every datetime in one place: lists say "3 minutes ago" (exact local time on hover),
    # details the exact local time; both in the viewer's zone, without microseconds.
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: list_datetime_formatter}
    column_type_formatters_detail = {
        **typefmt.DETAIL_FORMATTERS,
        datetime: detail_datetime_formatter,
    }

    def is_accessible(self) -> bool:
        """Let in logged-in people, and only admins where ``admin_only``."""
        if not current_user.is_authenticated:
            return False
        return current_user.is_admin or not self.admin_only

    def inaccessible_callback(self, name: str, **kwargs: Any) -> ResponseReturnValue:
        """Send anonymous visitors to the login page; refuse others with 403."""
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        abort(403)

    def render(self, template: str, **kwargs: Any) -> str:
        """Give list pages the row painter (rows drawn in Python, same HTML, much faster).

        And what their filter groups were made of: the list's tail keeps their JSON by it.
        """
        if "list_columns" in kwargs and "row_painter" not in kwargs:
            painter = RowPainter(self)
            kwargs["row_painter"] = painter if painter.usable() else None
        if "filter_groups" in kwargs:
            kwargs.setdefault("filter_groups_key", g.get("list_filter_groups_key"))
            kwargs.setdefault("fragment_state", self.fragment_state())
        return super().render(template, **kwargs)

    def fragment_state(self) -> tuple:
        """What this person may do here, as the list's kept parts show it (fragments.py).

        The "Create" link, the row buttons' column, export and modal links: properties that
        may differ from person to person (``LLMModelView`` offers them to admins only).
        """
        return (
            bool(self.can_create),
            bool(self.can_edit),
            bool(self.can_delete),
            bool(self.can_view_details),
            bool(self.can_export),
            bool(self.column_display_actions),
            tuple(type(action).__name__ for action in self.get_list_row_actions()),
        )

    def get_one(self, id: Any) -> Any:
        """Load one row by a validated id (404 for an id that cannot exist)."""
        return super().get_one(str(parse_id(id)))

    def _refresh_filters_cache(self) -> None:
        """Read the times typed into datetime filters in the viewer's zone (columns hold UTC)."""
        self._filter_groups_made: dict[tuple, Any] = {}
        super()._refresh_filters_cache()
        for flt in self._filters or ():
            if isinstance(flt, DATETIME_FILTERS):
                flt.clean = _local_time_clean(flt.clean)

    def _get_filter_groups(self) -> Any:
        """Flask-Admin's filter groups (filter menu and its JSON), made once per language and options.

        Flask-Admin translates every filter's label, operation and options on each list page;
        they change only with the language and the pickers' options (read per request by
        ``LazyOptions``, so a new model or person shows at once), which make the key.
        """
        groups = getattr(self, "_filter_groups", None)
        g.list_filter_groups_key = None
        if not groups:
            return super()._get_filter_groups()
        picked = tuple(
            tuple(item["options"])
            for group in groups.values()
            for item in group
            if isinstance(item["options"], LazyOptions)
        )
        key = (str(get_locale()), picked)
        cache = self.__dict__.setdefault("_filter_groups_made", {})
        made = cache.get(key)
        if made is None:
            if len(cache) >= 16:
                cache.clear()
            made = cache[key] = super()._get_filter_groups()
        g.list_filter_groups_key = key  # the list's tail keeps their JSON by it (fragments.py)
        return made

    def get_actions_list(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """Flask-Admin's allowed actions and confirmations, their texts translated once per language.

        Allowed is asked per request (it may depend on the person); the texts are kept by
        language and the allowed names, as Flask-Admin's ``get_actions_list`` makes them.
        """
        allowed = tuple(name for name, _text in self._actions if self.is_action_allowed(name))
        key = (str(get_locale()), allowed)
        cache = self.__dict__.setdefault("_actions_lists", {})
        made = cache.get(key)
        if made is None:
            texts = dict(self._actions)
            confirmations = {name: self._actions_data[name][2] for name in allowed}
            made = cache[key] = (
                [(name, str(texts[name])) for name in allowed],
                {name: str(text) for name, text in confirmations.items() if text},
            )
        return list(made[0]), dict(made[1])

    def get_filter_arg(self, index: int, flt: Any) -> str:
        """Name filters in URLs from their English labels: links and bookmarks work in any language."""
        with force_locale("en"):
            return super().get_filter_arg(index, flt)

    def validate_form(self, form: Any) -> bool:
        """Validate, then make lazy error texts plain strings (Flask-Admin shows only ``str``)."""
        valid = super().validate_form(form)
        for field in form:
            if field.errors:
                field.errors = [e if isinstance(e, str) else str(e) for e in field.errors]
        return valid

    def _get_list_extra_args(self) -> ViewArgs:
        """Clamp the page number and drop NUL bytes so odd URLs never reach the database.

        ``ScaleListMixin`` takes the keyset arguments (after, before) out first.
        """
        view_args = super()._get_list_extra_args()
        if view_args.page is not None and not 0 <= view_args.page <= 10_000_000:
            view_args.page = 0
        if view_args.search:
            view_args.search = view_args.search.replace("\x00", "")
        if view_args.filters:
            view_args.filters = [
                (i, name, value.replace("\x00", "") if isinstance(value, str) else value)
                for i, name, value in view_args.filters
            ]
        return view_args

    def handle_view_exception(self, exc: Exception) -> bool:
        """Flash our own errors as messages; leave the rest to Flask-Admin."""
        if isinstance(exc, LLMAdminError):
            flash(str(exc), "error")
            return True
        return super().handle_view_exception(exc)

    def handle_action(self, return_view: str | None = None) -> ResponseReturnValue:
        """Audit a ticked action, send 'all matching' to the bulk queue, flash a queue outage."""
        if request.form.get("all_matching") == "1":
            return self._queue_all_matching()
        action = request.form.get("action", "")
        if action in self._actions_data and self.is_action_allowed(action):
            ids = request.form.getlist("rowid")
            audit.record(
                f"action:{action}",
                self.endpoint,
                ",".join(ids[:100]),
                f"{self.audit_label(action)} on {len(ids)} row(s)",
                commit=False,
            )
        try:
            return super().handle_action(return_view)
        except QueueUnavailable as exc:
            flash(
                _(
                    "%(error)s Nothing was lost: the rows wait and are sent automatically later.",
                    error=exc,
                ),
                "error",
            )
            return redirect(get_redirect_target() or self.get_url(".index_view"))

    def _queue_all_matching(self) -> ResponseReturnValue:
        """Start the posted action on all rows matching the list, or flash why not."""
        action = request.form.get("action", "")
        back = get_redirect_target() or self.get_url(".index_view")
        if not bulk.supports(self.endpoint, action) or not self.is_action_allowed(action):
            flash(_("This action cannot be applied to all matching rows."), "error")
            return redirect(back)
        try:
            selection = self.selection_from_form()
            arguments = self.bulk_extra(action)
        except LLMAdminError as exc:
            flash(str(exc), "error")
            return redirect(back)
        return self.start_all_matching(selection, action, arguments, back)

    def start_all_matching(
        self, selection: Selection, action: str, arguments: dict, back: str
    ) -> ResponseReturnValue:
        """Store and enqueue ``action`` on all rows of ``selection``; flash and go ``back``."""
        try:
            operation, queued = bulk.start_operation(selection, action, arguments)
        except LLMAdminError as exc:
            flash(str(exc), "error")
            return redirect(back)
        audit.record(
            f"action:{action}",
            self.endpoint,
            str(operation.id),
            f"{self.audit_label(action)} on all {operation.matched} rows matching: "
            + operation.description,
        )
        label, count = self.action_label(action), f"{operation.matched:,}"
        if queued:
            message = _(
                "“%(action)s” is being applied to all %(count)s matching rows in the background.",
                action=label,
                count=count,
            )
        else:
            message = _(
                "“%(action)s” on all %(count)s matching rows waits: the job queue is unreachable "
                "right now, and it starts automatically when it is back.",
                action=label,
                count=count,
            )
        flash_operation(message, operation.id, "success" if queued else "warning")
        return redirect(back)

    def run_ticked(self, action: str, ids: list[int], **arguments: Any) -> Any:
        """Apply ``action`` to ticked ids now through the bulk registry, recording the operation.

        Return the service's answer; ``flash_ticked`` links to the recorded row.
        """
        operation, result = bulk.run_ticked(
            self.endpoint, action, ids, current_user.id, arguments or None
        )
        g.bulk_operation_id = operation.id  # views are shared: keep it per request
        return result

    def flash_ticked(self, message: str, category: str = "success") -> None:
        """Flash ``message`` with a link to the operation ``run_ticked`` recorded."""
        flash_operation(message, g.get("bulk_operation_id"), category)

    def bulk_extra(self, action: str) -> dict:
        """Extra arguments an action needs in bulk (e.g. the target model of a duplicate)."""
        return {}

    def action_label(self, action: str) -> str:
        """Return the label an action shows in the Actions menu (its name if unknown)."""
        data = self._actions_data.get(action)
        return str(data[1]) if data else action

    def audit_label(self, action: str) -> str:
        """The action's name as the audit log keeps it: in English, whoever acted."""
        with force_locale("en"):
            return self.action_label(action)

    def selection_from_form(self) -> Selection:
        """The selection of all rows matching the list URL posted as ``list_args``."""
        return selection_args.selection_from_query_string(
            self, request.form.get("list_args", ""), current_user.id
        )

    def current_selection(self, ids: Iterable[int] | None = None) -> Selection:
        """The selection of the list URL being shown (or of the ticked ``ids``)."""
        return selection_args.selection_from_args(self, request.args, current_user.id, ids=ids)


class ScopedView(ProtectedView):
    """Members see and act only on rows they created; admins see all."""

    owner_column = "creator_id"

    def _scope(self, query: Query) -> Query:
        """Narrow ``query`` to the current person's rows unless they are an admin."""
        if current_user.is_admin:
            return query
        return query.filter(getattr(self.model, self.owner_column) == current_user.id)

    def get_query(self) -> Query:
        """Return the list query, scoped to the current person."""
        return self._scope(super().get_query())

    def get_count_query(self) -> Query:
        """Return the count query, scoped to the current person."""
        return self._scope(super().get_count_query())

    def get_one(self, id: Any) -> Any:
        """Load one row within the current person's scope, or 404."""
        row = (
            self._scope(db.session.query(self.model))
            .filter(self.model.id == parse_id(id))
            .one_or_none()
        )
        if row is None:
            abort(404)
        return row

    def rows_for_live_status(self, limit: int = 200) -> list:
        """The rows a list's live refresh asks for (``?ids=1,2,3``), within this person's scope."""
        wanted = [
            int(i) for i in request.args.get("ids", "").split(",") if i.isdigit() and len(i) < 10
        ]
        query = self._scope(db.session.query(self.model)).filter(self.model.id.in_(wanted[:limit]))
        return query.all()

    def visible_ids(self, ids: Iterable[str | int]) -> list[int]:
        """Return ``ids`` if every one is visible to the current person, else 404."""
        wanted = {parse_id(i) for i in ids}
        if not wanted:
            return []
        found = {
            row_id
            for (row_id,) in self._scope(db.session.query(self.model.id))
            .filter(self.model.id.in_(wanted))
            .all()
        }
        if found != wanted:
            abort(404)
        return sorted(found)


DATETIME_FILTERS = (filters.BaseDateTimeFilter, filters.BaseDateTimeBetweenFilter)


def _local_time_clean(clean):
    def local_clean(value):
        return clean(localtime.local_text_to_utc(value, viewer_zone()))

    return local_clean


def flash_operation(message: str, operation_id: int | None, category: str = "success") -> None:
    """Flash ``message`` followed by a link to its row in the Bulk operations panel."""
    if operation_id is None:
        flash(message, category)
        return
    link = Markup(' <a href="{}">{}</a>').format(
        url_for("bulkoperation.details_view", id=operation_id),
        _("Bulk operation #%(id)s", id=operation_id),
    )
    flash(Markup("{}{}").format(message, link), category)


def drop_generic_flash() -> None:
    """Drop Flask-Admin's "Record was successfully created." when a message of ours says more."""
    generic = admin_gettext("Record was successfully created.")
    flashes = session.get("_flashes") or []
    if len(flashes) > 1 and any(str(m) == generic for _c, m in flashes):
        session["_flashes"] = [(c, m) for c, m in flashes if str(m) != generic]
