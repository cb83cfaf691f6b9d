"""A batch's tasks are made by a job: twice delivered, crashed, resent, canceled; and the
housekeeping pass that finishes and expires batches nobody looks at."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from rq.job import Job, JobStatus

from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Batch, Task
from llmadmin.models.base import utcnow
from llmadmin.models.batch import BatchStatus
from llmadmin.models.task import CANCELED, FAILURE, QUEUED, RUNNING, SUCCESS
from llmadmin.queues import get_redis
from llmadmin.services import batch_creation, batch_results, batch_sweep, batches
from tests.conftest import run_batch_jobs

LINES = 7


class Killed(BaseException):
    """A worker killed mid-job: nothing after this point runs, nothing is recorded."""


def jsonl(count: int = LINES, bad: tuple[int, ...] = ()) -> str:
    return "".join(
        json.dumps(
            {"prompt": f"p{i}", "model": "Nope" if i in bad else "Sim", "custom_id": f"c{i}"}
        )
        + "\n"
        for i in range(1, count + 1)
    )


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(batch_creation, "INSERT_BATCH", 2)


def accept(tmp_path, person_id, text: str | None = None, **kwargs) -> Batch:
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl() if text is None else text)
    return batches.create_batch_from_file(str(path), "jsonl", person_id, **kwargs)


def crash_on_chunk(monkeypatch, number: int) -> None:
    """Kill the run when it is about to commit its ``number``-th chunk."""
    real = batch_creation._Chunk.commit
    calls = {"n": 0}

    def commit(self):
        if self.lines:
            calls["n"] += 1
            if calls["n"] == number:
                raise Killed()
        return real(self)

    monkeypatch.setattr(batch_creation._Chunk, "commit", commit)


def lines_of_tasks(batch_id: int) -> list[int]:
    return sorted(
        db.session.execute(db.select(Task.batch_line).where(Task.batch_id == batch_id)).scalars()
    )


def test_a_job_delivered_twice_creates_each_line_once(app, sim_model, member_user, tmp_path):
    batch = accept(tmp_path, member_user.id)
    assert batch_creation.run_creation(batch.id, batch.job_id) == BatchStatus.IN_PROGRESS
    assert batch_creation.run_creation(batch.id, batch.job_id) == "skipped"
    assert lines_of_tasks(batch.id) == list(range(1, LINES + 1))


def test_a_redelivery_after_a_crash_resumes_after_the_last_committed_line(
    app, sim_model, member_user, tmp_path, small_chunks, monkeypatch
):
    batch = accept(tmp_path, member_user.id, jsonl(bad=(4,)))
    crash_on_chunk(monkeypatch, 3)
    with pytest.raises(Killed):
        batch_creation.run_creation(batch.id, batch.job_id)
    db.session.rollback()
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert (row.status, row.last_line, row.total, row.invalid_lines) == ("VALIDATING", 4, 3, 1)
    monkeypatch.undo()
    monkeypatch.setattr(batch_creation, "INSERT_BATCH", 2)
    # RQ delivers the same job again (at-least-once): it resumes at line 5
    assert batch_creation.run_creation(batch.id, batch.job_id) == BatchStatus.IN_PROGRESS
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert lines_of_tasks(batch.id) == [1, 2, 3, 5, 6, 7]
    assert (row.total, row.lines, row.invalid_lines, row.creation_attempts) == (6, 7, 1, 2)
    assert [e["line"] for e in json.loads(row.line_errors)] == [4]


def test_two_runs_at_once_the_second_loses_its_chunk(
    app, sim_model, member_user, tmp_path, small_chunks
):
    """The chunk's commit is conditional on where the run started it: a twin run stops."""
    batch = accept(tmp_path, member_user.id)
    first = batch_creation._Chunk(batch.id, batch.job_id, 0)
    twin = batch_creation._Chunk(batch.id, batch.job_id, 0)
    checked = list(batch_creation.check_lines(batch.source_path, "jsonl", member_user.id))
    for chunk in (first, twin):
        for line in checked[:2]:
            chunk.add(line)
    first.commit()
    with pytest.raises(batch_creation.LostOwnership):
        twin.commit()
    db.session.rollback()
    assert lines_of_tasks(batch.id) == [1, 2]


def test_a_crashed_creation_is_resent_by_housekeeping_and_completes(
    app, sim_model, member_user, tmp_path, small_chunks, monkeypatch
):
    batch = accept(tmp_path, member_user.id)
    old_job_id = batch.job_id
    crash_on_chunk(monkeypatch, 2)
    with pytest.raises(Killed):
        batch_creation.run_creation(batch.id, old_job_id)
    db.session.rollback()
    job = Job.fetch(old_job_id, connection=get_redis())
    job.set_status(JobStatus.STARTED)  # what a killed worker leaves behind
    assert batch_sweep.sweep()["creation_resent"] == 0  # not stale yet
    later = utcnow() + batch_sweep.CREATION_STALE + timedelta(seconds=1)
    assert batch_sweep.sweep(later)["creation_resent"] == 1
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert row.job_id != old_job_id and Job.fetch(row.job_id, connection=get_redis())
    monkeypatch.undo()
    monkeypatch.setattr(batch_creation, "INSERT_BATCH", 2)
    assert batch_creation.run_creation(batch.id, old_job_id) == "skipped"  # the old job
    assert run_batch_jobs() == [BatchStatus.IN_PROGRESS]
    assert lines_of_tasks(batch.id) == list(range(1, LINES + 1))


def test_a_creation_that_keeps_dying_fails_clearly(app, sim_model, member_user, tmp_path):
    batch = accept(tmp_path, member_user.id)
    first = list(batch_creation.check_lines(batch.source_path, "jsonl", member_user.id))[:2]
    chunk = batch_creation._Chunk(batch.id, batch.job_id, 0)
    for line in first:
        chunk.add(line)
    chunk.commit()
    db.session.execute(db.update(Batch).where(Batch.id == batch.id).values(creation_attempts=3))
    db.session.commit()
    Job.fetch(batch.job_id, connection=get_redis()).delete()
    later = utcnow() + timedelta(minutes=1)
    assert batch_sweep.sweep(later)["creation_failed"] == 1
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert row.status == BatchStatus.FAILED and "stopped 3 time(s)" in row.error
    assert "2 line(s)" in row.error
    assert {t.status for t in Task.query.filter_by(batch_id=batch.id)} == {CANCELED}


def test_a_batch_accepted_while_redis_is_down_is_sent_later(
    app, sim_model, member_user, tmp_path, monkeypatch
):
    def down(*args, **kwargs):
        raise QueueUnavailable("down")

    monkeypatch.setattr(batch_creation.queues, "enqueue", down)
    batch = accept(tmp_path, member_user.id)
    assert batch.status == BatchStatus.VALIDATING and batch.queued is False
    monkeypatch.undo()
    assert batch_sweep.sweep()["creation_resent"] == 0  # within the grace period
    later = utcnow() + batch_sweep.CREATION_GRACE + timedelta(seconds=1)
    assert batch_sweep.sweep(later)["creation_resent"] == 1
    assert run_batch_jobs() == [BatchStatus.IN_PROGRESS]


def test_canceling_while_tasks_are_created_stops_the_job(
    app, sim_model, member_user, tmp_path, small_chunks
):
    batch = accept(tmp_path, member_user.id)
    chunk = batch_creation._Chunk(batch.id, batch.job_id, 0)
    for line in list(batch_creation.check_lines(batch.source_path, "jsonl", member_user.id))[:2]:
        chunk.add(line)
    chunk.commit()
    batches.cancel_batch(batch.id)
    assert batch_creation.run_creation(batch.id, batch.job_id) == "skipped"
    db.session.expire_all()
    assert db.session.get(Batch, batch.id).status == BatchStatus.CANCELLED
    assert lines_of_tasks(batch.id) == [1, 2]


def test_a_file_gone_before_its_job_ran_fails_the_batch_clearly(
    app, sim_model, member_user, tmp_path
):
    batch = accept(tmp_path, member_user.id)
    (tmp_path / "in.jsonl").unlink()
    assert run_batch_jobs() == [BatchStatus.FAILED]
    row = db.session.get(Batch, batch.id)
    assert row.error == "The batch's file is missing; upload it again."


def test_a_file_in_another_encoding_fails_the_batch_with_the_reason(
    app, sim_model, member_user, tmp_path
):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl().encode("utf-16"))
    batch = batches.create_batch_from_file(
        str(path), "jsonl", member_user.id, all_or_nothing=True, keep_failed=True
    )
    assert batch.status == BatchStatus.VALIDATING
    assert run_batch_jobs() == [BatchStatus.FAILED]
    row = db.session.get(Batch, batch.id)
    assert "UTF-8" in row.error and Task.query.count() == 0
    info = batch_results.openai_batch(row, batches.counts([row.id])[row.id])
    assert info["status"] == "failed" and info["completion_window"] == "24h"


def test_a_bad_completion_window_is_refused(app, sim_model, member_user, tmp_path):
    with pytest.raises(ValueError):
        accept(tmp_path, member_user.id, keep_failed=False)
    from llmadmin.errors import ValidationError

    with pytest.raises(ValidationError, match="completion window"):
        accept(tmp_path, member_user.id, completion_window="1d")
    assert Batch.query.count() == 0


# --- housekeeping: finish and expire without a viewer -----------------------------------


def _finish(ids, status, **values):
    transition(ids, RUNNING, from_statuses=(QUEUED,))
    transition(ids, status, **values)


def test_a_finished_batch_completes_without_anyone_looking(app, sim_model, member_user, tmp_path):
    batch = accept(tmp_path, member_user.id)
    run_batch_jobs()
    ids = [t.id for t in Task.query.filter_by(batch_id=batch.id)]
    _finish(ids, SUCCESS, result="ok")
    open_one = accept(tmp_path, member_user.id)
    run_batch_jobs()
    assert batch_sweep.sweep()["finished"] == 1
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert row.status == BatchStatus.COMPLETED
    assert row.completed_at == max(t.finished_at for t in Task.query.filter_by(batch_id=batch.id))
    assert db.session.get(Batch, open_one.id).status == BatchStatus.IN_PROGRESS


def test_a_batch_past_its_window_expires_keeping_its_results(app, sim_model, member_user, tmp_path):
    batch = accept(tmp_path, member_user.id)
    run_batch_jobs()
    ids = sorted(t.id for t in Task.query.filter_by(batch_id=batch.id))
    _finish(ids[:2], SUCCESS, result="kept")
    _finish(ids[2:3], FAILURE, error="boom", error_kind="server_error")
    row = db.session.get(Batch, batch.id)
    assert batch_sweep.sweep(row.expires_at - timedelta(seconds=1))["expired"] == 0
    assert batch_sweep.sweep(row.expires_at + timedelta(seconds=1))["expired"] == 1
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert row.status == BatchStatus.EXPIRED and row.expired_at is not None
    assert batch_results.openai_batch(row, batches.counts([row.id])[row.id])["status"] == "expired"
    assert [o["custom_id"] for o in batch_results.result_lines(row.id, "output")] == ["c1", "c2"]
    errors = list(batch_results.result_lines(row.id, "error"))
    assert len(errors) == LINES - 2
    assert [e["error"]["code"] for e in errors] == ["server_error"] + ["batch_expired"] * 4
    assert "completion window of 24h" in errors[1]["error"]["message"]
    # retrying its failed line gives it a new window: not expired again by the next pass
    assert batches.retry_failed_lines(row.id).changed == 1
    db.session.expire_all()
    row = db.session.get(Batch, batch.id)
    assert row.status == BatchStatus.IN_PROGRESS and row.expires_at > utcnow()
    assert batch_sweep.sweep()["expired"] == 0


def test_housekeeping_runs_the_batch_sweep(app, sim_model, member_user, tmp_path, monkeypatch):
    from llmadmin import maintenance

    batch_id = accept(tmp_path, member_user.id).id
    run_batch_jobs()
    _finish([t.id for t in Task.query.filter_by(batch_id=batch_id)], SUCCESS, result="ok")
    monkeypatch.setattr(batch_sweep, "_last_sweep", 0.0)
    get_redis().delete(f"{app.config['QUEUE_PREFIX']}:batches:sweep")
    done = maintenance.run_pass()
    assert done["batches"]["finished"] == 1
    assert db.session.get(Batch, batch_id).status == BatchStatus.COMPLETED
