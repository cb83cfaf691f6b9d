"""List pages that stay fast at millions of rows: a capped count, keyset pages, indexed search.

Flask-Admin counts every matching row for its pager (``COUNT(*)``, a full scan of a search)
and pages with OFFSET (reads every skipped row). Here the count stops at ``COUNT_CAP``
(``SEARCH_COUNT_CAP`` with a search) and shows "10,000+" beyond; a list ordered by id alone pages by keyset (``?after=`` /
``?before=``: the id of the row the page continues from) when the offset would be deep;
search uses the same conditions as stored selections (``services.selections``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g
from flask_admin.contrib.sqla import ModelView
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from llmadmin.extensions import db
from llmadmin.services import selections

COUNT_CAP = 10_000
# With a text search every counted row is a match to verify in the table (PostgreSQL reads
# its heap page, SQLite its row): 1,000 keeps that to a few milliseconds.
SEARCH_COUNT_CAP = 1_000
KEYSET_ARGS = ("after", "before")


class ListCount(int):
    """A row count; ``capped`` when the rows were counted only up to ``cap``."""

    capped = False

    def __new__(cls, value: int, capped: bool = False):
        count = super().__new__(cls, value)
        count.capped = capped
        return count

    def __str__(self) -> str:
        return f"{int(self):,}+" if self.capped else f"{int(self):,}"

    def __format__(self, spec: str) -> str:
        return str(self) if self.capped else format(int(self), spec)


@dataclass
class Paging:
    """What the list template's pager needs beyond Flask-Admin's page numbers."""

    keyset: bool  # the list is ordered by id alone: "older/newer" links work at any depth
    mode: str | None  # "after"/"before" when this page was reached by keyset, else None
    first_id: int | None
    last_id: int | None
    has_newer: bool  # rows come before this page in the list's order
    has_older: bool  # rows come after this page in the list's order
    search_floor: int | None  # a short search term was looked for in ids >= this
    short_term_window: int


class ScaleListMixin(ModelView):
    """``get_list`` with a capped count, keyset paging and the selections' search."""

    def _get_list_extra_args(self):
        view_args = super()._get_list_extra_args()
        g.list_keyset = None
        for name in KEYSET_ARGS:
            value = view_args.extra_args.pop(name, None)
            if value is not None and value.isdigit() and len(value) < 12:
                g.list_keyset = (name, int(value))
        view_args.extra_args.pop("search_floor", None)
        return view_args

    def keyset_descending(self, sort_column, sort_desc) -> bool | None:
        """Return the id direction when the list is ordered by id alone, else None."""
        if sort_column is not None:
            return bool(sort_desc) if sort_column == "id" else None
        default = self.column_default_sort
        if isinstance(default, tuple) and default[0] == "id":
            return bool(default[1])
        return False if default == "id" else None

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        """Return (capped count, rows): Flask-Admin's ``get_list`` without its full count."""
        joins: dict = {}
        query = self.get_query()
        if self._search_supported and search:
            query, _, joins, _ = self._apply_search(query, None, joins, {}, search)
        if filters and self._filters:
            query, _, joins, _ = self._apply_filters(query, None, joins, {}, filters)
        count = capped_count(query, self.model, SEARCH_COUNT_CAP if search else COUNT_CAP)
        for join in self._auto_joins:
            query = query.options(joinedload(join))
        page_size = page_size if page_size is not None else self.page_size
        descending = self.keyset_descending(sort_column, sort_desc)
        keyset = g.get("list_keyset") if descending is not None and execute else None
        if keyset is None:
            query, joins = self._apply_sorting(query, joins, sort_column, sort_desc)
            query = self._apply_pagination(query, page, page_size)
            if not execute:
                return count, query
            rows = query.all()
            seen = (page or 0) * (page_size or 0) + len(rows)
            newer = bool(page)
            older = len(rows) == page_size and (count.capped or seen < count)
        else:
            rows, newer, older = self._keyset_rows(query, keyset, descending, page_size)
        g.list_paging = Paging(
            keyset=descending is not None,
            mode=keyset[0] if keyset else None,
            first_id=rows[0].id if rows else None,
            last_id=rows[-1].id if rows else None,
            has_newer=newer,
            has_older=older,
            search_floor=g.get("list_search_floor"),
            short_term_window=selections.SHORT_TERM_WINDOW,
        )
        self._template_args["paging"] = g.list_paging
        return count, rows

    def _keyset_rows(self, query, keyset, descending: bool, page_size: int):
        """The page after (or before) the row with id ``keyset[1]`` in id order."""
        direction, pivot = keyset
        column = self.model.id
        forward = direction == "after"
        newer = (column > pivot) if descending else (column < pivot)
        older = (column < pivot) if descending else (column > pivot)
        toward_end = descending == forward  # walking toward smaller ids
        query = query.filter(older if forward else newer)
        query = query.order_by(column.desc() if toward_end else column.asc())
        rows = query.limit(page_size + 1).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        if forward:
            return rows, True, more  # the page we came from is before these
        rows.reverse()
        return rows, more, True

    def _apply_search(self, query, count_query, joins, count_joins, search):
        """Search as stored selections do (``services.selections.search_conditions``)."""
        spec = selections.LISTS.get(self.endpoint)
        if spec is None or any("." in ref for ref in spec.search):
            return super()._apply_search(query, count_query, joins, count_joins, search)
        floor = None
        if selections.uses_short_term_window(spec, search):
            floor = g.list_search_floor = selections.short_term_floor(spec)
        conditions = selections.search_conditions(
            spec, search, lambda ref: getattr(self.model, ref), floor
        )
        query = query.filter(*conditions)
        if count_query is not None:
            count_query = count_query.filter(*conditions)
        return query, count_query, joins, count_joins


def capped_count(query, model, cap: int) -> ListCount:
    """Count ``query``'s rows, reading at most ``cap + 1`` of them."""
    inner = query.order_by(None).with_entities(model.id).limit(cap + 1).subquery()
    found = db.session.execute(select(func.count()).select_from(inner)).scalar_one()
    return ListCount(min(found, cap), capped=found > cap)
