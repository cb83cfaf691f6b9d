"""Every status change of a task or a download goes through llmadmin.lifecycle.

The guard on the database engine is what makes that checkable: these tests prove that
each way of writing a status around the state machine is refused (and writes nothing),
so the rest of the suite, which runs with the same guard, would fail on any such write.
"""

import pytest
from sqlalchemy import bindparam, select, update

from llmadmin.errors import InvalidTransition
from llmadmin.extensions import db
from llmadmin.lifecycle import DOWNLOADS, TASKS, transition
from llmadmin.models import Download, Task
from llmadmin.models.download import DownloadStatus
from llmadmin.models.task import TaskStatus
from llmadmin.services import tasks as task_service


@pytest.fixture
def task(app, sim_model, admin_user):
    return task_service.create_task(
        prompt="hello", model_id=sim_model.id, creator_id=admin_user.id, run=False
    )


def _status(task_id: int) -> str:
    return db.session.execute(select(Task.status).where(Task.id == task_id)).scalar_one()


def test_statuses_are_str_enums(task):
    assert isinstance(db.session.get(Task, task.id).status, str)
    assert [s.value for s in TaskStatus] == [
        "PENDING",
        "QUEUED",
        "RUNNING",
        "SUCCESS",
        "FAILURE",
        "CANCELED",
    ]
    assert TaskStatus.SUCCESS == "SUCCESS"


def test_an_orm_flush_of_a_status_is_refused(task):
    row = db.session.get(Task, task.id)
    row.status = TaskStatus.SUCCESS
    with pytest.raises(InvalidTransition, match="llmadmin.lifecycle"):
        db.session.commit()
    db.session.rollback()
    assert _status(task.id) == "PENDING"


def test_an_orm_flush_of_other_columns_is_allowed(task):
    row = db.session.get(Task, task.id)
    row.name = "renamed"
    db.session.commit()
    assert db.session.get(Task, task.id).name == "renamed"


def test_a_core_update_of_a_status_is_refused(task):
    with pytest.raises(InvalidTransition):
        db.session.execute(update(Task).where(Task.id == task.id).values(status="CANCELED"))
    db.session.rollback()
    stmt = update(Task.__table__).where(Task.__table__.c.id == bindparam("b_id"))
    with pytest.raises(InvalidTransition):
        db.session.execute(stmt, [{"b_id": task.id, "status": "SUCCESS"}])
    db.session.rollback()
    assert _status(task.id) == "PENDING"


def test_a_download_status_outside_the_machine_is_refused(app, admin_user):
    row = Download(name="x", file_name="x.csv", status="PENDING", creator_id=admin_user.id)
    db.session.add(row)
    db.session.commit()
    with pytest.raises(InvalidTransition):
        db.session.execute(update(Download).where(Download.id == row.id).values(status="SUCCESS"))
    db.session.rollback()
    assert DOWNLOADS.transition([row.id], DownloadStatus.RUNNING) == [row.id]


def test_impossible_transitions_raise_a_named_error(task):
    with pytest.raises(InvalidTransition, match="PENDING -> SUCCESS"):
        transition([task.id], TaskStatus.SUCCESS, from_statuses=(TaskStatus.PENDING,))
    with pytest.raises(InvalidTransition, match="unknown status"):
        transition([task.id], "DONE")
    with pytest.raises(InvalidTransition, match="SUCCESS -> RUNNING"):
        DOWNLOADS.transition([1], DownloadStatus.RUNNING, from_statuses=(DownloadStatus.SUCCESS,))
    with pytest.raises(InvalidTransition):
        TASKS.transition_batch(
            [{"id": task.id, "status": TaskStatus.RUNNING}], from_status=TaskStatus.SUCCESS
        )
    assert _status(task.id) == "PENDING"


def test_a_race_loser_is_a_no_op_not_an_error(task):
    assert transition([task.id], TaskStatus.CANCELED) == [task.id]
    # CANCELED -> RUNNING is not in the table, but RUNNING from QUEUED is: the row simply
    # is not QUEUED any more, as when a cancel beat a worker's claim.
    assert transition([task.id], TaskStatus.RUNNING, from_statuses=(TaskStatus.QUEUED,)) == []
    assert _status(task.id) == "CANCELED"


def test_the_batched_form_writes_only_rows_in_the_source_status(task, sim_model, admin_user):
    other = task_service.create_task(
        prompt="two", model_id=sim_model.id, creator_id=admin_user.id, run=False
    )
    transition([task.id, other.id], TaskStatus.QUEUED, job_id="job-a")
    transition([task.id, other.id], TaskStatus.RUNNING)
    transition([other.id], TaskStatus.CANCELED)
    TASKS.transition_batch(
        [
            {"id": task.id, "job_id": "job-a", "status": TaskStatus.SUCCESS, "result": "ok"},
            {"id": other.id, "job_id": "job-a", "status": TaskStatus.SUCCESS, "result": "late"},
        ],
        from_status=TaskStatus.RUNNING,
        match=("job_id",),
    )
    db.session.commit()
    rows = dict(db.session.execute(select(Task.id, Task.result)).all())
    assert (_status(task.id), rows[task.id]) == ("SUCCESS", "ok")
    assert (_status(other.id), rows[other.id]) == ("CANCELED", None)


def test_raw_sql_is_not_a_way_around_it_in_our_code():
    """No module of the package writes a status with hand-written SQL text."""
    import pathlib
    import re

    package = pathlib.Path(__file__).resolve().parents[1] / "llmadmin"
    pattern = re.compile(r"(?is)update\s+\"?(task|download)\"?\s+set\b[^;]*\bstatus\b")
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
