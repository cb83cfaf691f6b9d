"""Who may open what: anonymous visitors, members and admins, on every admin URL."""

from __future__ import annotations

import pytest

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import FAILURE
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    make_download,
    make_task,
    protected_urls,
    redirect_path,
    send,
    snapshot,
    text,
)
from tests.conftest import csrf_token, post_form

HTML = {"Accept": "text/html"}


# --- anonymous visitors ----------------------------------------------------------------


def test_url_map_covers_the_admin(app):
    urls = protected_urls(app)
    for expected in [
        ("GET", "/admin/"),
        ("POST", "/admin/task/action/"),
        ("GET", "/admin/person/edit/"),
        ("POST", "/admin/download/delete/"),
        ("GET", "/admin/llmmodel/details/"),
        ("GET", "/admin/rq/0/data/queues.json"),
        ("POST", "/admin/rq/job/no-such-job/delete"),
        ("GET", "/downloads/1/file"),
        ("GET", "/admin/task/new/"),
    ]:
        assert expected in urls


def test_every_protected_url_sends_anonymous_visitors_to_login(app, client, admin_user, sim_model):
    task = make_task(admin_user, sim_model)
    download = make_download(admin_user)
    before = (snapshot(task), snapshot(download), snapshot(sim_model), snapshot(admin_user))
    token = csrf_token(client, "/login")
    for method, url in protected_urls(app):
        query = {"id": str(task.id)} if url.endswith(("/edit/", "/details/")) else None
        data = {
            "csrf_token": token,
            "id": str(task.id),
            "rowid": str(task.id),
            "action": "delete",
            "name": "changed",
        }
        response = send(
            client,
            method,
            url,
            query_string=query,
            headers=HTML,
            data=data if method == "POST" else None,
        )
        assert response.status_code == 302, (method, url, response.status_code)
        assert redirect_path(response) == "/login", (method, url, response.headers.get("Location"))
    assert (snapshot(task), snapshot(download), snapshot(sim_model), snapshot(admin_user)) == before


def test_login_redirect_keeps_the_page_asked_for(client):
    response = client.get("/admin/task/?search=x", headers=HTML)
    assert redirect_path(response) == "/login"
    assert "next=" in response.headers["Location"]


# --- members on other people's rows ------------------------------------------------------


@pytest.fixture
def others_rows(app, other_member, sim_model):
    task = make_task(other_member, sim_model, name="olga-secret-task", status=FAILURE)
    download = make_download(other_member, name="olga-secret-export")
    return task, download


@pytest.mark.parametrize("endpoint", ["task", "download"])
def test_member_cannot_open_anothers_row(member_client, others_rows, endpoint):
    row = others_rows[0] if endpoint == "task" else others_rows[1]
    before = snapshot(row)
    for view in ("edit", "details"):
        response = member_client.get(f"/admin/{endpoint}/{view}/?id={row.id}")
        assert response.status_code in (403, 404), (view, response.status_code)
        assert "olga-secret" not in text(response)
    response = post_form(
        member_client,
        f"/admin/{endpoint}/edit/?id={row.id}",
        {"name": "hijacked", "prompt": "hijacked"},
    )
    assert response.status_code in (403, 404)
    response = post_form(member_client, f"/admin/{endpoint}/delete/", {"id": str(row.id)})
    assert response.status_code in (403, 404)
    assert snapshot(row) == before


@pytest.mark.parametrize("action", ["run", "retry", "cancel", "delete", "duplicate"])
def test_member_cannot_act_on_anothers_task(
    member_client, others_rows, member_user, sim_model, action
):
    task = others_rows[0]
    own = make_task(member_user, sim_model, name="mine", status=FAILURE)
    before = snapshot(task)
    response = post_form(
        member_client,
        "/admin/task/action/",
        {"action": action, "rowid": [str(own.id), str(task.id)], "model_id": str(sim_model.id)},
    )
    assert response.status_code in (403, 404), response.status_code
    assert snapshot(task) == before
    assert db.session.query(Task).filter(Task.source_task_id == task.id).count() == 0


def test_member_cannot_duplicate_anothers_task_directly(member_client, others_rows, sim_model):
    task = others_rows[0]
    count = db.session.query(Task).count()
    response = member_client.get(f"/admin/task/duplicate/?ids={task.id}")
    assert response.status_code in (403, 404)
    response = post_form(
        member_client, f"/admin/task/duplicate/?ids={task.id}", {"model_id": str(sim_model.id)}
    )
    assert response.status_code in (403, 404)
    assert db.session.query(Task).count() == count


def test_member_cannot_delete_anothers_download_by_action(member_client, others_rows):
    download = others_rows[1]
    before = snapshot(download)
    response = post_form(
        member_client, "/admin/download/action/", {"action": "delete", "rowid": str(download.id)}
    )
    assert response.status_code in (302, 403, 404)
    assert snapshot(download) == before


def test_member_cannot_fetch_anothers_file(member_client, others_rows):
    response = member_client.get(f"/downloads/{others_rows[1].id}/file")
    assert response.status_code == 404


def test_status_json_hides_other_peoples_tasks(member_client, others_rows, member_user, sim_model):
    own = make_task(member_user, sim_model)
    data = member_client.get(f"/admin/task/status.json?ids={own.id},{others_rows[0].id}").get_json()
    assert set(data) == {str(own.id)}


def test_member_lists_only_own_tasks_and_count(member_client, member_user, other_member, sim_model):
    for i in range(2):
        make_task(member_user, sim_model, name=f"member-task-{i}")
    for i in range(3):
        make_task(other_member, sim_model, name=f"other-task-{i}")
    page = text(member_client.get("/admin/task/"))
    assert "member-task-0" in page and "member-task-1" in page
    assert "other-task" not in page
    assert "List (2)" in page


def test_member_lists_only_own_downloads(member_client, member_user, others_rows):
    make_download(member_user, name="member-export")
    page = text(member_client.get("/admin/download/"))
    assert "member-export" in page
    assert "olga-secret-export" not in page
    assert "List (1)" in page


def test_member_home_counts_only_own_tasks(member_client, member_user, others_rows, sim_model):
    make_task(member_user, sim_model, name="my-failure", status=FAILURE)
    page = text(member_client.get("/admin/"))
    assert "my-failure" in page
    assert "olga-secret-task" not in page


# --- admin-only areas --------------------------------------------------------------------


def test_member_gets_403_on_people_and_rq(member_client, app, member_user):
    token = csrf_token(member_client, "/admin/")
    for method, url in protected_urls(app):
        if not url.startswith(("/admin/person/", "/admin/rq/")) or url.startswith(
            "/admin/rq/static"
        ):
            continue
        data = {
            "csrf_token": token,
            "id": str(member_user.id),
            "rowid": str(member_user.id),
            "action": "delete",
            "role": "admin",
        }
        response = send(
            member_client,
            method,
            url,
            query_string={"id": str(member_user.id)},
            data=data if method == "POST" else None,
        )
        assert response.status_code == 403, (method, url, response.status_code)
    assert snapshot(member_user)["role"] == "member"


def test_member_lists_models_read_only(member_client, sim_model):
    response = member_client.get("/admin/llmmodel/")
    assert response.status_code == 200
    page = text(response)
    assert "sim-chat" in page
    assert "/admin/llmmodel/new/" not in page
    assert "/admin/llmmodel/edit/" not in page
    assert "/admin/llmmodel/delete/" not in page
    assert 'name="rowid"' not in page
    assert member_client.get(f"/admin/llmmodel/details/?id={sim_model.id}").status_code == 200


def test_member_cannot_create_edit_or_delete_models(member_client, sim_model):
    before = snapshot(sim_model)
    assert member_client.get("/admin/llmmodel/new/").status_code == 403
    assert member_client.get(f"/admin/llmmodel/edit/?id={sim_model.id}").status_code == 403
    form = {
        "name": "Evil",
        "base_url": "https://evil.example.com/v1",
        "model_name": "evil",
        "temperature": "0.7",
        "max_tokens": "10",
        "timeout_seconds": "10",
        "max_concurrency": "1",
        "rpm_limit": "0",
        "max_attempts": "1",
        "breaker_threshold": "1",
        "breaker_cooldown_seconds": "1",
    }
    assert post_form(member_client, "/admin/llmmodel/new/", form).status_code == 403
    assert (
        post_form(member_client, f"/admin/llmmodel/edit/?id={sim_model.id}", form).status_code
        == 403
    )
    assert (
        post_form(member_client, "/admin/llmmodel/delete/", {"id": str(sim_model.id)}).status_code
        == 403
    )
    for action in ("disable", "test", "delete"):
        response = post_form(
            member_client, "/admin/llmmodel/action/", {"action": action, "rowid": str(sim_model.id)}
        )
        assert response.status_code == 403, action
    assert db.session.query(LLMModel).count() == 1
    assert snapshot(sim_model) == before


def test_admin_sees_everyones_rows(admin_client, others_rows):
    task, download = others_rows
    assert admin_client.get(f"/admin/task/details/?id={task.id}").status_code == 200
    assert admin_client.get(f"/admin/download/details/?id={download.id}").status_code == 200
    assert "olga-secret-task" in text(admin_client.get("/admin/task/"))


def test_every_configured_form_field_is_rendered(app, admin_client, admin_user, sim_model):
    """A column type Flask-Admin cannot convert is silently dropped from the form."""
    task = make_task(admin_user, sim_model)
    download = make_download(admin_user)
    admin = app.extensions["llmadmin.admin"]
    row_ids = {
        "task": task.id,
        "download": download.id,
        "llmmodel": sim_model.id,
        "person": admin_user.id,
    }
    checked = 0
    for view in admin._views:
        columns = getattr(view, "form_columns", None)
        if not columns or getattr(view, "endpoint", None) not in row_ids:
            continue
        url = f"/admin/{view.endpoint}/edit/?id={row_ids[view.endpoint]}"
        page = text(admin_client.get(url))
        for column in columns:
            assert f'id="{column}"' in page, (url, column)
        checked += 1
    assert checked == 4


# --- no 500 anywhere ---------------------------------------------------------------------

ODD_VALUES = ["abc", "-1", "\x00", "", "<script>"]
# Known to fail until the fixes described in the report land in admin/base.py (ids and page
# numbers beyond the integer column range reach SQLite, composite ids reach session.get) and
# admin/tasks.py (status.json parses ids with int()).
ODD_VALUES_PENDING_BASE_FIX = ["99999999999999999999", "1,2"]


def _crawl_for_500s(app, client, who, values):
    from tests.conftest import login

    login(client, f"{who}@example.com", f"{who}-password")
    failures = []
    for method, url in protected_urls(app):
        if method != "GET" or "/export/" in url:
            continue
        for odd in values:
            # Detail pages read only ``id``, lists only the others: one request covers both.
            query = {
                name: odd for name in ("id", "ids", "search", "page", "sort", "page_size", "flt1_0")
            }
            response = client.get(url, query_string=query)
            if response.status_code >= 500:
                failures.append((url, odd, response.status_code))
    assert failures == []


@pytest.fixture
def crawl_rows(app, member_user, sim_model):
    make_task(member_user, sim_model, status=FAILURE)
    make_download(member_user)


@pytest.mark.parametrize("who", ["admin", "member"])
def test_no_page_gives_500_on_odd_parameters(app, client, admin_user, crawl_rows, who):
    _crawl_for_500s(app, client, who, ODD_VALUES)


def test_no_page_gives_500_on_huge_or_composite_ids(app, client, admin_user, crawl_rows):
    _crawl_for_500s(app, client, "admin", ODD_VALUES_PENDING_BASE_FIX)


def test_member_crawl_of_every_page_shows_no_one_elses_rows(
    app, member_client, others_rows, other_member
):
    """Every GET route in the URL map, as a member, with the ids of another person's rows."""
    from tests.admin.helpers import URL_ARGS

    task, download = others_rows
    leaks = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint.endswith(("static", "favicon")):
            continue  # files (assets, the favicon): nobody's rows
        args = {**URL_ARGS, "download_id": download.id, "task_id": task.id}
        url = rule.build({name: args[name] for name in rule.arguments}, append_unknown=False)[1]
        for query in ("", f"?id={task.id}", f"?id={download.id}", f"?ids={task.id}"):
            response = member_client.get(url + query)
            body = response.get_data(as_text=True)
            if "olga-secret" in body or other_member.email in body:
                leaks.append((url + query, response.status_code))
    assert leaks == []
