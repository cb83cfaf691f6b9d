"""The admin's list URLs and the stored selections agree: same filters, same rows, same order."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from flask import current_app

from llmadmin.admin.selection_args import filter_field, selection_from_query_string
from llmadmin.extensions import db
from llmadmin.models import Download, LLMModel, Task
from llmadmin.services import selections
from tests.admin.helpers import fast_passwords  # noqa: F401
from tests.conftest import login

BASE = datetime(2025, 3, 1, 12, 0, 0)


def view(endpoint: str):
    admin = current_app.extensions["llmadmin.admin"]
    return next(v for v in admin._views if getattr(v, "endpoint", None) == endpoint)


def arg(endpoint: str, field: str, operation: str) -> str:
    """The named URL argument of the admin filter that maps to (field, operation)."""
    found = view(endpoint)
    for key, (_index, flt) in found._filter_args.items():
        if filter_field(found, flt) == (field, operation):
            return f"flt0_{key}"
    raise AssertionError(f"no admin filter for {field} {operation}")


@pytest.mark.parametrize("endpoint", sorted(selections.LISTS))
def test_every_filter_every_list_offers_maps_to_the_registry(app, endpoint):
    found = view(endpoint)
    assert found._filter_args, f"{endpoint} offers no filters"
    mapped = {filter_field(found, flt) for _index, flt in found._filter_args.values()}
    spec = selections.LISTS[endpoint]
    assert {name for name, _op in mapped} == set(spec.filters), "registry fields without a filter"
    for name, _op in mapped:
        assert spec.filters[name].kind in selections.OPERATIONS


@pytest.mark.parametrize("endpoint", sorted(selections.LISTS))
def test_every_sortable_column_and_search_column_is_in_the_registry(app, endpoint):
    found = view(endpoint)
    spec = selections.LISTS[endpoint]
    assert set(found._sortable_columns) == set(spec.sort)
    assert tuple(found.column_searchable_list) == spec.search
    default = found.column_default_sort
    assert (spec.sort[default[0]], default[1]) == spec.default_sort


def test_named_filter_urls_still_work(admin_client, admin_user):
    db.session.add_all(
        [Task(name=f"t{i}", prompt="p", status=s) for i, s in enumerate(["FAILURE", "SUCCESS"])]
    )
    db.session.commit()
    page = admin_client.get("/admin/task/?flt0_status_equals=FAILURE").get_data(as_text=True)
    assert page_ids(page) == [
        db.session.execute(db.select(Task.id).where(Task.name == "t0")).scalar()
    ]
    selection = selection_from_query_string(
        view("task"), "flt0_status_equals=FAILURE", admin_user.id
    )
    assert selection.filters == (("status", "equals", "FAILURE"),)


# --- the same rows as the admin list ----------------------------------------------------------


def page_ids(html: str, endpoint: str = "task") -> list[int]:
    found = re.findall(rf"/admin/{endpoint}/details/\?id=(\d+)&amp;url=", html)
    return list(dict.fromkeys(int(i) for i in found))


def selection_ids(endpoint: str, query_string: str, person_id: int) -> list[int]:
    selection = selection_from_query_string(view(endpoint), query_string, person_id)
    model = selections.spec_for(endpoint).model
    return list(db.session.execute(selections.build_query(selection, [model.id])).scalars())


@pytest.fixture
def rows(app, admin_user, member_user, other_member, sim_model):
    other = LLMModel(name="Other", base_url="http://127.0.0.1:9/v1", model_name="other-chat")
    db.session.add(other)
    db.session.commit()
    people = [admin_user, member_user, other_member, None]
    statuses = ["SUCCESS", "FAILURE", "PENDING", "CANCELED", "FAILURE"]
    words = ["alpha", "beta", "gamma", "alpha beta", "Delta"]
    tasks = [
        Task(
            name=f"{words[i % 5]} {i:02d}",
            prompt=f"prompt {words[(i * 3) % 5]}",
            status=statuses[i % 5],
            creator_id=people[i % 4].id if people[i % 4] else None,
            model_id=(sim_model.id, other.id, None)[i % 3],
            error_kind="timeout" if i % 7 == 0 else None,
            created_at=BASE + timedelta(hours=i),
            finished_at=BASE + timedelta(hours=i, minutes=5) if i % 2 else None,
            attempts=i % 4,
        )
        for i in range(40)
    ]
    downloads = [
        Download(
            name=f"export {words[i % 5]}",
            file_name=f"f{i}.{('csv', 'xlsx')[i % 2]}",
            file_format=("csv", "xlsx")[i % 2],
            status=("SUCCESS", "FAILURE", "PENDING")[i % 3],
            creator_id=people[i % 4].id if people[i % 4] else None,
            created_at=BASE + timedelta(hours=i),
        )
        for i in range(12)
    ]
    db.session.add_all(tasks + downloads)
    db.session.commit()


def task_cases():
    t = "task"
    return [
        "",
        "search=alpha",
        "search=alpha%20beta",
        "search=ALPHA%20prompt",
        "search=%5Egam",  # ^gam: starts with
        f"{arg(t, 'status', 'equals')}=FAILURE",
        f"{arg(t, 'status', 'in_list')}=FAILURE,CANCELED",
        f"{arg(t, 'status', 'not_in_list')}=FAILURE,CANCELED&sort=1",
        f"{arg(t, 'status', 'not_equal')}=SUCCESS&search=a&sort=1&desc=1",
        f"{arg(t, 'model', 'equals')}=Sim",
        f"{arg(t, 'model', 'empty')}=1",
        f"{arg(t, 'model', 'not_contains')}=oth",
        f"{arg(t, 'creator', 'contains')}=max",
        f"{arg(t, 'creator', 'empty')}=0&sort=1",
        f"{arg(t, 'error_kind', 'equals')}=timeout",
        f"{arg(t, 'finished_at', 'empty')}=1",
        f"{arg(t, 'created_at', 'greater')}=2025-03-02%2000:00:00",
        f"{arg(t, 'created_at', 'between')}=2025-03-01%2015:00:00%20to%202025-03-02%2003:00:00",
        f"{arg(t, 'created_at', 'not_between')}=2025-03-01%2015:00:00%20to%202025-03-02%2003:00:00",
        f"{arg(t, 'created_at', 'smaller')}=2025-03-01%2020:00:00&sort=0",
        # several filters at once, and a sort on a joined column
        f"{arg(t, 'status', 'equals')}=FAILURE&flt1_{arg(t, 'model', 'equals')[5:]}=Sim",
        "sort=3",  # model name
        "sort=4&desc=1",  # creator name
    ]


def assert_same(client, endpoint: str, query_string: str, person_id: int, unique_sort: bool):
    html = client.get(f"/admin/{endpoint}/?{query_string}&page_size=100").get_data(as_text=True)
    shown = page_ids(html, endpoint)
    stored = selection_ids(endpoint, query_string, person_id)
    if unique_sort:
        assert stored == shown, query_string
    else:
        assert sorted(stored) == sorted(shown), query_string
    return len(shown)


@pytest.mark.parametrize("who", ["admin", "member"])
def test_selection_query_shows_the_rows_of_the_task_list(
    client, rows, who, admin_user, member_user
):
    person = admin_user if who == "admin" else member_user
    login(client, person.email, f"{who}-password")
    cases = task_cases()
    assert len(cases) > 20
    non_empty = 0
    for query_string in cases:
        unique = "sort=" not in query_string or "sort=0" in query_string or "sort=1" in query_string
        non_empty += bool(assert_same(client, "task", query_string, person.id, unique))
    assert non_empty >= len(cases) - 3, "most cases must show rows, or the test proves little"


@pytest.mark.parametrize("who", ["admin", "member"])
def test_selection_query_shows_the_rows_of_the_download_list(
    client, rows, who, admin_user, member_user
):
    person = admin_user if who == "admin" else member_user
    login(client, person.email, f"{who}-password")
    d = "download"
    for query_string in (
        "",
        "search=alpha",
        f"{arg(d, 'status', 'equals')}=FAILURE",
        f"{arg(d, 'file_format', 'in_list')}=xlsx",
        f"{arg(d, 'creator', 'not_equal')}=Max%20Member",
        f"{arg(d, 'name', 'contains')}=ta&sort=1",
    ):
        assert_same(client, d, query_string, person.id, "sort=" not in query_string)


def test_selection_query_shows_the_rows_of_the_models_and_people_lists(client, rows, admin_user):
    login(client, admin_user.email, "admin-password")
    m, p = "llmmodel", "person"
    for endpoint, query_string in (
        (m, ""),
        (m, "search=sim"),
        (m, f"{arg(m, 'enabled', 'equals')}=1"),
        (m, f"{arg(m, 'maintainer', 'empty')}=1"),
        (p, ""),
        (p, "search=example.com%20max"),
        (p, f"{arg(p, 'role', 'equals')}=member&sort=1"),
        (p, f"{arg(p, 'active', 'equals')}=1"),
    ):
        assert_same(client, endpoint, query_string, admin_user.id, True)
