"""What a person reads: one message per action, live cells, pickers, links, notices, home page."""

from __future__ import annotations

import re

from sqlalchemy import event

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download, Task
from llmadmin.models.task import SUCCESS
from tests.admin.helpers import fast_passwords  # noqa: F401
from tests.conftest import csrf_token, post_form


def add_task(person, model, **fields) -> Task:
    task = Task(name="t", prompt="p", creator_id=person.id, model_id=model.id, **fields)
    db.session.add(task)
    db.session.commit()
    return task


def test_creating_a_task_says_so_once(admin_client, sim_model):
    token = csrf_token(admin_client, "/admin/task/new/")
    html = admin_client.get("/admin/task/new/").get_data(as_text=True)
    key = re.search(r'name="submission_key"[^>]*value="([^"]+)"', html).group(1)
    page = admin_client.post(
        "/admin/task/new/?url=/admin/task/",
        data={
            "csrf_token": token,
            "prompt": "hi",
            "model": str(sim_model.id),
            "submission_key": key,
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert page.count('class="alert alert-') == 1
    assert "Record was successfully created" not in page
    assert "__None" not in admin_client.get("/admin/task/new/").get_data(as_text=True).split(
        'id="model"'
    )[1].split("</select>")[0].replace('value="__None"', "")


def test_status_json_sends_every_cell_of_the_row(admin_client, admin_user, sim_model):
    task = add_task(
        admin_user, sim_model, status=SUCCESS, latency_ms=1234.0, prompt_tokens=7, attempts=2
    )
    data = admin_client.get(f"/admin/task/status.json?ids={task.id}").get_json()
    cells = data[str(task.id)]["cells"]
    assert {
        "status",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
        "attempts",
        "cost",
    } <= set(cells)
    assert "1.23 s" in cells["latency_ms"] and cells["prompt_tokens"] == "7"
    assert cells["attempts"] == "2"


def test_filters_are_pickers_and_status_is_one_click(admin_client, admin_user, sim_model):
    add_task(admin_user, sim_model)
    html = admin_client.get("/admin/task/").get_data(as_text=True)
    assert 'id="status-filter"' in html
    assert "flt1_status_equals=FAILURE" in html
    # The model and creator filters offer the names to pick from.
    groups = re.search(r'id="filter-groups-data"[^>]*>([^<]*)<', html).group(1)
    assert "Sim" in groups and "Ada Admin" in groups


def test_picker_options_are_read_once_per_page(admin_client, admin_user, sim_model):
    """Each picker's four filters share its options; both pickers' names come in one statement."""
    add_task(admin_user, sim_model)
    seen = []

    def note(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        assert admin_client.get("/admin/task/").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    pickers = [s for s in seen if "llm_model.name AS name FROM llm_model" in s]
    assert len(pickers) == 1
    assert "UNION ALL" in pickers[0] and "person.name AS name FROM person" in pickers[0]
    assert not any(s.startswith("SELECT person.name FROM person") for s in seen)


def test_duplicated_from_links_to_its_source(admin_client, admin_user, sim_model):
    source = add_task(admin_user, sim_model)
    copy = add_task(admin_user, sim_model, source_task_id=source.id)
    html = admin_client.get(f"/admin/task/details/?id={copy.id}").get_data(as_text=True)
    assert f'href="/admin/task/details/?id={source.id}"' in html


def test_notices_arrive_without_a_reload(admin_client, admin_user):
    done = Download(
        name="Tasks export",
        file_name="tasks.csv",
        file_format="csv",
        status="SUCCESS",
        creator_id=admin_user.id,
    )
    running = BulkOperation(
        creator_id=admin_user.id,
        list_name="task",
        action="run",
        selection="{}",
        status="RUNNING",
        matched=10,
        processed=4,
        description="status=FAILURE",
    )
    db.session.add_all([done, running])
    db.session.commit()
    data = admin_client.get("/downloads/notices.json").get_json()
    assert len(data["notices"]) == 1 and "tasks.csv" in data["notices"][0]["html"]
    assert data["operations"][0]["id"] == running.id and "4 of 10" in data["operations"][0]["html"]
    assert data["waiting"] is True
    again = admin_client.get("/downloads/notices.json").get_json()
    assert again["notices"] == []  # announced once


def test_home_says_what_the_tool_does_and_the_first_steps(admin_client):
    html = admin_client.get("/admin/").get_data(as_text=True)
    for marker in ('id="purpose"', 'id="first-steps"', 'id="recent-activity"', 'id="create-task"'):
        assert marker in html
    assert "/admin/llmmodel/new/" in html


def test_the_rq_dashboard_links_back(admin_client):
    html = admin_client.get("/admin/rq/").get_data(as_text=True)
    assert 'id="back-to-admin" href="/admin/"' in html


def test_model_tools_are_for_admins(member_client):
    response = post_form(
        member_client, "/admin/llmmodel/endpoint-models.json", {"base_url": "http://x/v1"}
    )
    assert response.status_code == 403


def test_numbers_times_and_emails_do_not_break_mid_token(admin_client, admin_user):
    """QA at 1366 px: "48/60" for id 4860, "admin@example.co/m", a time one character a line."""
    page = admin_client.get("/admin/person/").get_data(as_text=True)
    assert "admin@<wbr>example.<wbr>com" in page  # breaks only after "@" and dots
    css = page
    rule = css.split("td time, td .badge {", 1)
    assert len(rule) == 2 and "white-space: nowrap" in rule[1].split("}", 1)[0]
    assert ".col-id," in rule[0] and ".col-latency_ms" in rule[0]
    assert "table.model-list td.col-email { overflow-wrap: normal; word-break: normal; }" in css
