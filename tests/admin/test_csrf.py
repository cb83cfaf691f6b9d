"""CSRF: every state-changing POST needs the token; the RQ dashboard gets it from a cookie."""

from __future__ import annotations

import pytest
from rq.job import Job

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Person, Task
from llmadmin.models.task import FAILURE
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    flashes,
    make_task,
    redirect_path,
    snapshot,
    text,
)
from tests.conftest import csrf_token

CSRF_MESSAGE = "sent without its security token"


def assert_rejected(response):
    """A missing token gives 400, or a redirect back to the same site with a flash."""
    if response.status_code == 302:
        assert redirect_path(response) != "/login"
    else:
        assert response.status_code == 400, response.status_code


@pytest.fixture
def queued_job(app):
    from llmadmin.queues import get_queue

    return get_queue("llm").enqueue(
        "builtins.len", [1, 2]
    )  # the app fixture flushes Redis per test


def job_exists(job) -> bool:
    from llmadmin.queues import get_redis

    return Job.exists(job.id, connection=get_redis())


def test_login_without_token_is_rejected(client, member_user):
    response = client.post(
        "/login", data={"email": "member@example.com", "password": "member-password"}
    )
    assert_rejected(response)
    assert CSRF_MESSAGE in text(response)
    assert redirect_path(client.get("/admin/")) == "/login"


def test_login_with_a_wrong_token_is_rejected(client, member_user):
    csrf_token(client)
    response = client.post(
        "/login",
        data={"email": "member@example.com", "password": "member-password", "csrf_token": "forged"},
    )
    assert_rejected(response)
    assert redirect_path(client.get("/admin/")) == "/login"


def test_create_without_token_saves_nothing(admin_client, sim_model):
    forms = {
        "/admin/task/new/": {"model": str(sim_model.id), "prompt": "hi"},
        "/admin/person/new/": {
            "name": "Eve",
            "email": "eve@example.com",
            "role": "admin",
            "new_password": "eve-password",
        },
        "/admin/llmmodel/new/": {
            "name": "Evil",
            "base_url": "https://evil.example.com/v1",
            "model_name": "x",
            "temperature": "1",
            "max_tokens": "1",
            "timeout_seconds": "1",
            "max_concurrency": "1",
            "rpm_limit": "0",
            "max_attempts": "1",
            "breaker_threshold": "1",
            "breaker_cooldown_seconds": "1",
        },
    }
    for url, form in forms.items():
        assert_rejected(admin_client.post(url, data=form))
    assert db.session.query(Task).count() == 0
    assert db.session.query(Person).filter(Person.email == "eve@example.com").count() == 0
    assert db.session.query(LLMModel).count() == 1


def test_delete_and_edit_without_token_change_nothing(
    admin_client, admin_user, member_user, sim_model
):
    task = make_task(admin_user, sim_model)
    rows = [(task, "task"), (member_user, "person"), (sim_model, "llmmodel")]
    before = [snapshot(row) for row, _ in rows]
    for row, endpoint in rows:
        assert_rejected(admin_client.post(f"/admin/{endpoint}/delete/", data={"id": str(row.id)}))
        assert_rejected(
            admin_client.post(f"/admin/{endpoint}/edit/?id={row.id}", data={"name": "changed"})
        )
    assert [snapshot(row) for row, _ in rows] == before


def test_actions_without_token_change_nothing(admin_client, admin_user, member_user, sim_model):
    task = make_task(admin_user, sim_model, status=FAILURE)
    before = (snapshot(task), snapshot(member_user), snapshot(sim_model))
    for endpoint, action, row_id in [
        ("task", "retry", task.id),
        ("task", "delete", task.id),
        ("person", "delete", member_user.id),
        ("llmmodel", "disable", sim_model.id),
    ]:
        response = admin_client.post(
            f"/admin/{endpoint}/action/", data={"action": action, "rowid": str(row_id)}
        )
        assert_rejected(response)
    assert (snapshot(task), snapshot(member_user), snapshot(sim_model)) == before


def test_logout_without_token_keeps_the_session(admin_client):
    assert_rejected(admin_client.post("/logout"))
    assert admin_client.get("/admin/").status_code == 200


def test_rejected_form_goes_back_with_a_flash(admin_client):
    response = admin_client.post(
        "/admin/task/delete/", data={"id": "1"}, headers={"Referer": "http://localhost/admin/task/"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost/admin/task/"
    assert CSRF_MESSAGE in flashes(text(admin_client.get("/admin/task/")))


def test_rejected_form_never_redirects_to_another_site(admin_client):
    response = admin_client.post(
        "/admin/task/delete/",
        data={"id": "1"},
        headers={"Referer": "https://evil.example.com/attack"},
    )
    assert response.status_code == 400
    assert "evil.example.com" not in response.headers.get("Location", "")


# --- the RQ dashboard ----------------------------------------------------------------------


def rq_cookie(client) -> str:
    assert client.get("/admin/rq/").status_code == 200
    cookie = client.get_cookie("_csrf_token", path="/admin/rq")
    assert cookie is not None, "the dashboard page did not set _csrf_token"
    return cookie.value


def test_rq_post_without_token_is_rejected(admin_client, queued_job):
    rq_cookie(admin_client)
    response = admin_client.post(
        f"/admin/rq/job/{queued_job.id}/delete", headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    response = admin_client.post(
        f"/admin/rq/job/{queued_job.id}/delete",
        headers={"X-CSRFToken": "forged", "Accept": "application/json"},
    )
    assert response.status_code == 400
    assert job_exists(queued_job)


def test_rq_post_with_the_cookie_token_is_accepted(admin_client, queued_job):
    token = rq_cookie(admin_client)
    response = admin_client.post(
        f"/admin/rq/job/{queued_job.id}/delete", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200
    assert response.get_json() == {"status": "OK"}
    assert not job_exists(queued_job)


def test_rq_cookie_is_scoped_to_the_dashboard(admin_client):
    rq_cookie(admin_client)
    cookie = admin_client.get_cookie("_csrf_token", path="/admin/rq")
    assert cookie.path == "/admin/rq" and cookie.same_site == "Strict"


def test_rq_requeue_all_needs_a_post(admin_client):
    token = rq_cookie(admin_client)
    assert admin_client.get("/admin/rq/requeue/llm").status_code == 405
    response = admin_client.post("/admin/rq/requeue/llm", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert response.get_json()["status"] == "OK"


def test_rq_unknown_job_is_404(admin_client):
    assert admin_client.get("/admin/rq/0/view/job/no-such-job").status_code == 404
    token = rq_cookie(admin_client)
    response = admin_client.post(
        "/admin/rq/job/no-such-job/requeue", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 404
