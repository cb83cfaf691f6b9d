"""The reconciler: lost running tasks and vanished queued jobs come back to work."""

from datetime import timedelta

import pytest
from rq.job import Job

from llmadmin.engine.limits import heartbeat_key
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task, TaskRun
from llmadmin.models.base import utcnow
from llmadmin.models.task import FAILURE, QUEUED, RUNNING
from llmadmin.queues import get_queue, get_redis
from llmadmin.services import reconcile as reconcile_module
from llmadmin.services import tasks as svc
from llmadmin.services.reconcile import reconcile


@pytest.fixture(autouse=True)
def no_confirmation(request, monkeypatch):
    """Most tests look at one pass; the confirmation period has tests of its own."""
    if "confirm" not in request.node.name:
        monkeypatch.setattr(reconcile_module, "HEARTBEAT_CONFIRM_SECONDS", 0.0)


def _age(task_id, **fields):
    db.session.execute(db.update(Task).where(Task.id == task_id).values(**fields))
    db.session.commit()


def test_running_task_without_heartbeat_is_requeued(app, sim_model):
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    old_job = task.job_id
    transition([task.id], RUNNING)
    _age(task.id, started_at=utcnow() - timedelta(minutes=1))
    assert reconcile()["requeued_running"] == 1
    db.session.expire_all()
    task = db.session.get(Task, task.id)
    assert task.status == QUEUED and task.job_id != old_job
    assert task.job_id in get_queue("llm").job_ids


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _running_for_a_minute(sim_model):
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    transition([task.id], RUNNING)
    _age(task.id, started_at=utcnow() - timedelta(minutes=1))
    return task


def test_missing_heartbeat_is_confirmed_on_a_later_pass(app, sim_model, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(reconcile_module.time, "monotonic", clock)
    task = _running_for_a_minute(sim_model)
    assert reconcile()["requeued_running"] == 0, "one missing heartbeat is not proof of death"
    clock.now += reconcile_module.HEARTBEAT_CONFIRM_SECONDS - 0.1
    assert reconcile()["requeued_running"] == 0
    clock.now += 0.2
    assert reconcile()["requeued_running"] == 1
    assert db.session.get(Task, task.id).status == QUEUED


def test_heartbeat_back_before_confirmation_keeps_the_task(app, sim_model, monkeypatch):
    """A Redis restart loses every heartbeat key; live chunks write theirs again within a beat."""
    clock = FakeClock()
    monkeypatch.setattr(reconcile_module.time, "monotonic", clock)
    task = _running_for_a_minute(sim_model)
    assert reconcile()["requeued_running"] == 0
    get_redis().set(heartbeat_key("llmadmin", task.job_id), "1", px=10_000)
    clock.now += 60
    assert reconcile()["requeued_running"] == 0
    get_redis().delete(heartbeat_key("llmadmin", task.job_id))
    clock.now += 1
    assert reconcile()["requeued_running"] == 0, "the confirmation period starts again"
    assert db.session.get(Task, task.id).status == RUNNING


def test_running_task_with_heartbeat_is_left_alone(app, sim_model):
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    transition([task.id], RUNNING)
    _age(task.id, started_at=utcnow() - timedelta(minutes=1))
    get_redis().set(heartbeat_key("llmadmin", task.job_id), "1", px=10_000)
    assert reconcile() == {"requeued_running": 0, "failed_lost": 0, "requeued_queued": 0}
    assert db.session.get(Task, task.id).status == RUNNING


def test_recently_started_task_is_within_grace(app, sim_model):
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    transition([task.id], RUNNING)
    assert reconcile()["requeued_running"] == 0


def test_lost_task_out_of_attempts_fails_with_reason(app, sim_model):
    app.config["MAX_RUN_ATTEMPTS"] = 2
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    transition([task.id], RUNNING)
    _age(task.id, started_at=utcnow() - timedelta(minutes=1), attempts=2)
    assert reconcile()["failed_lost"] == 1
    task = db.session.get(Task, task.id)
    db.session.refresh(task)
    assert (
        task.status == FAILURE and task.error_kind == "worker_lost" and "Worker lost" in task.error
    )
    (run,) = db.session.execute(db.select(TaskRun).where(TaskRun.task_id == task.id)).scalars()
    assert (run.status, run.error_kind, run.attempts) == (FAILURE, "worker_lost", 2)


def test_queued_task_whose_job_vanished_is_requeued(app, sim_model):
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    _age(task.id, queued_at=utcnow() - timedelta(minutes=1))
    get_redis().flushdb()  # Redis restarted without persistence
    assert reconcile()["requeued_queued"] == 1
    db.session.expire_all()
    task = db.session.get(Task, task.id)
    assert task.status == QUEUED and Job.exists(task.job_id, connection=get_redis())


def test_queued_task_with_live_job_is_left_alone(app, sim_model):
    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    _age(task.id, queued_at=utcnow() - timedelta(minutes=1))
    job_id = task.job_id
    assert reconcile()["requeued_queued"] == 0
    assert db.session.get(Task, task.id).job_id == job_id
