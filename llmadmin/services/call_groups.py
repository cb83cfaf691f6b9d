"""Gateway calls that arrive together in one web process are written and queued together.

Leader and followers, per model: a call that finds nobody working leads at once (a call
alone waits for nobody); calls that arrive while a leader works join the next group, and
that group's first call leads it as soon as the leader before it is done. A leader writes
its group's task rows in one multi-row INSERT with their audit entries and one commit,
waits until every member listens on its task's relay channel (the "subscribe before
enqueue" rule of ``chat_calls``), then puts ONE job carrying all the group's task ids at the
front of the queue. Under 64 concurrent calls that is one commit and one RQ job — on the
worker one dequeue, one ``prepare_chunk``, one claim — for several calls instead of one each.
Every call is still its own task row: audited, visible, cancelable, answered on its own.

A group whose write fails (e.g. a repeated ``Idempotency-Key`` racing another request) is
written again one call at a time, so a bad row fails only its own call.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from flask import current_app
from sqlalchemy import insert

from llmadmin.database import relax_commit_durability, write_turn
from llmadmin.engine import dispatch
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.models import AuditEntry, LLMModel, Task

MAX_GROUP = 64  # calls per group (and never more than the model's chunk size)
LISTEN_WAIT_SECONDS = 10.0  # a member slower than this to subscribe reads its row instead


class Member:
    """One call in a group: its row and audit entry in, its task id and fate out."""

    def __init__(self, row: dict, audit: dict):
        self.row = row
        self.audit = audit
        self.task_id: int | None = None
        self.error: BaseException | None = None  # raised in the call's own thread
        self.waiting = False  # Redis was away: the row went back to PENDING
        self.written = threading.Event()  # task_id or error is set
        self.listening = threading.Event()  # subscribed (or gave up): the job may go
        self.queued = threading.Event()  # the job was enqueued, or not (waiting, error)


class _Group:
    def __init__(self) -> None:
        self.members: list[Member] = []
        self.turn = threading.Event()  # set when the leader before it is done


class _Lanes:
    """Per app: which models have a leader at work, and the groups waiting behind it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy: set[int] = set()
        self.pending: dict[int, deque[_Group]] = {}


def _lanes() -> _Lanes:
    app = current_app._get_current_object()
    lanes = app.extensions.get("llmadmin.call_groups")
    if lanes is None:
        lanes = app.extensions.setdefault("llmadmin.call_groups", _Lanes())
    return lanes


def submit(model: LLMModel, row: dict, audit: dict, listen: Callable[[int], object]):
    """Write and queue one call's task with whatever calls join it; return (member, listener).

    ``listen(task_id)`` subscribes to the task's channel in the caller's thread and returns
    what the caller waits on; it runs after the row is committed and before the job is
    enqueued. The member tells the outcome: ``error`` (raise it) or ``waiting`` (Redis away).
    """
    member, lanes = Member(row, audit), _lanes()
    cap = max(1, min(MAX_GROUP, dispatch.chunk_size_for(model)))
    with lanes.lock:
        if model.id not in lanes.busy:
            lanes.busy.add(model.id)
            group, leads, waits = _Group(), True, False
        else:
            queue = lanes.pending.setdefault(model.id, deque())
            if not queue or len(queue[-1].members) >= cap:
                queue.append(_Group())
            group = queue[-1]
            leads = waits = not group.members
        group.members.append(member)
    if not leads:
        _commit_keeping_loaded()  # no read transaction held open while the leader writes
        return member, _follow(member, listen)
    if waits:
        group.turn.wait()
    try:
        return member, _lead(group.members, model, listen)
    finally:
        _hand_over(lanes, model.id)


def _hand_over(lanes: _Lanes, model_id: int) -> None:
    with lanes.lock:
        queue = lanes.pending.get(model_id)
        if not queue:
            lanes.busy.discard(model_id)
            lanes.pending.pop(model_id, None)
            return
        following = queue.popleft()  # closed: later calls start another group
    following.turn.set()


def _follow(member: Member, listen: Callable[[int], object]):
    member.written.wait()
    listener = None
    try:
        if member.error is None:
            listener = listen(member.task_id)
    finally:
        member.listening.set()
    member.queued.wait()
    return listener


def _lead(members: list[Member], model: LLMModel, listen: Callable[[int], object]):
    """Write the group, let every member subscribe, enqueue its one job; the leader's listener."""
    job_id = dispatch.new_job_id()
    listener = None
    try:
        _write(members, job_id)
        for member in members:
            member.written.set()
        leader = members[0]
        if leader.error is None:
            try:
                listener = listen(leader.task_id)
            finally:
                leader.listening.set()
        for member in members[1:]:
            member.listening.wait(LISTEN_WAIT_SECONDS)
        _enqueue(members, job_id, model)
    except Exception as exc:  # e.g. the database stayed locked: each call fails with it
        for member in members:
            if member.error is None and not member.waiting:
                member.error = exc
    finally:
        for member in members:
            member.written.set()
            member.queued.set()
    return listener


def _write(members: list[Member], job_id: str) -> None:
    """Insert the group's rows and audit entries in one commit; one by one if that fails."""
    for member in members:
        member.row["job_id"] = job_id
    try:
        _insert(members)
    except Exception as exc:
        if len(members) == 1:
            members[0].error = exc
            return
        for member in members:
            try:
                _insert([member])
            except Exception as alone:
                member.error = alone


def _insert(members: list[Member]) -> None:
    # A repeated Idempotency-Key within the group is one task: the later calls wait for it.
    first: dict[str, Member] = {}
    for member in members:
        first.setdefault(member.row["submission_key"], member)
    unique = list(first.values())
    try:
        with write_turn(db.session):
            relax_commit_durability(db.session)
            table = Task.__table__
            for shape in {tuple(member.row) for member in unique}:  # rows of one shape at a time
                same = [member for member in unique if tuple(member.row) == shape]
                statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
                result = db.session.execute(statement, [member.row for member in same])
                for member, task_id in zip(same, result.scalars().all(), strict=True):
                    member.task_id = task_id
            entries = [{**member.audit, "object_id": str(member.task_id)} for member in unique]
            db.session.execute(insert(AuditEntry), entries)
            _commit_keeping_loaded()
    except BaseException:
        for member in unique:
            member.task_id = None
        raise
    for member in members:
        member.task_id = first[member.row["submission_key"]].task_id


def _enqueue(members: list[Member], job_id: str, model: LLMModel) -> None:
    task_ids = [member.task_id for member in members if member.error is None]
    task_ids = list(dict.fromkeys(task_ids))
    if not task_ids:
        return
    try:
        _queued, waiting = dispatch.enqueue_created(job_id, task_ids, model, at_front=True)
    except QueueUnavailable:
        waiting = len(task_ids)
    if waiting:
        for member in members:
            member.waiting = member.error is None


def _commit_keeping_loaded() -> None:
    """Commit without expiring what the request loaded (its person, the model).

    They are only read from here on (the job's timeout, the answer's ``model``, the
    security headers); expired, each would be read again: two more SELECTs per call.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
