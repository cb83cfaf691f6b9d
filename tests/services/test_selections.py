"""Stored selections: plain data in, a scoped SQLAlchemy query out, with no request."""

from __future__ import annotations

import json

import pytest
from flask import has_request_context

from llmadmin.errors import SelectionDenied, ValidationError
from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.services import selections
from llmadmin.services.selections import Selection


def add(creator, name, status="SUCCESS", prompt="p"):
    task = Task(name=name, prompt=prompt, status=status, creator_id=creator.id if creator else None)
    db.session.add(task)
    db.session.commit()
    return task.id


def ids(selection, **kwargs) -> list[int]:
    model = selections.spec_for(selection.list_name).model
    stmt = selections.build_query(selection, [model.id], **kwargs)
    return list(db.session.execute(stmt).scalars())


def test_round_trips_through_json():
    selection = Selection(
        "task",
        7,
        search="a b",
        filters=(("status", "equals", "FAILURE"), ("created_at", "empty", "1")),
        sort="model",
        sort_desc=True,
    )
    assert Selection.from_dict(json.loads(json.dumps(selection.to_dict()))) == selection
    ticked = Selection("download", 3, ids=(1, 2))
    assert Selection.from_dict(ticked.to_dict()) == ticked


@pytest.mark.parametrize(
    "bad",
    [
        {"list": "nope", "person_id": 1},
        {"list": "task", "person_id": 1, "filters": [["prompt", "equals", "x"]]},
        {"list": "task", "person_id": 1, "filters": [["status", "between", "x"]]},
        {"list": "task", "person_id": 1, "filters": [["created_at", "greater", "yesterday"]]},
        {"list": "task", "person_id": 1, "sort": "prompt"},
        {"list": "task"},
    ],
)
def test_unknown_lists_fields_operations_and_values_are_refused(app, bad):
    with pytest.raises(ValidationError):
        Selection.from_dict(bad)


def test_member_gets_only_their_rows_admin_all_without_a_request(
    app, admin_user, member_user, other_member
):
    mine = add(member_user, "mine")
    theirs = add(other_member, "theirs")
    orphan = add(None, "orphan")
    assert not has_request_context()
    assert ids(Selection("task", member_user.id)) == [mine]
    assert ids(Selection("task", admin_user.id)) == [orphan, theirs, mine]  # newest first
    # ticked ids of someone else's rows select nothing for a member
    assert ids(Selection("task", member_user.id, ids=(theirs, mine))) == [mine]


def test_search_needs_every_term_in_some_column(app, admin_user):
    both = add(admin_user, "alpha", prompt="has beta")
    add(admin_user, "alpha only")
    add(admin_user, "beta only")
    assert ids(Selection("task", admin_user.id, search="ALPHA beta")) == [both]
    assert ids(Selection("task", admin_user.id, search="=alpha")) == [both]


def test_filters_and_sort(app, admin_user):
    a = add(admin_user, "b", status="FAILURE")
    b = add(admin_user, "a", status="CANCELED")
    add(admin_user, "c", status="SUCCESS")
    failed = Selection("task", admin_user.id, filters=(("status", "in_list", "FAILURE, CANCELED"),))
    assert ids(failed) == [b, a]
    by_name = Selection(
        "task", admin_user.id, filters=(("status", "not_equal", "SUCCESS"),), sort="name"
    )
    assert ids(by_name) == [b, a]
    assert set(ids(by_name, ordered=False)) == {a, b}


def test_deleted_or_deactivated_people_and_members_on_admin_lists_are_refused(
    app, admin_user, member_user
):
    with pytest.raises(SelectionDenied, match="deleted or deactivated"):
        selections.build_query(Selection("task", 999_999))
    member_user.active = False
    db.session.commit()
    with pytest.raises(SelectionDenied, match="deactivated"):
        selections.build_query(Selection("task", member_user.id))
    member_user.active = True
    db.session.commit()
    with pytest.raises(SelectionDenied, match="no longer have access"):
        selections.build_query(Selection("person", member_user.id))
    selections.build_query(Selection("llmmodel", member_user.id))  # members may read models
    with pytest.raises(SelectionDenied, match="no longer have access"):
        selections.build_query(Selection("llmmodel", member_user.id), acting=True)


def test_describe_for_people(app):
    assert selections.describe(Selection("task", 1)) == "all rows"
    assert selections.describe(Selection("task", 1, ids=(1, 2))) == "2 ticked row(s)"
    described = selections.describe(
        Selection("task", 1, search="x", filters=(("model", "equals", "Sim"),))
    )
    assert described == "search “x”, model name=Sim"
