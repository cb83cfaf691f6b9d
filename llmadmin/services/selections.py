"""Stored selections: a list's ticked ids, search, filters and sort as plain data.

A person's view of a list (what the admin shows, what an export writes, what a bulk action
changes) is saved as a ``Selection`` and turned back into a SQLAlchemy ``select`` here,
with the same per-person scope as the admin lists, in a request or in a worker alike.
Nothing here knows about Flask requests, logins or admin views: the admin maps its own
filter objects onto ``LISTS`` (a test checks that every filter it offers maps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, String, Unicode, cast, func, literal_column, not_, or_, select
from sqlalchemy.orm import aliased

from llmadmin.errors import SelectionDenied, ValidationError
from llmadmin.extensions import db
from llmadmin.labels import inner_quotes
from llmadmin.models import Download, LLMModel, Person, Task
from llmadmin.models.task import TASK_SEARCH_TABLE

MAX_TICKED_IDS = 10_000
# Trigram indexes (SQLite FTS5 trigram, PostgreSQL pg_trgm) find substrings of 3+ characters.
SEARCH_INDEX_MIN_CHARS = 3
# A search term with no run of 3 characters (退款, "ok") is looked for in the newest this
# many rows (by id) of an indexed list: anything more would read every prompt.
SHORT_TERM_WINDOW = 20_000
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # what the admin's date filters send

# filter kind -> the operations the admin lists offer for it
OPERATIONS: dict[str, tuple[str, ...]] = {
    "text": (
        "equals",
        "not_equal",
        "contains",
        "not_contains",
        "empty",
        "in_list",
        "not_in_list",
    ),
    "bool": ("equals", "not_equal"),
    "int": ("equals", "not_equal", "greater", "smaller", "empty", "in_list", "not_in_list"),
    "datetime": (
        "equals",
        "not_equal",
        "greater",
        "smaller",
        "between",
        "not_between",
        "empty",
    ),
}
SIGNS = {"equals": "=", "not_equal": "≠", "greater": ">", "smaller": "<"}


@dataclass(frozen=True)
class Selection:
    """Which rows of a list a person means: ticked ids, or search + filters (+ sort)."""

    list_name: str
    person_id: int
    ids: tuple[int, ...] | None = None
    search: str = ""
    filters: tuple[tuple[str, str, str], ...] = ()
    sort: str | None = None
    sort_desc: bool = False
    # Lowest id a short search term was looked for at (``short_term_floor``); kept so a stored
    # selection selects the rows the list showed, even after new rows arrived.
    search_floor: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON-able data."""
        return {
            "list": self.list_name,
            "person_id": self.person_id,
            "ids": list(self.ids) if self.ids is not None else None,
            "search": self.search,
            "filters": [list(f) for f in self.filters],
            "sort": self.sort,
            "sort_desc": self.sort_desc,
            "search_floor": self.search_floor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """Rebuild a selection from ``to_dict``'s data, validating it against ``LISTS``."""
        try:
            ids = data.get("ids")
            selection = cls(
                list_name=str(data["list"]),
                person_id=int(data["person_id"]),
                ids=tuple(sorted({int(i) for i in ids})) if ids is not None else None,
                search=str(data.get("search") or ""),
                filters=tuple((str(f), str(o), str(v)) for f, o, v in data.get("filters") or ()),
                sort=data.get("sort") or None,
                sort_desc=bool(data.get("sort_desc")),
                search_floor=_optional_int(data.get("search_floor")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(_("The stored selection is unreadable.")) from exc
        validate(selection)
        return selection

    @property
    def all_matching(self) -> bool:
        return self.ids is None


# --- the registry: what each list searches, filters and sorts on --------------------------


@dataclass(frozen=True)
class FilterField:
    ref: str  # "status" or "model.name": a column, or a relationship then a column
    kind: str  # a key of OPERATIONS
    label: Any  # how a person reads it: "status", "model name"


@dataclass(frozen=True)
class ListSpec:
    model: type
    owner: str | None  # column holding the person a member must be; None: everyone sees all
    admin_only: bool  # members may not read the list at all
    actions_admin_only: bool  # members may read but not act (bulk actions, exports)
    search: tuple[str, ...]  # refs searched, each term must match one of them
    filters: dict[str, FilterField]
    sort: dict[str, str]  # sort name (the admin's column name) -> ref
    default_sort: tuple[str, bool]  # ref, descending
    noun: str = "rows"
    search_index: bool = False  # name/prompt have trigram indexes (migration 0011)


def _text(ref: str, label: str) -> FilterField:
    return FilterField(ref, "text", label)


def _bool(ref: str, label: str) -> FilterField:
    return FilterField(ref, "bool", label)


def _when(ref: str, label: str) -> FilterField:
    return FilterField(ref, "datetime", label)


def _int(ref: str, label: str) -> FilterField:
    return FilterField(ref, "int", label)


LISTS: dict[str, ListSpec] = {
    "task": ListSpec(
        model=Task,
        owner="creator_id",
        admin_only=False,
        actions_admin_only=False,
        search=("name", "prompt"),
        filters={
            "status": _text("status", _l("status")),
            "model": _text("model.name", _l("model name")),
            "creator": _text("creator.name", _l("creator name")),
            "creator_email": _text("creator.email", _l("creator email")),
            "created_at": _when("created_at", _l("created at")),
            "finished_at": _when("finished_at", _l("finished at")),
            "error_kind": _text("error_kind", _l("error class")),
            "finish_reason": _text("finish_reason", _l("finish reason")),
            "result_outdated": _bool("result_outdated", _l("output outdated")),
            "output_is_json": _bool("output_is_json", _l("output is JSON")),
            "batch": _int("batch_id", _l("batch")),
        },
        sort={
            **{c: c for c in ("id", "name", "status", "attempts", "latency_ms", "cost")},
            **{c: c for c in ("created_at", "finished_at")},
            "model": "model.name",
            "creator": "creator.name",
        },
        default_sort=("id", True),
        noun="tasks",
        search_index=True,
    ),
    "llmmodel": ListSpec(
        model=LLMModel,
        owner=None,
        admin_only=False,
        actions_admin_only=True,
        search=("name", "model_name", "base_url"),
        filters={
            "enabled": _bool("enabled", _l("enabled")),
            "simulated": _bool("simulated", _l("simulated")),
            "model_name": _text("model_name", _l("model name at provider")),
            "maintainer": _text("maintainer.name", _l("maintainer name")),
            "created_at": _when("created_at", _l("created at")),
        },
        sort={
            c: c
            for c in (
                "id",
                "name",
                "model_name",
                "enabled",
                "max_concurrency",
                "rpm_limit",
                "updated_at",
            )
        },
        default_sort=("id", False),
        noun="models",
    ),
    "person": ListSpec(
        model=Person,
        owner=None,
        admin_only=True,
        actions_admin_only=True,
        search=("name", "email", "phone"),
        filters={
            "active": _bool("active", _l("active")),
            "role": _text("role", _l("role")),
            "otp_required": _bool("otp_required", _l("one-time code at sign-in")),
            "created_at": _when("created_at", _l("created at")),
        },
        sort={c: c for c in ("id", "name", "email", "role", "active", "created_at")},
        default_sort=("id", True),
        noun="people",
    ),
    "download": ListSpec(
        model=Download,
        owner="creator_id",
        admin_only=False,
        actions_admin_only=False,
        search=("name", "file_name"),
        filters={
            "status": _text("status", _l("status")),
            "name": _text("name", _l("task name")),
            "file_name": _text("file_name", _l("file name")),
            "creator": _text("creator.name", _l("creator name")),
            "created_at": _when("created_at", _l("created at")),
            "finished_at": _when("finished_at", _l("finished at")),
            "file_format": _text("file_format", _l("format")),
        },
        sort={
            c: c
            for c in (
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
        },
        default_sort=("id", True),
        noun="downloads",
    ),
}


def spec_for(list_name: str) -> ListSpec:
    """Return the registry entry of ``list_name`` or refuse an unknown list."""
    spec = LISTS.get(list_name)
    if spec is None:
        raise ValidationError(_("Unknown list %(name)r.", name=list_name))
    return spec


def validate(selection: Selection) -> None:
    """Refuse a selection that names an unknown list, filter, operation, value or sort."""
    spec = spec_for(selection.list_name)
    if selection.ids is not None and len(selection.ids) > MAX_TICKED_IDS:
        raise ValidationError(_("Too many ticked rows; use “all matching rows” instead."))
    for name, operation, value in selection.filters:
        found = spec.filters.get(name)
        if found is None or operation not in OPERATIONS[found.kind]:
            raise ValidationError(
                _(
                    "The list cannot be filtered by %(name)s %(operation)s.",
                    name=name,
                    operation=operation,
                )
            )
        _clean(found.kind, operation, value)
    if selection.sort is not None and selection.sort not in spec.sort:
        raise ValidationError(_("The list cannot be sorted by %(sort)s.", sort=selection.sort))


# --- from a selection to a query ----------------------------------------------------------


def check_access(selection: Selection, *, acting: bool = False) -> Person:
    """Return the person behind the selection if they may still read (or act on) the list."""
    spec = spec_for(selection.list_name)
    person = db.session.get(Person, selection.person_id)
    if person is None or not person.active:
        raise SelectionDenied(
            _("The person who asked for this was deleted or deactivated; nothing was done.")
        )
    if not person.is_admin and (spec.admin_only or (acting and spec.actions_admin_only)):
        raise SelectionDenied(_("You no longer have access to this list."))
    return person


def build_query(
    selection: Selection,
    columns: Iterable[Any] | None = None,
    *,
    ordered: bool = True,
    acting: bool = False,
) -> Select:
    """Return the ``select`` of the selection's rows (or ``columns``), scoped to its person.

    ``ordered`` sorts like the list (its sort field or the default); ``acting`` also refuses
    members on lists where only admins may act.
    """
    validate(selection)
    spec = spec_for(selection.list_name)
    person = check_access(selection, acting=acting)
    builder = _Builder(spec, select(*(columns or [spec.model])).select_from(spec.model))
    model = spec.model
    if spec.owner and not person.is_admin:
        builder.where(getattr(model, spec.owner) == person.id)
    if selection.ids is not None:
        builder.where(model.id.in_(selection.ids))
    if selection.search:
        floor = selection.search_floor
        if floor is None and uses_short_term_window(spec, selection.search):
            floor = short_term_floor(spec)
        for condition in search_conditions(spec, selection.search, builder.column, floor):
            builder.where(condition)
    for name, operation, value in selection.filters:
        found = spec.filters[name]
        builder.where(_condition(builder.column(found.ref), found.kind, operation, value))
    if ordered:
        ref, desc = (
            (spec.sort[selection.sort], selection.sort_desc)
            if selection.sort
            else spec.default_sort
        )
        column = builder.column(ref)
        builder.stmt = builder.stmt.order_by(column.desc() if desc else column)
    return builder.stmt


def matching_ids(selection: Selection, after: int = 0, limit: int | None = None) -> list[int]:
    """Return the ids of the selection's rows after ``after``, in id order."""
    model = spec_for(selection.list_name).model
    stmt = build_query(selection, [model.id], ordered=False, acting=True)
    stmt = stmt.where(model.id > after).order_by(model.id)
    if limit:
        stmt = stmt.limit(limit)
    return list(db.session.execute(stmt).scalars())


def count_matching(selection: Selection) -> int:
    """Count the selection's rows."""
    model = spec_for(selection.list_name).model
    inner = build_query(selection, [model.id], ordered=False, acting=True).subquery()
    return db.session.execute(select(db.func.count()).select_from(inner)).scalar_one()


class _Builder:
    """A ``select`` plus the outer joins it made, one aliased join per relationship path."""

    def __init__(self, spec: ListSpec, stmt: Select) -> None:
        self.spec, self.stmt, self.joins = spec, stmt, {}

    def where(self, condition) -> None:
        self.stmt = self.stmt.where(condition)

    def column(self, ref: str):
        *path, name = ref.split(".")
        entity = self.spec.model
        for depth, hop in enumerate(path):
            key = ".".join(path[: depth + 1])
            if key not in self.joins:
                relationship = getattr(entity, hop)
                target = aliased(relationship.property.mapper.class_)
                self.stmt = self.stmt.outerjoin(target, relationship.of_type(target))
                self.joins[key] = target
            entity = self.joins[key]
        return getattr(entity, name)


# --- search ---------------------------------------------------------------------------------


def search_terms(search: str) -> list[str]:
    """Split a search as Flask-Admin does: on spaces (not tabs), every term must match."""
    return [term for term in search.split(" ") if term]


def _indexed_runs(term: str) -> list[str]:
    """The literal runs of ``term``'s LIKE pattern long enough for a trigram index."""
    runs = re.split(r"[%_]", like_term(term))
    return [run for run in runs if len(run) >= SEARCH_INDEX_MIN_CHARS]


def uses_short_term_window(spec: ListSpec, search: str) -> bool:
    """Whether a term of ``search`` is too short for the list's search index."""
    return spec.search_index and any(not _indexed_runs(t) for t in search_terms(search))


def short_term_floor(spec: ListSpec) -> int:
    """The lowest id of the newest ``SHORT_TERM_WINDOW`` ids a short term is looked for in."""
    newest = db.session.execute(select(func.max(spec.model.id))).scalar() or 0
    return max(1, newest - SHORT_TERM_WINDOW + 1)


def search_conditions(
    spec: ListSpec, search: str, column: Callable[[str], Any], floor: int | None = None
) -> list:
    """Return the WHERE conditions of ``search`` over ``spec.search`` (``column`` resolves refs).

    Every term must match one searched column by (case-insensitive) LIKE, as Flask-Admin's
    search does: that condition decides. On an indexed list SQLite also narrows the rows by
    the FTS5 trigram table first (it finds a superset: same substrings, wider case folding);
    PostgreSQL's planner uses the pg_trgm indexes for the ILIKE by itself. A term without 3
    literal characters limits the search to ids >= ``floor`` (see ``short_term_floor``).
    """
    conditions = []
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    fts = spec.search_index and sqlite
    for term in search_terms(search):
        pattern = like_term(term)
        caseless = sqlite or pattern.lower() == pattern.upper()  # 退款, 2025: LIKE is ILIKE
        conditions.append(or_(*(_ilike(column(ref), pattern, caseless) for ref in spec.search)))
        runs = _indexed_runs(term)
        if fts and runs:
            match = " AND ".join('"' + run.replace('"', '""') + '"' for run in runs)
            candidates = select(TASK_SEARCH_TABLE.c.rowid).where(
                literal_column("task_fts").op("MATCH")(match)
            )
            conditions.append(spec.model.id.in_(candidates))
    if floor is not None and uses_short_term_window(spec, search):
        conditions.append(spec.model.id >= floor)
    return conditions


def _ilike(column, pattern: str, like_is_ilike: bool):
    """Case-insensitive LIKE, spelt as plain LIKE where that means the same and costs less.

    SQLite's LIKE folds ASCII case exactly as its lower() does (ILIKE is lower(x) LIKE
    lower(p) there); a pattern without cased letters (Chinese, digits) matches the same text
    either way, and PostgreSQL's ILIKE lower-cases every prompt it reads (4× slower).
    No cast on text columns: CAST(prompt AS VARCHAR) would hide the column from its index.
    """
    if not isinstance(column.type, String):
        return cast(column, Unicode).ilike(pattern)
    return column.like(pattern) if like_is_ilike else column.ilike(pattern)


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def like_term(term: str) -> str:
    """Flask-Admin's LIKE pattern: ``^x`` starts with, ``=x`` exactly, else contains."""
    if term.startswith("^"):
        return f"{term[1:]}%"
    if term.startswith("="):
        return term[1:]
    return f"%{term}%"


def _clean(kind: str, operation: str, value: str):
    """Parse a filter value as the admin's filter classes do; refuse what they refuse."""
    try:
        if operation == "empty" or kind == "bool":
            if value not in ("0", "1"):
                raise ValueError(value)
            return value == "1"
        if operation in ("in_list", "not_in_list"):
            items = [v.strip() for v in value.split(",") if v.strip()]
            return [_int_value(v) for v in items] if kind == "int" else items
        if kind == "int":
            return _int_value(value)
        if kind == "datetime" and operation in ("between", "not_between"):
            start, end = (datetime.strptime(v, DATETIME_FORMAT) for v in value.split(" to "))
            return start, end
        if kind == "datetime":
            return datetime.strptime(value, DATETIME_FORMAT)
    except ValueError as exc:
        raise ValidationError(_("Invalid filter value: %(value)s", value=value)) from exc
    return value


def _int_value(value: str) -> int:
    number = int(value.strip())
    if not -(2**31) <= number < 2**31:  # ids are 32-bit columns
        raise ValueError(value)
    return number


def _condition(column, kind: str, operation: str, value: str):
    clean = _clean(kind, operation, value)
    if operation == "empty":
        return column.is_(None) if clean else column.is_not(None)
    if operation == "equals":
        return column == clean
    if operation == "not_equal":
        return column != clean
    if operation == "contains":
        return column.ilike(like_term(clean))
    if operation == "not_contains":
        return ~column.ilike(like_term(clean))
    if operation == "greater":
        return column > clean
    if operation == "smaller":
        return column < clean
    if operation == "in_list":
        return column.in_(clean)
    if operation == "not_in_list":
        return or_(~column.in_(clean), column.is_(None))
    if operation == "between":
        return column.between(*clean)
    if operation == "not_between":
        return not_(column.between(*clean))
    raise ValidationError(_("Unknown filter operation %(operation)r.", operation=operation))


# --- for people ---------------------------------------------------------------------------


def describe(selection: Selection) -> str:
    """Describe the selection for people, e.g. ``status=FAILURE, search “x”``."""
    if selection.ids is not None:
        return _("%(count)s ticked row(s)", count=f"{len(selection.ids):,}")
    spec = spec_for(selection.list_name)
    parts = (
        [_("search “%(text)s”", text=inner_quotes(selection.search))] if selection.search else []
    )
    if parts and selection.search_floor and uses_short_term_window(spec, selection.search):
        parts[0] += _(" in ids ≥ %(floor)s", floor=f"{selection.search_floor:,}")
    for name, operation, value in selection.filters:
        label = str(spec.filters[name].label) if name in spec.filters else name
        sign = SIGNS.get(operation)
        parts.append(
            f"{label}{sign}{value}" if sign else f"{label} {operation.replace('_', ' ')} {value}"
        )
    return ", ".join(parts) or _("all rows")


def describe_stored(stored: str | None, fallback: str = "") -> str:
    """Describe a stored selection (``to_dict`` as JSON) in the reader's language.

    The rows of a bulk operation or an export are kept as data, so they are described when
    read, not in the language of the person who started it; ``fallback`` (the text stored
    then) when the selection cannot be read any more.
    """
    try:
        return describe(Selection.from_dict(json.loads(stored or "")))
    except (ValueError, TypeError, ValidationError):
        return fallback
