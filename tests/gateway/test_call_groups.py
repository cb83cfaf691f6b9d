"""Gateway calls arriving together share one commit and one job, each still its own task."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from llmadmin.engine import dispatch
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db, login_manager
from llmadmin.models import AuditEntry, Task
from llmadmin.models.task import CANCELED, QUEUED
from llmadmin.queues import get_queue
from llmadmin.services import call_groups, chat_calls


def _lanes(app):
    return app.extensions["llmadmin.call_groups"]


def _call(app, person_id, model_id, results, key=None, prompt="hello"):
    """One gateway call in its own thread (its own request, session and listener)."""
    with app.app_context(), app.test_request_context("/v1/chat/completions"):
        from llmadmin.models import LLMModel, Person

        person = db.session.get(Person, person_id)
        login_manager._update_request_context_with_user(person)
        model = db.session.get(LLMModel, model_id)
        try:
            call = chat_calls.start_call(
                person.id, model, prompt, None, {}, stream=False, request_key=key
            )
        except Exception as exc:  # handed to the test's thread
            results.append(exc)
            return
        results.append(call.task_id)
        call.close()


def _held_leader(app, monkeypatch, model_id, followers):
    """Make the first group's enqueue wait until ``followers`` calls joined the next group."""
    enqueued: list[list[int]] = []
    original = dispatch.enqueue_created

    def enqueue_created(job_id, task_ids, model, *, at_front=False):
        if not enqueued:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pending = _lanes(app).pending.get(model_id)
                if pending and len(pending[-1].members) >= followers:
                    break
                time.sleep(0.01)
        enqueued.append(list(task_ids))
        return original(job_id, task_ids, model, at_front=at_front)

    monkeypatch.setattr(dispatch, "enqueue_created", enqueue_created)
    return enqueued


def _run(app, member_user, sim_model, keys):
    results: list = []
    threads = []
    for key in keys:
        thread = threading.Thread(
            target=_call, args=(app, member_user.id, sim_model.id, results, key)
        )
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # the first one leads; the others find it at work
    for thread in threads:
        thread.join(30)
    return results


def test_calls_arriving_while_a_leader_works_share_one_commit_and_one_job(
    app, monkeypatch, member_user, sim_model
):
    enqueued = _held_leader(app, monkeypatch, sim_model.id, followers=3)
    results = _run(app, member_user, sim_model, [None] * 4)
    assert all(isinstance(result, int) for result in results), results
    assert sorted(len(ids) for ids in enqueued) == [1, 3]  # the leader alone, then a group
    rows = db.session.execute(select(Task).where(Task.id.in_(results))).scalars().all()
    assert {row.status for row in rows} == {QUEUED}
    group = next(ids for ids in enqueued if len(ids) == 3)
    assert len({row.job_id for row in rows if row.id in group}) == 1  # one job for the group
    queue = get_queue("llm")
    assert sorted(job.args[1] for job in queue.get_jobs()) == sorted(enqueued)
    audited = db.session.execute(
        select(AuditEntry.object_id, AuditEntry.person_id).where(
            AuditEntry.action == "gateway_call"
        )
    ).all()
    assert sorted(audited) == sorted((str(task_id), member_user.id) for task_id in results)
    assert not _lanes(app).busy and not _lanes(app).pending


def test_a_repeated_idempotency_key_in_one_group_is_one_task(
    app, monkeypatch, member_user, sim_model
):
    _held_leader(app, monkeypatch, sim_model.id, followers=2)
    results = _run(app, member_user, sim_model, ["first", "same", "same"])
    assert all(isinstance(result, int) for result in results), results
    assert len(set(results)) == 2
    assert db.session.execute(select(db.func.count(Task.id))).scalar_one() == 2


def test_a_group_whose_queue_is_unreachable_cancels_every_task(
    app, monkeypatch, member_user, sim_model
):
    _held_leader(app, monkeypatch, sim_model.id, followers=2)
    original = dispatch._enqueue_all

    def unreachable(planned, at_front=False):
        if len(planned[0][1]) > 1:  # the group of two: Redis "goes away"
            monkeypatch.setattr(dispatch.queues, "execute", _raise_unavailable)
        return original(planned, at_front)

    monkeypatch.setattr(dispatch, "_enqueue_all", unreachable)
    results = _run(app, member_user, sim_model, [None] * 3)
    failed = [result for result in results if isinstance(result, QueueUnavailable)]
    assert len(failed) == 2 and len(results) == 3
    statuses = db.session.execute(select(Task.status).order_by(Task.id)).scalars().all()
    assert sorted(statuses) == sorted([QUEUED, CANCELED, CANCELED])


def _raise_unavailable(pipe):
    raise QueueUnavailable("away")


def test_a_group_never_exceeds_its_cap(app, monkeypatch, member_user, sim_model):
    monkeypatch.setattr(call_groups, "MAX_GROUP", 1)
    enqueued = _held_leader(app, monkeypatch, sim_model.id, followers=1)
    results = _run(app, member_user, sim_model, [None] * 3)
    assert all(isinstance(result, int) for result in results), results
    assert [len(ids) for ids in enqueued] == [1, 1, 1]
