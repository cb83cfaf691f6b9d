"""The Tasks panel: parameter fields, outdated results, run history and diffs, re-run with overrides."""

from __future__ import annotations

import re

import pytest

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, TaskRun
from llmadmin.models.task import QUEUED, SUCCESS
from llmadmin.services import bulk
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    flashes,
    make_task,
    snapshot,
    text,
)
from tests.admin.test_tasks import all_tasks, task_form
from tests.conftest import post_form

BAD_VALUES = [
    ("temperature", "3", "Temperature must be a number from 0 to 2."),
    ("temperature", "warm", "Temperature must be a number from 0 to 2."),
    ("max_tokens", "0", "Max tokens must be a whole number from 1 to 1,000,000."),
    ("top_p", "-1", "Top p must be a number from 0 to 1."),
    ("frequency_penalty", "2.5", "Frequency penalty must be a number from -2 to 2."),
    ("presence_penalty", "much", "Presence penalty must be a number from -2 to 2."),
    ("seed", "1.5", "Seed must be a whole number (64-bit)."),
    ("stop", "a\nb\nc\nd\ne", "At most 4 stop sequences are allowed (5 given)."),
    ("response_format", "{not json", 'must be "text", "json_object" or a JSON schema object'),
    ("response_format", '{"type": "objet"}', "The JSON schema is not valid"),
]


def test_create_a_task_with_its_own_parameters(admin_client, sim_model):
    form = task_form(
        sim_model,
        temperature="0.2",
        max_tokens="64",
        top_p="0.9",
        seed="3",
        frequency_penalty="0.5",
        presence_penalty="-1",
        stop="END\n###",
        response_format='{"type": "object", "properties": {"a": {"type": "string"}}}',
    )
    response = post_form(admin_client, "/admin/task/new/", form)
    assert response.status_code == 302
    (task,) = all_tasks()
    assert (task.temperature, task.max_tokens, task.top_p, task.seed) == (0.2, 64, 0.9, 3)
    assert (task.frequency_penalty, task.presence_penalty) == (0.5, -1.0)
    assert task.stop == '["END", "###"]'
    assert '"type": "json_schema"' in task.response_format


def test_empty_parameters_default_from_the_model(admin_client, sim_model):
    post_form(admin_client, "/admin/task/new/", task_form(sim_model))
    (task,) = all_tasks()
    assert (task.temperature, task.max_tokens, task.stop, task.response_format) == (None,) * 4


@pytest.mark.parametrize("field, value, message", BAD_VALUES)
def test_a_bad_parameter_is_reported_next_to_its_field_and_nothing_is_saved(
    admin_client, sim_model, field, value, message
):
    response = post_form(admin_client, "/admin/task/new/", task_form(sim_model, **{field: value}))
    assert response.status_code == 200
    errors = field_errors(text(response), field)
    assert any(message in e for e in errors), errors
    assert all_tasks() == []


@pytest.mark.parametrize("field, value, message", BAD_VALUES[:3])
def test_a_bad_parameter_in_an_edit_changes_nothing(
    admin_client, admin_user, sim_model, field, value, message
):
    task = make_task(admin_user, sim_model)
    before = snapshot(task)
    form = task_form(sim_model, prompt="changed", creator=str(admin_user.id), **{field: value})
    response = post_form(admin_client, f"/admin/task/edit/?id={task.id}", form)
    assert response.status_code == 200
    assert any(message in e for e in field_errors(text(response), field))
    assert snapshot(task) == before


def test_the_edit_form_shows_the_stored_parameters_as_typed(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model)
    task.stop, task.response_format, task.temperature = '["END"]', '{"type": "json_object"}', 0.5
    db.session.commit()
    page = text(admin_client.get(f"/admin/task/edit/?id={task.id}"))
    assert re.search(r'<textarea[^>]*id="stop"[^>]*>\s*END</textarea>', page)
    assert re.search(r'<textarea[^>]*id="response_format"[^>]*>\s*json_object</textarea>', page)
    assert re.search(r'id="temperature"[^>]*value="0.5"|value="0.5"[^>]*id="temperature"', page)


def test_editing_a_finished_tasks_prompt_marks_the_output_outdated(
    admin_client, admin_user, sim_model
):
    task = make_task(admin_user, sim_model, status=SUCCESS, result="answer to the old prompt")
    form = task_form(sim_model, prompt="A new prompt", creator=str(admin_user.id))
    response = post_form(
        admin_client, f"/admin/task/edit/?id={task.id}", form, follow_redirects=True
    )
    assert "marked outdated" in flashes(text(response))
    row = snapshot(task)
    assert row["result_outdated"] and row["result"] == "answer to the old prompt"
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert "belongs to the previous version" in page
    listing = text(admin_client.get("/admin/task/"))
    assert ">outdated</span>" in listing


def test_renaming_a_finished_task_does_not_mark_it_outdated(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=SUCCESS)
    form = task_form(sim_model, name="Only the name", prompt="Say hi", system_prompt="")
    form["creator"] = str(admin_user.id)
    assert post_form(admin_client, f"/admin/task/edit/?id={task.id}", form).status_code == 302
    assert snapshot(task)["result_outdated"] is False


def test_details_list_every_run_newest_first_with_an_escaped_diff(
    admin_client, admin_user, sim_model
):
    task = make_task(admin_user, sim_model, status=SUCCESS, result="<script>alert(2)</script>")
    for result, params in (("plain answer", '{"temperature": 0.7}'), (task.result, None)):
        db.session.add(
            TaskRun(task_id=task.id, status=SUCCESS, result=result, attempts=1, params=params)
        )
    db.session.commit()
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert "Runs <small" in page
    assert page.index("Run 2") < page.index("Run 1")
    assert "Diff against run 1" in page
    assert "-plain answer" in page
    assert "+&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<script>alert(2)" not in page
    assert "temperature=0.7" in page


def test_a_task_that_never_ran_says_so(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=SUCCESS)
    assert "This task has not run yet." in text(
        admin_client.get(f"/admin/task/details/?id={task.id}")
    )


def test_rerun_ticked_tasks_with_other_parameters(admin_client, admin_user, sim_model):
    tasks = [make_task(admin_user, sim_model) for _ in range(2)]
    ids = ",".join(str(t.id) for t in tasks)
    response = post_form(
        admin_client,
        "/admin/task/action/",
        {"action": "rerun_params", "rowid": [str(t.id) for t in tasks]},
    )
    assert response.status_code == 302 and "/admin/task/rerun/" in response.headers["Location"]
    page = text(admin_client.get(f"/admin/task/rerun/?ids={ids}"))
    assert "Re-run 2 task(s)" in page
    bad = post_form(admin_client, "/admin/task/rerun/", {"ids": ids, "top_p": "2"})
    assert bad.status_code == 200
    assert field_errors(text(bad), "top_p") == ["Top p must be a number from 0 to 1."]
    assert {snapshot(t)["status"] for t in tasks} == {SUCCESS}
    good = post_form(
        admin_client,
        "/admin/task/rerun/",
        {"ids": ids, "temperature": "1.3", "response_format": "json_object"},
        follow_redirects=True,
    )
    assert "2 task(s) queued" in flashes(text(good))
    for task in tasks:
        row = snapshot(task)
        assert (row["status"], row["temperature"]) == (QUEUED, 1.3)
        assert row["response_format"] == '{"type": "json_object"}'


def test_rerun_all_matching_tasks_with_other_parameters_goes_through_the_job(
    admin_client, admin_user, sim_model
):
    wanted = [make_task(admin_user, sim_model, prompt="match me") for _ in range(3)]
    other = make_task(admin_user, sim_model, prompt="not this one")
    response = post_form(
        admin_client,
        "/admin/task/action/",
        {
            "action": "rerun_params",
            "rowid": [str(t.id) for t in wanted],
            "all_matching": "1",
            "list_args": "search=match",
        },
    )
    location = response.headers["Location"]
    assert "/admin/task/rerun/" in location and "list_args=search" in location
    page = text(admin_client.get("/admin/task/rerun/?list_args=search%3Dmatch"))
    assert "all 3 matching tasks" in page
    bad = post_form(
        admin_client, "/admin/task/rerun/", {"list_args": "search=match", "seed": "seven"}
    )
    assert field_errors(text(bad), "seed") == ["Seed must be a whole number (64-bit)."]
    assert db.session.query(BulkOperation).count() == 0
    post_form(admin_client, "/admin/task/rerun/", {"list_args": "search=match", "max_tokens": "77"})
    (operation,) = db.session.query(BulkOperation).all()
    assert (operation.action, operation.matched, operation.status) == ("run", 3, "PENDING")
    assert bulk.run_operation(operation.id) == "SUCCESS"
    for task in wanted:
        assert (snapshot(task)["status"], snapshot(task)["max_tokens"]) == (QUEUED, 77)
    assert (snapshot(other)["status"], snapshot(other)["max_tokens"]) == (SUCCESS, None)


def test_duplicate_with_a_bad_parameter_copies_nothing(admin_client, admin_user, sim_model):
    source = make_task(admin_user, sim_model)
    form = {"model_id": str(sim_model.id), "ids": str(source.id), "temperature": "9"}
    response = post_form(admin_client, f"/admin/task/duplicate/?ids={source.id}", form)
    assert response.status_code == 200
    assert field_errors(text(response), "temperature") == [
        "Temperature must be a number from 0 to 2."
    ]
    assert [t.id for t in all_tasks()] == [source.id]
    form["temperature"] = "0.4"
    post_form(admin_client, f"/admin/task/duplicate/?ids={source.id}", form)
    (copy,) = [t for t in all_tasks() if t.source_task_id == source.id]
    assert copy.temperature == 0.4


def test_the_list_offers_an_export_with_all_runs(admin_client):
    page = text(admin_client.get("/admin/task/"))
    assert "Export CSV with all runs" in page and "Re-run with other parameters" in page


def test_json_mode_output_that_is_not_json_is_flagged_in_the_list_and_details(
    admin_client, admin_user, sim_model
):
    task = make_task(admin_user, sim_model, result="{not: json}")
    task.response_format, task.output_is_json = '{"type": "json_object"}', False
    db.session.commit()
    assert ">not JSON</span>" in text(admin_client.get("/admin/task/"))
    assert "not valid JSON" in text(admin_client.get(f"/admin/task/details/?id={task.id}"))
