"""Run history, diffs, outdated results after edits, and parameter overrides (re-run, duplicate, bulk)."""

from __future__ import annotations

import json

import pytest

from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Task, TaskRun
from llmadmin.models.task import PENDING, QUEUED, SUCCESS
from llmadmin.services import bulk, task_runs
from llmadmin.services import tasks as svc
from llmadmin.services.selections import Selection


def finished_task(model, creator=None, result="old output", **fields) -> Task:
    task = Task(
        name="t",
        prompt=fields.pop("prompt", "Say hi"),
        status=SUCCESS,
        result=result,
        model_id=model.id,
        creator_id=creator.id if creator else None,
        **fields,
    )
    db.session.add(task)
    db.session.commit()
    return task


def add_run(task, result, status=SUCCESS, **fields) -> TaskRun:
    run = TaskRun(task_id=task.id, status=status, result=result, attempts=1, **fields)
    db.session.add(run)
    db.session.commit()
    return run


def test_history_is_newest_first_with_a_diff_against_the_previous_output(app, sim_model):
    task = finished_task(sim_model)
    add_run(task, "line one\nline two\n", params='{"temperature": 0.7}')
    add_run(task, "line one\nline two\n")
    add_run(task, "line one\n<b>line 2</b>\n")
    third, second, first = task_runs.history(task.id)
    assert [e.number for e in (third, second, first)] == [3, 2, 1]
    assert first.diff is None and first.params == {"temperature": 0.7}
    assert second.same_output and second.diff is None
    assert ("del", "-line two") in third.diff and ("add", "+<b>line 2</b>") in third.diff
    assert third.diff[0][0] == "hunk"


def test_editing_a_finished_tasks_inputs_marks_its_result_outdated(app, sim_model):
    task = finished_task(sim_model)
    task.name = "renamed"
    assert svc.note_edit(task) is False  # the name is not an input of the result
    db.session.commit()
    for field, value in (("prompt", "Say bye"), ("temperature", 1.0), ("system_prompt", "x")):
        task = finished_task(sim_model)
        setattr(task, field, value)
        assert svc.note_edit(task) is True, field
        db.session.commit()
        assert db.session.get(Task, task.id).result_outdated
    never_run = finished_task(sim_model, result=None)
    db.session.execute(
        db.update(Task)
        .where(Task.id == never_run.id)
        .values(status=PENDING)
        .execution_options(llmadmin_lifecycle=True)
    )
    db.session.commit()
    db.session.refresh(never_run)
    never_run.prompt = "changed before any run"
    assert svc.note_edit(never_run) is False


def test_a_rerun_clears_the_outdated_mark_and_applies_overrides(app, sim_model):
    task = finished_task(sim_model, result_outdated=True, temperature=0.3, seed=5)
    outcome = svc.run_tasks([task.id], overrides={"temperature": "1.1", "stop": "END", "seed": ""})
    assert outcome.changed == 1
    db.session.expire_all()
    row = db.session.get(Task, task.id)
    assert row.status == QUEUED and not row.result_outdated and row.result is None
    assert (row.temperature, row.stop, row.seed) == (1.1, '["END"]', 5)  # empty keeps its own


def test_a_bad_override_changes_nothing(app, sim_model):
    task = finished_task(sim_model)
    with pytest.raises(ValidationError, match="Top p must be a number from 0 to 1"):
        svc.run_tasks([task.id], overrides={"top_p": "3"})
    db.session.expire_all()
    row = db.session.get(Task, task.id)
    assert row.status == SUCCESS and row.result == "old output" and row.top_p is None


def test_duplicate_keeps_the_source_parameters_unless_overridden(app, sim_model, admin_user):
    source = finished_task(
        sim_model, temperature=0.2, response_format='{"type": "json_object"}', max_tokens=50
    )
    svc.duplicate_tasks([source.id], sim_model.id, admin_user.id, overrides={"max_tokens": "99"})
    copy = db.session.execute(db.select(Task).where(Task.source_task_id == source.id)).scalar_one()
    assert (copy.temperature, copy.response_format, copy.max_tokens) == (
        0.2,
        '{"type": "json_object"}',
        99,
    )
    with pytest.raises(ValidationError, match="Seed must be a whole number"):
        svc.duplicate_tasks([source.id], sim_model.id, admin_user.id, overrides={"seed": "x"})


def test_bulk_rerun_with_overrides_on_all_matching_rows_runs_in_the_job(app, sim_model, admin_user):
    tasks = [finished_task(sim_model, admin_user, temperature=0.5) for _ in range(3)]
    other = finished_task(sim_model, admin_user, prompt="leave me", temperature=0.5)
    selection = Selection("task", admin_user.id, search="hi")
    operation, queued = bulk.start_operation(
        selection, "run", {"params": {"temperature": 1.9, "seed": 11}}
    )
    assert queued and operation.matched == 3
    stored = json.loads(db.session.get(BulkOperation, operation.id).arguments)
    assert stored == {"params": {"temperature": 1.9, "seed": 11}}
    assert bulk.run_operation(operation.id) == "SUCCESS"
    db.session.expire_all()
    for task in tasks:
        row = db.session.get(Task, task.id)
        assert (row.status, row.temperature, row.seed) == (QUEUED, 1.9, 11)
    untouched = db.session.get(Task, other.id)
    assert (untouched.status, untouched.temperature) == (SUCCESS, 0.5)
