"""Task lifecycle services: create, dispatch, cancel, duplicate, delete, transitions."""

import pytest
from rq import Queue
from rq.job import Job

from llmadmin.engine.dispatch import WAITING_NOTE, dispatch_waiting
from llmadmin.errors import ItemsInvalid, QueueUnavailable, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import CANCELED, FAILURE, PENDING, QUEUED, RUNNING, SUCCESS
from llmadmin.queues import get_queue, get_redis
from llmadmin.services import tasks as svc


def _llm_queue() -> Queue:
    return get_queue("llm")


def test_create_task_commits_then_enqueues_under_recorded_job_id(app, sim_model, admin_user):
    task = svc.create_task(prompt="Hello", model_id=sim_model.id, creator_id=admin_user.id)
    db.session.refresh(task)
    assert task.status == QUEUED
    assert task.job_id and task.queued_at is not None
    job = Job.fetch(task.job_id, connection=get_redis())
    assert job.args == (task.job_id, [task.id])
    assert task.job_id in _llm_queue().job_ids
    assert task.name == "Hello"


def test_chunks_follow_model_concurrency(app, sim_model, admin_user):
    app.config["TASK_CHUNK_FACTOR"] = 2  # cap 4 -> 8 tasks per job
    ids = [
        svc.create_task(prompt=f"p{i}", model_id=sim_model.id, creator_id=None, run=False).id
        for i in range(20)
    ]
    outcome = svc.run_tasks(ids)
    assert outcome.changed == 20
    job_ids = {t.job_id for t in db.session.execute(db.select(Task)).scalars()}
    assert len(job_ids) == 3  # 8 + 8 + 4
    assert len(_llm_queue().job_ids) == 3


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("", "Prompt is required"),
        ("   ", "Prompt is required"),
        ("a\x00b", "NUL byte"),
        ("bad \ud800 surrogate", "lone surrogates"),
    ],
)
def test_create_task_rejects_bad_prompts_and_saves_nothing(app, sim_model, prompt, message):
    with pytest.raises(ValidationError, match=message):
        svc.create_task(prompt=prompt, model_id=sim_model.id, creator_id=None)
    assert db.session.execute(db.select(db.func.count(Task.id))).scalar() == 0


def test_prompt_over_limit_is_rejected(app, sim_model):
    app.config["MAX_PROMPT_CHARS"] = 10
    with pytest.raises(ValidationError, match="too long"):
        svc.create_task(prompt="x" * 11, model_id=sim_model.id, creator_id=None)


def test_unicode_prompt_is_stored_intact(app, sim_model):
    text = "שלום 👋 — 你好\nright-to-left ‮test‬"
    task = svc.create_task(prompt=text, model_id=sim_model.id, creator_id=None, run=False)
    db.session.expire_all()
    assert db.session.get(Task, task.id).prompt == text


def test_redis_down_keeps_task_pending_with_note_then_dispatches(app, sim_model, monkeypatch):
    import llmadmin.engine.dispatch as dispatch_mod

    def unreachable(*args, **kwargs):
        raise QueueUnavailable("The job queue (Redis) is unreachable right now.")

    monkeypatch.setattr("llmadmin.queues.enqueue", unreachable)
    task = svc.create_task(prompt="hi", model_id=sim_model.id, creator_id=None)
    db.session.refresh(task)
    assert task.status == PENDING and task.queue_note == WAITING_NOTE and task.job_id is None
    assert task.run_requested_at is not None
    monkeypatch.undo()
    assert dispatch_mod.dispatch_waiting() == (1, 0)
    db.session.refresh(task)
    assert task.status == QUEUED and task.queue_note is None
    assert task.job_id in _llm_queue().job_ids


def test_pending_tasks_never_asked_to_run_are_not_dispatched(app, sim_model):
    svc.create_task(prompt="draft", model_id=sim_model.id, creator_id=None, run=False)
    assert dispatch_waiting() == (0, 0)


def test_cancel_queued_task_removes_its_job(app, sim_model):
    task = svc.create_task(prompt="hi", model_id=sim_model.id, creator_id=None)
    job_id = task.job_id
    outcome = svc.cancel_tasks([task.id])
    assert outcome.changed == 1
    db.session.refresh(task)
    assert task.status == CANCELED
    assert job_id not in _llm_queue().job_ids
    assert Job.fetch(job_id, connection=get_redis()).get_status() == "canceled"


def test_cancel_keeps_job_while_other_tasks_of_the_chunk_are_live(app, sim_model):
    ids = [
        svc.create_task(prompt=f"p{i}", model_id=sim_model.id, creator_id=None, run=False).id
        for i in range(2)
    ]
    svc.run_tasks(ids)
    job_id = db.session.get(Task, ids[0]).job_id
    svc.cancel_tasks([ids[0]])
    assert job_id in _llm_queue().job_ids
    svc.cancel_tasks([ids[1]])
    assert job_id not in _llm_queue().job_ids


def test_finished_tasks_cannot_be_canceled(app, sim_model):
    task = svc.create_task(prompt="hi", model_id=sim_model.id, creator_id=None, run=False)
    transition([task.id], FAILURE, error="x")
    assert svc.cancel_tasks([task.id]).skipped == 1


def test_transition_is_conditional(app, sim_model):
    task = svc.create_task(prompt="hi", model_id=sim_model.id, creator_id=None)
    assert transition([task.id], RUNNING, from_statuses=(QUEUED,)) == [task.id]
    # A second delivery cannot claim it again, and SUCCESS cannot be reached from CANCELED.
    assert transition([task.id], RUNNING, from_statuses=(QUEUED,)) == []
    assert transition([task.id], CANCELED) == [task.id]
    assert transition([task.id], SUCCESS) == []
    db.session.refresh(task)
    assert task.status == CANCELED and task.attempts == 1


def test_rerun_resets_result_and_requeues(app, sim_model):
    task = svc.create_task(prompt="hi", model_id=sim_model.id, creator_id=None)
    transition([task.id], RUNNING)
    transition([task.id], SUCCESS, result="old answer", latency_ms=5.0)
    outcome = svc.run_tasks([task.id])
    assert outcome.changed == 1
    db.session.refresh(task)
    assert task.status == QUEUED and task.result is None and task.latency_ms is None


def test_running_tasks_are_not_rerun(app, sim_model):
    task = svc.create_task(prompt="hi", model_id=sim_model.id, creator_id=None)
    transition([task.id], RUNNING)
    assert svc.run_tasks([task.id]).skipped == 1


def test_retry_failed_only_touches_failures(app, sim_model):
    a = svc.create_task(prompt="a", model_id=sim_model.id, creator_id=None, run=False)
    b = svc.create_task(prompt="b", model_id=sim_model.id, creator_id=None, run=False)
    transition([a.id], FAILURE, error="boom")
    transition([b.id], CANCELED)
    outcome = svc.retry_failed([a.id, b.id])
    assert (outcome.changed, outcome.skipped) == (1, 1)
    db.session.expire_all()
    assert db.session.get(Task, a.id).status == QUEUED
    assert db.session.get(Task, b.id).status == CANCELED


def test_disabled_model_tasks_are_skipped(app, sim_model):
    task = svc.create_task(prompt="a", model_id=sim_model.id, creator_id=None, run=False)
    sim_model.enabled = False
    db.session.commit()
    assert svc.run_tasks([task.id]).skipped == 1


def test_duplicate_to_another_model(app, sim_model, admin_user):
    other = LLMModel(name="Other", base_url="http://127.0.0.1:9/v1", model_name="sim-b")
    db.session.add(other)
    db.session.commit()
    src = svc.create_task(
        prompt="compare me",
        system_prompt="be short",
        model_id=sim_model.id,
        creator_id=None,
        run=False,
    )
    outcome = svc.duplicate_tasks([src.id], other.id, admin_user.id)
    assert outcome.changed == 1
    copy = db.session.execute(db.select(Task).where(Task.source_task_id == src.id)).scalar_one()
    assert (copy.prompt, copy.system_prompt, copy.model_id, copy.status) == (
        "compare me",
        "be short",
        other.id,
        QUEUED,
    )
    assert copy.creator_id == admin_user.id


def test_delete_cancels_first(app, sim_model):
    task = svc.create_task(prompt="a", model_id=sim_model.id, creator_id=None)
    job_id, task_id = task.job_id, task.id
    svc.delete_tasks([task_id])
    assert db.session.execute(db.select(Task.id).where(Task.id == task_id)).first() is None
    assert job_id not in _llm_queue().job_ids


def test_a_copy_keeps_the_conversation_and_the_policy_checks_its_turns(app, sim_model, admin_user):
    from llmadmin import policy

    other = LLMModel(name="Other", base_url="http://127.0.0.1:9/v1", model_name="sim-b")
    db.session.add(other)
    db.session.commit()
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    (src,) = svc.create_tasks(
        [{"prompt": "q", "model": sim_model.name, "messages": turns}], None, run=False
    ).ids
    svc.duplicate_tasks([src], other.id, admin_user.id)
    copy = db.session.query(Task).filter(Task.source_task_id == src).one()
    assert copy.messages == turns and copy.prompt == "q"

    app.config["PROMPT_BLOCKED_PATTERNS"] = '[{"pattern": "secret", "reason": "No secrets"}]'
    policy.init_app(app)
    bad = [{"role": "assistant", "content": "the secret is 42"}]
    with pytest.raises(ItemsInvalid) as caught:
        svc.create_tasks([{"prompt": "q", "model": sim_model.name, "messages": bad}], None)
    error = caught.value.errors[0]
    assert error["field"] == "messages" and "No secrets" in error["message"]
    assert "An earlier message of the conversation" in error["message"]
