"""Lists at scale: indexed substring search (English, Chinese, short terms), capped counts,
keyset pages, and a bounded number of SQL statements per page (no N+1)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from llmadmin.admin import listing
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Person, Task
from llmadmin.services import selections
from tests.admin.helpers import fast_passwords  # noqa: F401
from tests.admin.test_selection_args import assert_same, page_ids, selection_ids, view

PROMPTS = [
    "Please process the REFUND for order 7",  # 0
    "客户申请退款，请处理",  # 1: 退款 inside Chinese text
    "退款申请已提交",  # 2
    "How do I get a refunded voucher?",  # 3
    "Translate: 今天天气很好",  # 4
    "nothing to see here",  # 5
    "款退 is not 退款 reversed?",  # 6: both orders
]


@pytest.fixture
def tasks(app, admin_user, sim_model):
    rows = [
        Task(name=f"task {i}", prompt=p, creator_id=admin_user.id, model_id=sim_model.id)
        for i, p in enumerate(PROMPTS)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [t.id for t in rows]


def found(client, search: str) -> list[int]:
    html = client.get("/admin/task/", query_string={"search": search}).get_data(as_text=True)
    return sorted(page_ids(html))


@pytest.mark.parametrize(
    "term, expected",
    [
        ("refund", [0, 3]),  # case-insensitive, a substring of "refunded"
        ("REFUNDED", [3]),
        ("退款", [1, 2, 6]),  # 2 characters: below the trigram index
        ("退款申请", [2]),
        ("申请", [1, 2]),
        ("天气很", [4]),
        ("款退", [6]),
        ("re_und", [0, 3]),  # Flask-Admin's LIKE wildcards keep working
        ("refund 订单", []),  # every term must match
        ("refund order", [0]),
        ("^退款", [2]),  # starts with
        ("x", []),
    ],
)
def test_search_finds_substrings_in_english_and_chinese(admin_client, tasks, term, expected):
    assert found(admin_client, term) == [tasks[i] for i in expected]


def test_the_search_index_follows_edits_and_deletes(admin_client, tasks):
    task = db.session.get(Task, tasks[5])
    task.prompt = "a late refund request"
    db.session.commit()
    db.session.delete(db.session.get(Task, tasks[0]))
    db.session.commit()
    assert found(admin_client, "refund") == [tasks[3], tasks[5]]
    assert found(admin_client, "nothing to see") == []


def test_short_terms_search_the_newest_rows_and_say_so(
    admin_client, admin_user, tasks, monkeypatch
):
    monkeypatch.setattr(selections, "SHORT_TERM_WINDOW", 4)
    db.session.add_all(
        Task(name="filler", prompt="退款", creator_id=admin_user.id) for _ in range(3)
    )
    db.session.commit()
    html = admin_client.get("/admin/task/?search=退款").get_data(as_text=True)
    newest = db.session.execute(db.select(Task.id).order_by(Task.id.desc()).limit(4)).scalars()
    assert sorted(page_ids(html)) == sorted(i for i in newest if i != tasks[5])
    assert "shorter than 3 characters" in html and "newest 4 rows" in html
    shown = page_ids(html)
    floor = int(re.search(r'data-search-floor="(\d+)"', html).group(1))
    # a 3-character term uses the index: no window, no note
    html = admin_client.get("/admin/task/?search=退款申").get_data(as_text=True)
    assert page_ids(html) == [tasks[2]] and "shorter than 3" not in html
    # the stored selection keeps the list's floor: newer rows join, older ones never do
    newer = [Task(name="newer", prompt="退款", creator_id=admin_user.id) for _ in range(2)]
    db.session.add_all(newer)
    db.session.commit()
    stored = selection_ids("task", f"search=退款&search_floor={floor}", admin_user.id)
    assert sorted(stored) == sorted(shown + [t.id for t in newer])
    sliding = selection_ids("task", "search=退款", admin_user.id)
    assert len(sliding) == 4 and min(sliding) > min(shown)


@pytest.mark.parametrize(
    "query_string",
    [
        "search=refund",
        "search=退款申请",
        "search=退款",
        "search=re_und&sort=0",
        "search=refund&flt0_status_equals=SUCCESS&sort=1&desc=1",
        "search=申请&flt0_model_name_equals=Sim&sort=0&desc=1",
        "search=%5E退款",
    ],
)
def test_search_filters_and_sort_select_the_same_rows_in_list_and_selection(
    admin_client, tasks, admin_user, query_string
):
    assert_same(admin_client, "task", query_string, admin_user.id, unique_sort=True)


@pytest.fixture
def many(app, admin_user, sim_model):
    """45 tasks, newest first: ids[0] is the newest."""
    db.session.add_all(
        Task(name=f"n{i}", prompt=f"p{i}", creator_id=admin_user.id, model_id=sim_model.id)
        for i in range(45)
    )
    db.session.commit()
    return list(db.session.execute(db.select(Task.id).order_by(Task.id.desc())).scalars())


def test_a_count_past_the_cap_is_shown_as_such(admin_client, many, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_CAP", 30)
    html = admin_client.get("/admin/task/").get_data(as_text=True)
    assert "List (30+)" in html and "all 30+ matching rows" in html
    html = admin_client.get("/admin/task/?flt0_status_equals=PENDING&page_size=50")
    assert "List (30+)" in html.get_data(as_text=True)
    monkeypatch.setattr(listing, "COUNT_CAP", 100)
    html = admin_client.get("/admin/task/").get_data(as_text=True)
    assert "List (45)" in html and "all 45 matching rows" in html
    # a text search counts up to its own, smaller cap
    monkeypatch.setattr(listing, "SEARCH_COUNT_CAP", 5)
    html = admin_client.get("/admin/task/?search=n1").get_data(as_text=True)
    assert "List (5+)" in html and len(page_ids(html)) == 11
    html = admin_client.get("/admin/task/?search=n4").get_data(as_text=True)
    assert "List (5+)" in html and len(page_ids(html)) == 6  # n4, n40 … n44
    monkeypatch.setattr(listing, "SEARCH_COUNT_CAP", 6)
    html = admin_client.get("/admin/task/?search=n4").get_data(as_text=True)
    assert "List (6)" in html


def test_offset_and_keyset_pages_return_the_right_rows(admin_client, many, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_CAP", 30)
    first = admin_client.get("/admin/task/").get_data(as_text=True)
    assert page_ids(first) == many[:20]
    second = admin_client.get("/admin/task/?page=1").get_data(as_text=True)
    assert page_ids(second) == many[20:40]
    # the numbered pages end at the cap: the pager goes on from the last row by keyset
    link = re.search(r'href="([^"]*after=(\d+))"', second)
    assert link and int(link.group(2)) == many[39]
    third = admin_client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert page_ids(third) == many[40:]
    assert not re.search(r'href="[^"]*after=', third), "no older page after the last"
    back = re.search(r'href="([^"]*before=(\d+))"', third)
    assert back and int(back.group(2)) == many[40]
    again = admin_client.get(back.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert page_ids(again) == many[20:40]
    # a deep offset page past the capped count still shows its rows
    deep = admin_client.get("/admin/task/?page=2").get_data(as_text=True)
    assert page_ids(deep) == many[40:]
    # keyset under a filter and ascending id order
    asc = admin_client.get(f"/admin/task/?sort=0&after={many[-5]}").get_data(as_text=True)
    assert page_ids(asc) == sorted(many)[5:25]
    pivot = many[44 - 15]  # the row named n15
    filtered = admin_client.get(f"/admin/task/?search=n1&after={pivot}").get_data(as_text=True)
    assert page_ids(filtered) == [many[44 - i] for i in (14, 13, 12, 11, 10, 1)]


def count_statements(client, url: str) -> int:
    statements = []
    listener = lambda *args: statements.append(1)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return len(statements)


def add_varied_tasks(admin_user, n: int, tag: str) -> None:
    """``n`` failed tasks, each with its own creator and model."""
    people = [admin_user] + [Person(email=f"{tag}{i}@example.com", name=f"P{i}") for i in range(n)]
    models = [
        LLMModel(name=f"{tag}{i}", base_url="http://127.0.0.1:9/v1", model_name="m")
        for i in range(n)
    ]
    db.session.add_all(people + models)
    db.session.flush()
    db.session.add_all(
        Task(
            name=f"t{i}",
            prompt="refund",
            status="FAILURE",
            finished_at=None if i % 3 else db.func.now(),
            creator_id=people[i % len(people)].id,
            model_id=models[i % len(models)].id,
            source_task_id=None,
        )
        for i in range(n)
    )
    db.session.commit()


@pytest.mark.parametrize(
    "url",
    ["/admin/task/", "/admin/task/?search=refund", "/admin/task/?after=999999999", "/admin/"],
)
def test_statements_per_page_do_not_grow_with_rows(admin_client, admin_user, url):
    add_varied_tasks(admin_user, 2, "a")
    few = count_statements(admin_client, url)
    add_varied_tasks(admin_user, 12, "b")
    assert count_statements(admin_client, url) == few


@pytest.mark.parametrize(("url", "most"), [("/admin/task/?after=999999999", 4), ("/admin/", 8)])
def test_the_page_around_the_rows_costs_few_statements(admin_client, admin_user, url, most):
    """Session, person and waiting notices in one statement; home counts and first steps in one each."""
    add_varied_tasks(admin_user, 3, "c")
    assert count_statements(admin_client, url) <= most


def test_details_page_loads_in_a_few_statements(admin_client, admin_user, sim_model):
    task = Task(name="t", prompt="p", creator_id=admin_user.id, model_id=sim_model.id)
    db.session.add(task)
    db.session.commit()
    assert count_statements(admin_client, f"/admin/task/details/?id={task.id}") <= 8


def test_the_task_list_is_searched_with_the_registry(app):
    assert selections.LISTS["task"].search_index
    assert view("task").column_searchable_list == ("name", "prompt")
