"""List rows drawn in Python: what every row shares is rendered once per page.

Flask-Admin's ``list_row`` block renders each row's buttons through Jinja macros (the delete
button a whole form with its CSRF field, two ``url_for`` calls per link) and each cell through
a block with ``is_editable`` and ``get_value``: at 20 rows that is most of a list page's time,
~20 times what the keyset query costs. ``RowPainter`` makes the same HTML:

* row buttons of Flask-Admin's own kinds (view, edit, delete, as links or pop-ups) and ours
  marked ``same_for_every_row`` depend on the row's id only, so each is rendered by
  Flask-Admin's own macro with a random marker as the id, and the marker is replaced by each
  row's id when that is plain digits (the same text in HTML, attributes and URLs; the CSRF
  token and return URL are the page's). They are kept on the view by language, list URL and
  actions, each page's CSRF token swapped in (``_shared_buttons``). Any other row action is
  rendered per row, as Flask-Admin does;
* cells are what the view's ``_get_list_value`` gives (the formatters ``get_value`` calls),
  escaped as Jinja escapes them; its steps are taken here with what it looks up per cell
  looked up once per page (each column's formatter and choices, the type formatter of each
  value type: the first match in ``column_type_formatters``' order, as its loop finds it);
  a view that overrides ``_get_list_value`` or ``_get_field_value`` gets them called. List
  time cells come from one ``TimeCells`` per page (the zone, its name and the language read
  once).

The list template's ``list_row`` block falls back to Flask-Admin's own block for a view with
editable columns or a composite primary key, and for a row whose id is not plain digits
(``row`` returns None there).
"""

from __future__ import annotations

import secrets
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import request
from flask_admin.babel import gettext as admin_gettext
from flask_admin.model import BaseModelView
from flask_admin.model.template import (
    DeleteRowAction,
    EditPopupRowAction,
    EditRowAction,
    ViewPopupRowAction,
    ViewRowAction,
)
from flask_admin.tools import rec_getattr
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from jinja2 import pass_context
from markupsafe import Markup, escape

from llmadmin.i18n import TimeCells, list_datetime_formatter

if TYPE_CHECKING:
    from jinja2.runtime import Context

BUTTONS_KEPT = 64  # per view: languages x list URLs x kinds of person

# Flask-Admin's row actions whose macros use nothing of the row but its id.
ID_ONLY_ACTIONS = (
    ViewRowAction,
    ViewPopupRowAction,
    EditRowAction,
    EditPopupRowAction,
    DeleteRowAction,
)


def same_for_every_row(action: Any) -> bool:
    """Tell whether a row action's HTML depends on nothing but the row's id."""
    return type(action) in ID_ONLY_ACTIONS or getattr(action, "same_for_every_row", False)


class RowPainter:
    """Render a list page's rows (``<td>`` cells of one ``<tr>``) for one request."""

    def __init__(self, view: BaseModelView) -> None:
        self.view = view
        # Random per page: a search term or a return URL cannot contain it by chance or design.
        self.marker = f"rowid{secrets.token_hex(8)}"
        self.buttons: list[list[str] | None] | None = None
        self.cells: list[tuple[str, Markup, Any, dict]] | None = None
        self.checkbox: list[str] | None = None
        self.type_formatters: dict | None = None
        self.formatter_of_type: dict[type, Any] = {}
        kind = type(view)
        self.plain_values = (
            kind._get_list_value is BaseModelView._get_list_value
            and kind._get_field_value is BaseModelView._get_field_value
        )

    def usable(self) -> bool:
        """Tell whether this view's rows can be painted here (else Flask-Admin's block runs)."""
        view = self.view
        return not view.column_editable_list and isinstance(
            getattr(view, "_primary_key", None), str
        )

    def _prepare(self, context: Context) -> None:
        self.buttons = self._shared_buttons(context)
        view = self.view
        self.cells = [
            (
                name,
                Markup('<td class="col-{}">').format(name),
                view.column_formatters.get(name),
                view._column_choices_map.get(name, {}),
            )
            for name, _label in context["list_columns"]
        ]
        # The same time cells as ``list_datetime_formatter``, with zone and language read once.
        times = TimeCells()
        self.type_formatters = {
            kind: (lambda _view, value, _name: times.cell(value))
            if formatter is list_datetime_formatter
            else formatter
            for kind, formatter in self.view.column_type_formatters.items()
        }
        checkbox = Markup(
            '<td><input type="checkbox" name="rowid" class="action-checkbox" value="{}" '
            'title="{}" /></td>'
        ).format(Markup(self.marker), admin_gettext("Select record"))
        self.checkbox = str(checkbox).split(self.marker)

    def _shared_buttons(self, context: Context) -> list[list[str] | None]:
        """The shared row buttons cut at the row id, kept on the view from page to page.

        Their HTML shows the language, the list URL they return to, the actions and this
        request's CSRF token: kept by the first three, with the token swapped for each page's
        (a button whose form carries another token is rendered anew, never kept).
        """
        actions = context.get("list_row_actions") or ()
        key = (
            str(get_locale()),
            request.script_root,
            context.get("return_url"),
            tuple((type(a), getattr(a, "template_name", None), str(a.title)) for a in actions),
        )
        cache = self.view.__dict__.setdefault("_llmadmin_row_buttons", {})
        token = generate_csrf()
        kept = cache.get(key)
        if kept is not None:
            parts, old = kept
            return [
                None if cut is None else [p.replace(old, token) for p in cut] if old else cut
                for cut in parts
            ]
        stand_in = SimpleNamespace(**{self.view._primary_key: self.marker})
        parts = [
            str(action.render_ctx(context, self.marker, stand_in)).split(self.marker)
            if same_for_every_row(action)
            else None
            for action in actions
        ]
        html = "".join("".join(cut) for cut in parts if cut)
        if "csrf_token" not in html or token in html:
            if len(cache) >= BUTTONS_KEPT:
                cache.clear()
            cache[key] = (parts, token if token in html else "")
        return parts

    @pass_context
    def row(self, context: Context, row: Any) -> Markup | None:
        """Return the row's cells as Flask-Admin's ``list_row`` block would, or None to use it."""
        row_id = self.view.get_pk_value(row)  # Flask-Admin's text of the id ("42")
        text = str(row_id)
        if not (text.isascii() and text.isdigit()):
            return None
        if self.buttons is None:
            self._prepare(context)
        html: list[str] = []
        if context.get("actions"):
            html.append(text.join(self.checkbox))
        if self.view.column_display_actions:
            html.append('<td class="list-buttons-column">')
            for action, parts in zip(
                context.get("list_row_actions") or (), self.buttons, strict=True
            ):
                if parts is None:
                    html.append(str(action.render_ctx(context, row_id, row)))
                else:
                    html.append(text.join(parts))
            html.append("</td>")
        for name, opening, formatter, choices in self.cells:
            value = self._value(context, row, name, formatter, choices)
            html.append(f"{opening}{escape(value)}</td>")
        return Markup("".join(html))

    def _value(self, context: Context, row: Any, name: str, formatter: Any, choices: dict) -> Any:
        """The cell's value as ``_get_list_value`` gives it, its per-cell look-ups done once."""
        view = self.view
        if not self.plain_values:
            return view._get_list_value(
                context, row, name, view.column_formatters, self.type_formatters
            )
        value = formatter(view, context, row, name) if formatter else rec_getattr(row, name)
        if choices:
            return choices.get(value) or value
        kind = type(value)
        if kind not in self.formatter_of_type:
            self.formatter_of_type[kind] = next(
                (f for t, f in self.type_formatters.items() if isinstance(value, t)), None
            )
        type_formatter = self.formatter_of_type[kind]
        if type_formatter is None:
            return value
        try:
            return type_formatter(view, value, name)
        except TypeError:  # an older two-argument formatter: Flask-Admin's own path copes
            return view._get_list_value(
                context, row, name, view.column_formatters, self.type_formatters
            )
