"""Grouped lane steps: many chunks' claims and outcomes in one transaction, each its own fate."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError

from llmadmin.engine import chunk_rows
from llmadmin.engine.batching import StepBatcher
from llmadmin.engine.writer import OutcomeWriter
from llmadmin.extensions import db
from llmadmin.llm.request import ChatResult
from llmadmin.models.task import QUEUED, RUNNING, SUCCESS
from tests.engine.test_chunk_rows import queued, row


def _answer(text: str) -> ChatResult:
    return ChatResult(text=text, prompt_tokens=3, completion_tokens=2, status_code=200)


async def _grouped(app, steps, afters=None):
    """Submit ``steps`` while the lane is held by another step; return their outcomes."""
    lane = ThreadPoolExecutor(max_workers=1)
    batcher = StepBatcher(lane, app)
    release = threading.Event()
    blocker = batcher.submit(lambda: release.wait(5))  # the lane is busy meanwhile
    futures = [
        batcher.submit(step, after)
        for step, after in zip(steps, afters or [None] * len(steps), strict=True)
    ]
    release.set()
    await blocker
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    await batcher.aclose()
    lane.shutdown()
    return outcomes


def _commits(app) -> list:
    commits = []
    event.listen(db.engine, "commit", lambda conn: commits.append(1))
    return commits


def test_steps_that_wait_for_the_lane_share_one_transaction(app, sim_model):
    """Three chunks claim while the lane is busy: one commit for the three claims."""
    ids = queued(sim_model, 3)
    jobs = [row(i).job_id for i in ids]
    steps = [
        (lambda job=job, i=i: chunk_rows.claim(job, [i], sim_model.id, commit=False))
        for job, i in zip(jobs, ids, strict=True)
    ]
    commits = _commits(app)
    outcomes = asyncio.run(_grouped(app, steps))
    assert [[r.id for r in rows] for rows in outcomes] == [[i] for i in ids]
    assert len(commits) == 1  # the three claims together (the step holding the lane wrote nothing)
    db.session.expire_all()
    assert {row(i).status for i in ids} == {RUNNING}


def test_outcomes_are_counted_and_told_only_after_the_commit(app, sim_model):
    """The writer's "after commit" part (count, relay) runs once its group is committed."""
    ids = queued(sim_model, 2)
    writers = []
    for task_id in ids:
        job = row(task_id).job_id
        chunk_rows.claim(job, [task_id])
        writer = OutcomeWriter(job)
        writer.success(task_id, _answer(f"answer {task_id}"), 5.0, Decimal("0"))
        writers.append((writer, writer.take()))
    told = []
    for writer, _batch in writers:
        writer.after_write = lambda rows, exact: told.append(([r["id"] for r in rows], exact))
    steps = [(lambda w=w, b=b: w.write(b, commit=False)) for w, b in writers]
    afters = [(lambda w=w, b=b: w.committed(b)) for w, b in writers]
    asyncio.run(_grouped(app, steps, afters))
    assert sorted(told) == [([i], True) for i in ids]
    assert [w.written for w, _b in writers] == [1, 1]
    db.session.expire_all()
    assert {(row(i).status, row(i).result) for i in ids} == {(SUCCESS, f"answer {i}") for i in ids}


def test_a_failing_step_does_not_fail_the_others_of_its_group(app, sim_model):
    """A step that breaks (not a lock) is run alone; the others still commit."""
    ids = queued(sim_model, 2)
    jobs = [row(i).job_id for i in ids]

    def broken():
        raise IntegrityError("INSERT …", {}, Exception("duplicate key"))

    steps = [
        lambda: chunk_rows.claim(jobs[0], [ids[0]], commit=False),
        broken,
        lambda: chunk_rows.claim(jobs[1], [ids[1]], commit=False),
    ]
    first, error, last = asyncio.run(_grouped(app, steps))
    assert isinstance(error, IntegrityError)
    assert [r.id for r in first] == [ids[0]] and [r.id for r in last] == [ids[1]]
    db.session.expire_all()
    assert {row(i).status for i in ids} == {RUNNING}


def test_a_locked_database_fails_the_whole_group_and_writes_nothing(app, sim_model):
    """A lock is transient: every step of the group gets it and retries; nothing half-written."""
    ids = queued(sim_model, 2)
    job = row(ids[0]).job_id

    def locked():
        raise OperationalError("UPDATE …", {}, Exception("database is locked"))

    steps = [lambda: chunk_rows.claim(job, [ids[0]], commit=False), locked]
    outcomes = asyncio.run(_grouped(app, steps))
    assert all(isinstance(o, OperationalError) for o in outcomes)
    db.session.expire_all()
    assert row(ids[0]).status == QUEUED


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level("ERROR", logger="llmadmin.engine.batching")


async def _relaxed_groups(app, durables, monkeypatch) -> list:
    relaxed = []
    monkeypatch.setattr("llmadmin.engine.batching.relax_commit_durability", relaxed.append)
    lane = ThreadPoolExecutor(max_workers=1)
    batcher = StepBatcher(lane, app)
    release = threading.Event()
    blocker = batcher.submit(lambda: release.wait(5))
    futures = [batcher.submit(lambda: None, durable=durable) for durable in durables]
    release.set()
    await asyncio.gather(blocker, *futures)
    await batcher.aclose()
    lane.shutdown()
    return relaxed


def test_only_a_group_of_claims_skips_waiting_for_its_flush(app, monkeypatch):
    """Claims alone may be lost in a crash (re-sent); a group with an outcome stays durable."""
    assert len(asyncio.run(_relaxed_groups(app, [False, False], monkeypatch))) == 1
    assert asyncio.run(_relaxed_groups(app, [False, True], monkeypatch)) == []
