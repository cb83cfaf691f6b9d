"""From a list URL's arguments (search, named filters, sort) to a stored ``Selection``.

Each active Flask-Admin filter object is mapped, by its column and class, onto a field and
operation of ``services.selections.LISTS``; a filter the registry does not know is refused
(tests/admin/test_selection_args.py checks that every filter every list offers maps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters as base_filters
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from llmadmin import localtime
from llmadmin.errors import ValidationError
from llmadmin.i18n import viewer_zone
from llmadmin.services import selections
from llmadmin.services.selections import Selection

if TYPE_CHECKING:
    from collections.abc import Iterable

    from flask_admin.contrib.sqla import ModelView
    from sqlalchemy import Column

# Most specific classes first: the "not" filters subclass their positive twins.
OPERATION_OF_CLASS = (
    (sqla_filters.FilterNotInList, "not_in_list"),
    (sqla_filters.FilterInList, "in_list"),
    (sqla_filters.FilterNotLike, "not_contains"),
    (sqla_filters.FilterLike, "contains"),
    (sqla_filters.FilterEmpty, "empty"),
    (sqla_filters.DateTimeNotBetweenFilter, "not_between"),
    (sqla_filters.DateNotBetweenFilter, "not_between"),
    (sqla_filters.DateTimeBetweenFilter, "between"),
    (sqla_filters.DateBetweenFilter, "between"),
    (sqla_filters.FilterNotEqual, "not_equal"),
    (sqla_filters.FilterEqual, "equals"),
    (sqla_filters.FilterGreater, "greater"),
    (sqla_filters.FilterSmaller, "smaller"),
)


def filter_kind(flt: base_filters.BaseFilter) -> str:
    """Return the registry kind of a Flask-Admin filter: datetime, bool, int or text."""
    if isinstance(flt, base_filters.BaseIntFilter | base_filters.BaseIntListFilter):
        return "int"
    if isinstance(flt, base_filters.BaseDateTimeFilter | base_filters.BaseDateTimeBetweenFilter):
        return "datetime"
    if isinstance(flt, base_filters.BaseBooleanFilter) and not isinstance(
        flt, sqla_filters.FilterEmpty
    ):
        return "bool"
    return "text"


def filter_field(view: ModelView, flt: sqla_filters.BaseSQLAFilter) -> tuple[str, str]:
    """Return the (field, operation) of the registry that ``flt`` of ``view`` stands for."""
    spec = selections.spec_for(view.endpoint)
    joins = view._filter_joins.get(flt.key_name or flt.column, [])
    column = flt.column
    ref = ".".join([*(getattr(j, "key", "") for j in joins), column.key])
    operation = next((op for cls, op in OPERATION_OF_CLASS if isinstance(flt, cls)), None)
    for name, field in spec.filters.items():
        if field.ref == ref and _same_table(spec.model, field.ref, column):
            same_kind = field.kind == filter_kind(flt) or operation == "empty"  # any column
            if operation in selections.OPERATIONS[field.kind] and same_kind:
                return name, operation
    raise ValidationError(
        _(
            "The filter “%(filter)s” of %(list)s is not in the registry.",
            filter=f"{flt.name} {flt.operation()}",
            list=view.endpoint,
        )
    )


def _same_table(model: type, ref: str, column: Column) -> bool:
    """Tell whether ``ref``, followed from ``model``, ends on the table of ``column``."""
    entity = model
    for hop in ref.split(".")[:-1]:
        entity = getattr(entity, hop).property.mapper.class_
    return entity.__table__.name == column.table.name


def selection_from_args(
    view: ModelView, args: MultiDict, person_id: int, ids: Iterable[int] | None = None
) -> Selection:
    """Build the selection of a list URL's arguments as Flask-Admin reads them."""
    found = []
    for arg in args:
        if not arg.startswith("flt") or "_" not in arg:
            continue
        position, key = arg[3:].split("_", 1)
        if key in (view._filter_args or {}):
            _index, flt = view._filter_args[key]
            value = args[arg].replace("\x00", "")
            if flt.validate(value):  # the list ignores (and flashes) invalid values too
                field, operation = filter_field(view, flt)
                if filter_kind(flt) == "datetime" and operation != "empty":
                    # typed in the viewer's zone (as the list reads it); stored as UTC
                    value = localtime.local_text_to_utc(value, viewer_zone())
                found.append((position, (field, operation, value)))
    sort, sort_desc = None, False
    index = args.get("sort", None, type=int)
    column = view._get_column_by_idx(index) if index is not None else None
    if column and column[0] in view._sortable_columns:
        sort, sort_desc = column[0], bool(args.get("desc", 0, type=int))
    floor = args.get("search_floor", "")
    return Selection(
        list_name=view.endpoint,
        person_id=person_id,
        ids=tuple(sorted(ids)) if ids is not None else None,
        search=(args.get("search") or "").replace("\x00", ""),
        filters=tuple(f for _pos, f in sorted(found, key=lambda item: item[0])),
        sort=sort,
        sort_desc=sort_desc,
        # the list page's own floor (see selections.short_term_floor), when it used one
        search_floor=int(floor) if floor.isdigit() and len(floor) < 12 else None,
    )


def selection_from_query_string(view: ModelView, query_string: str, person_id: int) -> Selection:
    """Build the selection of a stored list query string (``list_args`` of a form)."""
    return selection_from_args(
        view, MultiDict(parse_qsl(query_string[:4000], keep_blank_values=True)), person_id
    )
