"""A task's details page offers the list's actions for that task, as its status allows."""

from __future__ import annotations

import re

import pytest

from llmadmin.extensions import db
from llmadmin.models import AuditEntry, Task
from llmadmin.models.task import CANCELED, FAILURE, PENDING, QUEUED, RUNNING, SUCCESS
from tests.admin.helpers import make_task
from tests.conftest import post_form

BUTTONS = {
    SUCCESS: {"run", "rerun_params", "duplicate"},
    FAILURE: {"run", "retry", "rerun_params", "duplicate"},
    CANCELED: {"run", "rerun_params", "duplicate"},
    PENDING: {"duplicate", "cancel"},
    QUEUED: {"duplicate", "cancel"},
    RUNNING: {"duplicate", "cancel"},
}


def buttons(client, task_id: int) -> set[str]:
    page = client.get(f"/admin/task/details/?id={task_id}").get_data(as_text=True)
    box = re.search(r'<div class="mb-3" id="task-actions">(.*?)</div>', page, re.S)
    return set(re.findall(r'data-action="([a-z_]+)"', box.group(1))) if box else set()


@pytest.mark.parametrize("status", list(BUTTONS))
def test_the_buttons_follow_the_tasks_status(admin_client, admin_user, sim_model, status):
    task = make_task(admin_user, sim_model, status=status)
    assert buttons(admin_client, task.id) == BUTTONS[status]


def test_a_task_whose_model_is_disabled_offers_no_rerun(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=FAILURE)
    sim_model.enabled = False
    db.session.commit()
    assert buttons(admin_client, task.id) == {"duplicate"}


def test_rerun_posts_the_lists_action_and_comes_back(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=SUCCESS)
    details = f"/admin/task/details/?id={task.id}"
    page = admin_client.get(details).get_data(as_text=True)
    back = re.search(r'name="url" value="([^"]+)"', page).group(1)
    response = post_form(
        admin_client,
        "/admin/task/action/",
        {"action": "run", "rowid": str(task.id), "url": back.replace("&amp;", "&")},
        token_from=details,
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/admin/task/details/?id={task.id}")
    db.session.expire_all()
    assert db.session.get(Task, task.id).status in (PENDING, QUEUED)
    entry = db.session.execute(db.select(AuditEntry)).scalars().all()[-1]
    assert entry.action == "action:run" and entry.object_id == str(task.id)


def test_cancel_from_the_details_page_uses_csrf(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=QUEUED)
    forged = admin_client.post("/admin/task/action/", data={"action": "cancel", "rowid": task.id})
    assert forged.status_code == 400  # no CSRF token
    db.session.expire_all()
    assert db.session.get(Task, task.id).status == QUEUED
    post_form(
        admin_client,
        "/admin/task/action/",
        {"action": "cancel", "rowid": str(task.id)},
        token_from=f"/admin/task/details/?id={task.id}",
    )
    db.session.expire_all()
    assert db.session.get(Task, task.id).status == CANCELED


def test_duplicate_and_rerun_buttons_open_their_forms_for_this_task(
    admin_client, admin_user, sim_model
):
    task = make_task(admin_user, sim_model, status=FAILURE)
    page = admin_client.get(f"/admin/task/details/?id={task.id}").get_data(as_text=True)
    for name, path in (
        ("duplicate", "/admin/task/duplicate/"),
        ("rerun_params", "/admin/task/rerun/"),
    ):
        href = re.search(rf'data-action="{name}" href="([^"]+)"', page).group(1)
        href = href.replace("&amp;", "&")
        assert href.startswith(f"{path}?ids={task.id}&"), href
        assert admin_client.get(href).status_code == 200


def test_a_member_sees_buttons_on_their_own_task_only(
    member_client, member_user, admin_user, sim_model
):
    own = make_task(member_user, sim_model, status=FAILURE)
    other = make_task(admin_user, sim_model, status=FAILURE)
    assert buttons(member_client, own.id) == BUTTONS[FAILURE]
    assert member_client.get(f"/admin/task/details/?id={other.id}").status_code == 404
    response = post_form(
        member_client,
        "/admin/task/action/",
        {"action": "retry", "rowid": str(other.id)},
        token_from=f"/admin/task/details/?id={own.id}",
    )
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Task, other.id).status == FAILURE


def test_the_buttons_speak_the_viewers_language(admin_client, admin_user, sim_model):
    admin_user.locale = "zh_Hans_CN"
    task = make_task(admin_user, sim_model, status=QUEUED)
    page = admin_client.get(f"/admin/task/details/?id={task.id}").get_data(as_text=True)
    assert 'data-confirm="取消此任务？"' in page
