"""The Tasks panel through its forms: create, edit, delete, validation."""

from __future__ import annotations

import re

import pytest

from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import PENDING, QUEUED, SUCCESS
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    flashes,
    make_task,
    snapshot,
    text,
)
from tests.conftest import post_form


def task_form(llm, **overrides) -> dict:
    form = {
        "name": "Greeting",
        "model": str(llm.id),
        "system_prompt": "Be brief.",
        "prompt": "Say hello\nto everyone",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def all_tasks() -> list[Task]:
    db.session.expire_all()
    return db.session.query(Task).order_by(Task.id).all()


def test_admin_creates_a_task_owned_by_themselves(admin_client, admin_user, sim_model):
    page = text(admin_client.get("/admin/task/new/?modal=1"))
    selected = re.search(r'<select[^>]*id="creator".*?</select>', page, re.S).group(0)
    assert re.search(
        rf'<option selected value="{admin_user.id}"|<option value="{admin_user.id}" selected',
        selected,
    )

    response = post_form(
        admin_client, "/admin/task/new/", task_form(sim_model), follow_redirects=True
    )
    assert response.status_code == 200
    (task,) = all_tasks()
    assert task.creator_id == admin_user.id
    assert task.status in (PENDING, QUEUED)
    assert task.run_requested_at is not None
    assert task.prompt == "Say hello\nto everyone" and task.system_prompt == "Be brief."
    assert f"Task #{task.id} created" in flashes(text(response))


def test_admin_may_create_a_task_for_someone_else(admin_client, member_user, sim_model):
    post_form(admin_client, "/admin/task/new/", task_form(sim_model, creator=str(member_user.id)))
    (task,) = all_tasks()
    assert task.creator_id == member_user.id


def test_member_form_has_no_creator_field(member_client):
    page = text(member_client.get("/admin/task/new/"))
    assert 'id="prompt"' in page and 'id="creator"' not in page


def test_member_cannot_set_another_creator(member_client, member_user, other_member, sim_model):
    response = post_form(
        member_client, "/admin/task/new/", task_form(sim_model, creator=str(other_member.id))
    )
    assert response.status_code == 302
    (task,) = all_tasks()
    assert task.creator_id == member_user.id


def test_member_cannot_reassign_own_task(member_client, member_user, other_member, sim_model):
    task = make_task(member_user, sim_model)
    post_form(
        member_client,
        f"/admin/task/edit/?id={task.id}",
        task_form(sim_model, name="Renamed", creator=str(other_member.id)),
    )
    row = snapshot(task)
    assert row["name"] == "Renamed" and row["creator_id"] == member_user.id


def test_name_defaults_to_the_first_line_of_the_prompt(admin_client, sim_model):
    response = post_form(admin_client, "/admin/task/new/", task_form(sim_model, name=""))
    assert response.status_code == 302, field_errors(text(response), "name")
    assert all_tasks()[0].name == "Say hello"


def test_edit_a_finished_task(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=SUCCESS)
    response = post_form(
        admin_client,
        f"/admin/task/edit/?id={task.id}",
        task_form(sim_model, name="Edited", prompt="New prompt", creator=str(admin_user.id)),
    )
    assert response.status_code == 302
    row = snapshot(task)
    assert row["name"] == "Edited" and row["prompt"] == "New prompt"


def test_a_queued_task_cannot_be_edited(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=QUEUED)
    before = snapshot(task)
    response = post_form(
        admin_client,
        f"/admin/task/edit/?id={task.id}",
        task_form(sim_model, name="Edited", creator=str(admin_user.id)),
    )
    assert response.status_code == 200
    assert "cannot be edited" in flashes(text(response))
    assert snapshot(task) == before


def test_delete_a_task(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model)
    keep = make_task(admin_user, sim_model, name="keep")
    response = post_form(admin_client, "/admin/task/delete/", {"id": str(task.id)})
    assert response.status_code == 302
    assert [t.id for t in all_tasks()] == [keep.id]


def test_member_deletes_own_task_by_action(member_client, member_user, sim_model):
    task = make_task(member_user, sim_model)
    response = post_form(
        member_client,
        "/admin/task/action/",
        {"action": "delete", "rowid": str(task.id)},
        follow_redirects=True,
    )
    assert "1 task(s) deleted" in flashes(text(response))
    assert all_tasks() == []


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("prompt", "", "The prompt is required."),
        ("prompt", "   ", "Prompt is required."),
        ("prompt", "Hello\x00world", "NUL byte"),
        ("system_prompt", "Be\x00brief", "NUL byte"),
        ("name", "x" * 201, "too long"),
        ("model", "", "Choose a model."),
        ("model", "987654", "Choose a model."),
    ],
)
def test_invalid_task_is_reported_next_to_the_field(admin_client, sim_model, field, value, message):
    response = post_form(admin_client, "/admin/task/new/", task_form(sim_model, **{field: value}))
    assert response.status_code == 200
    errors = field_errors(text(response), field)
    assert any(message in e for e in errors), errors
    assert all_tasks() == []


def test_prompt_over_the_configured_limit(app, admin_client, sim_model):
    app.config["MAX_PROMPT_CHARS"] = 20
    response = post_form(admin_client, "/admin/task/new/", task_form(sim_model, prompt="x" * 21))
    errors = field_errors(text(response), "prompt")
    assert any("too long: 21 characters (the maximum is 20)" in e for e in errors), errors
    response = post_form(
        admin_client, "/admin/task/new/", task_form(sim_model, system_prompt="y" * 21)
    )
    assert any("too long" in e for e in field_errors(text(response), "system_prompt"))
    assert all_tasks() == []
    assert (
        post_form(
            admin_client, "/admin/task/new/", task_form(sim_model, prompt="x" * 20)
        ).status_code
        == 302
    )


def test_disabled_model_cannot_be_chosen(admin_client, sim_model):
    sim_model.enabled = False
    db.session.commit()
    response = post_form(admin_client, "/admin/task/new/", task_form(sim_model))
    assert response.status_code == 200
    assert field_errors(text(response), "model")
    assert all_tasks() == []


def test_invalid_edit_changes_nothing(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model)
    before = snapshot(task)
    response = post_form(
        admin_client,
        f"/admin/task/edit/?id={task.id}",
        task_form(sim_model, prompt="bad\x00prompt", creator=str(admin_user.id)),
    )
    assert response.status_code == 200
    assert field_errors(text(response), "prompt")
    assert snapshot(task) == before


def _submission_key(page: str) -> str:
    return re.search(
        r'name="submission_key"[^>]*value="([0-9a-f]{32})"|value="([0-9a-f]{32})"[^>]*name="submission_key"',
        page,
    ).group(1)


def test_the_same_create_form_posted_twice_creates_one_task(admin_client, sim_model):
    """A double click or a retried request: the form's one-time token makes it one task."""
    key = _submission_key(text(admin_client.get("/admin/task/new/")))
    form = task_form(sim_model, submission_key=key)
    first = post_form(admin_client, "/admin/task/new/", form, follow_redirects=True)
    second = post_form(admin_client, "/admin/task/new/", form, follow_redirects=True)
    (task,) = all_tasks()
    assert task.submission_key == key
    assert f"Task #{task.id} created" in flashes(text(first))
    assert f"already submitted: task #{task.id}" in flashes(text(second))
    other = _submission_key(text(admin_client.get("/admin/task/new/")))
    assert other != key, "every form gets its own token"
    post_form(admin_client, "/admin/task/new/", task_form(sim_model, submission_key=other))
    assert len(all_tasks()) == 2


def test_a_forged_submission_key_is_ignored(admin_client, sim_model):
    for key in ("../../etc", "x" * 200):
        post_form(admin_client, "/admin/task/new/", task_form(sim_model, submission_key=key))
    assert [t.submission_key for t in all_tasks()] == [None, None]


def test_the_same_duplicate_form_posted_twice_copies_once(admin_client, admin_user, sim_model):
    sources = [make_task(admin_user, sim_model, status=SUCCESS) for _ in range(3)]
    ids = ",".join(str(t.id) for t in sources)
    page = text(admin_client.get(f"/admin/task/duplicate/?ids={ids}"))
    form = {"model_id": str(sim_model.id), "submission_key": _submission_key(page), "ids": ids}
    post_form(admin_client, f"/admin/task/duplicate/?ids={ids}", form)
    second = post_form(
        admin_client, f"/admin/task/duplicate/?ids={ids}", form, follow_redirects=True
    )
    copies = [t for t in all_tasks() if t.source_task_id]
    assert sorted(t.source_task_id for t in copies) == sorted(t.id for t in sources)
    assert "already submitted" in flashes(text(second))
