"""One transaction for the claims and outcome writes of every chunk waiting for the lane.

Each gateway call is a one-task chunk, so with many calls in flight a worker's lane ran a
claim and an outcome write per call, each its own transaction, one after another: on
SQLite every one took the write lock (and waited on it behind the web's inserts), on
PostgreSQL every commit waited for its own WAL flush, and calls queued behind the lane.
``StepBatcher`` runs the steps that arrive while the lane is busy together, in one
transaction of the runtime's own session, committed once; their "after commit" parts
(counting the outcomes, telling the gateway) run after that commit. A lock or a lost
connection fails the whole group (each chunk retries its own step, as before); any other
error makes each step run alone, so one bad step never fails another chunk's.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from sqlalchemy import exc as sa_exc

from llmadmin.database import is_transient_error, relax_commit_durability
from llmadmin.extensions import db

logger = logging.getLogger(__name__)

MAX_GROUP = 64  # steps per transaction: a long one would hold SQLite's write lock too long


class StepBatcher:
    """Group database steps of many chunks into one transaction in the lane thread."""

    def __init__(self, lane: Executor, app):
        self.lane = lane
        self.waiting: list[tuple[Callable, Callable | None, asyncio.Future]] = []
        self.busy = False
        # Its own app context, hence its own session, used only in the lane thread.
        self.app_context = app.app_context()
        self.context = contextvars.Context()
        self.context.run(self.app_context.push)

    def submit(
        self, step: Callable, after: Callable | None = None, *, durable: bool = True
    ) -> asyncio.Future:
        """Run ``step()`` (no commit of its own) in the next group; ``after()`` once committed.

        ``durable=False``: the step may be lost in a database crash (a claim: the reconciler
        sends the task again), so a group of such steps only does not wait for its flush.
        Returns a future of the step's result (or its error).
        """
        future = asyncio.get_running_loop().create_future()
        if not durable:
            step = _Relaxed(step)
        self.waiting.append((step, after, future))
        self._start()
        return future

    def _start(self) -> None:
        if self.busy or not self.waiting:
            return
        group, self.waiting = self.waiting[:MAX_GROUP], self.waiting[MAX_GROUP:]
        self.busy = True
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self.lane, self.context.run, run_group, group)
        done.add_done_callback(lambda outcome: self._finished(group, outcome))

    def _finished(self, group, outcome: asyncio.Future) -> None:
        self.busy = False
        error = outcome.exception()
        results = [(False, error)] * len(group) if error is not None else outcome.result()
        for (_step, _after, future), (ok, value) in zip(group, results, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._start()

    async def aclose(self) -> None:
        """Return the session's connection and leave the app context (no step may follow)."""

        def close():
            db.session.remove()
            self.app_context.pop()

        await asyncio.get_running_loop().run_in_executor(self.lane, self.context.run, close)


class _Relaxed:
    """A step whose commit need not wait for its flush (``submit(durable=False)``)."""

    def __init__(self, step: Callable):
        self.step = step

    def __call__(self):
        return self.step()


def run_group(group) -> list[tuple[bool, object]]:
    """Run the steps in one transaction; on a non-transient error, each alone (lane thread)."""
    try:
        if all(isinstance(step, _Relaxed) for step, _after, _future in group):
            relax_commit_durability(db.session)
        results = [step() for step, _after, _future in group]
        db.session.commit()
    except sa_exc.SQLAlchemyError as exc:
        db.session.rollback()
        if is_transient_error(exc) or len(group) == 1:
            return [(False, exc)] * len(group)
        logger.warning("a grouped database step failed (%s); running each alone", exc)
        return [run_alone(step, after) for step, after, _future in group]
    except Exception:
        db.session.rollback()
        if len(group) == 1:
            raise
        return [run_alone(step, after) for step, after, _future in group]
    for _step, after, _future in group:
        _after_commit(after)
    return [(True, result) for result in results]


def run_alone(step: Callable, after: Callable | None) -> tuple[bool, object]:
    """Run one step in its own transaction; return (ok, result or error)."""
    try:
        result = step()
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        return False, exc
    _after_commit(after)
    return True, result


def _after_commit(after: Callable | None) -> None:
    if after is None:
        return
    try:
        after()
    except Exception:  # counting and telling the gateway never undo a commit
        logger.exception("after-commit step failed")
