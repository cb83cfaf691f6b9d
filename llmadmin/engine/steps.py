"""The database steps of a chunk: what to claim, and one transaction for outcomes, parks, claims and checks.

``ChunkSteps`` is the half of a ``ChunkRunner`` (``engine.executor``) that decides what the
next database step does and builds it: how many tasks to claim ahead of the free slots,
which outcomes and cancel checks (its own and those of the model's other running chunks in
the process) ride along, and how a finished step's result is applied. The steps run in the
runtime's lane thread (``_in_lane``); everything else here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque

from llmadmin.engine import chunk_rows, parking
from llmadmin.extensions import db

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5


class ChunkSteps:
    """Build a chunk's database steps; the attributes used here are set by ``ChunkRunner``.

    model, ctx, job_id, pending, ready, inflight, writer, parks, healthy, closing, lane,
    last_cancel_check, and ``_fill`` (start calls for ready tasks).
    """

    def _due_watch(self, now: float) -> list[int] | None:
        """The tasks a due cancel check looks at (and the check counts as done), else None."""
        if now - self.last_cancel_check < CANCEL_CHECK_SECONDS or not (self.inflight or self.ready):
            return None
        self.last_cancel_check = now
        # Calls that ended are left out: their outcome may be written in this very step.
        watched = [i for i, call in self.inflight.items() if not call.done()]
        return watched + [row.id for row in self.ready]

    def _claim_size(self) -> int:
        """How many tasks to claim now (0 while enough are claimed ahead for a bigger batch)."""
        room = min(self._claim_room(), len(self.pending))
        if room > 0 and self.ready and room < min(self._claim_batch(), len(self.pending)):
            return 0  # enough is claimed ahead: claim a bigger batch a little later
        return room

    def _claim_room(self) -> int:
        """How many more tasks this runner may claim: the model's cap in this process, plus
        as many ready ahead while its calls succeed (none while they fail or hang)."""
        ahead = self.model.cap if self.healthy else 0
        return self.model.cap + ahead - self.ctx.busy - self.ctx.claimed

    def _defer_pending(self, seconds: float):
        """The model must wait: park the tasks not claimed yet in one step, without calls."""
        ids = list(self.pending)
        self.pending.clear()
        self.ctx.waiting -= len(ids)
        reason = self.ctx.pause_reason

        def restore(ok, _):
            if not ok:
                self.pending.extend(ids)
                self.ctx.waiting += len(ids)

        step = self._in_lane(parking.defer, self.job_id, self.model.id, ids, seconds, reason)
        return step, restore

    def _claim_batch(self) -> int:
        """The smallest claim worth a transaction while tasks claimed ahead keep slots busy."""
        return max(1, self.model.cap // 2) if self.healthy else 1

    def _borrow(self, now: float) -> list[tuple[ChunkSteps, tuple, list[int] | None]]:
        """Take the outcomes and due cancel checks of the model's other running chunks.

        They ride along in this step's transaction: one commit for every chunk of the model
        in this process, not one write step and one cancel check each. A lender that ends
        first waits for its outcomes to be written or given back (``_outcomes_back``).
        """
        lent = []
        for runner in self.ctx.runners:
            if runner is self or runner.closing:
                continue
            watched = runner._due_watch(now)
            if runner.writer.finals or watched is not None:
                runner.writer.lent += 1
                lent.append((runner, runner.writer.take(), watched))
        return lent

    async def _outcomes_back(self) -> None:
        """Wait until no other chunk's step holds outcomes of this one (written or given back)."""
        while self.writer.lent:
            await asyncio.sleep(0.01)

    def _write_and_claim(self, room: int, watched: list[int] | None = None):
        batch, parks = self.writer.take(), self.parks
        self.parks = []
        lent = self._borrow(time.monotonic())
        claim = [self.pending.popleft() for _ in range(room)]
        self.ctx.claimed += len(claim)  # reserved while the claim runs
        self.ctx.waiting -= len(claim)

        def step():
            try:
                found = []  # the other chunks' cancel checks
                for runner, taken, seen in lent:
                    runner.writer.write(taken, commit=False)
                    found.append(chunk_rows.find_gone(runner.job_id, seen, False) if seen else None)
                if parks:  # the outcomes and the parks commit on their own
                    self.writer.write(batch)
                    parking.park(self.job_id, self.model.id, parks)
                else:  # outcomes, a due cancel check and the claim in one transaction
                    self.writer.write(batch, commit=False)
                gone = chunk_rows.find_gone(self.job_id, watched, commit=False) if watched else None
                rows = chunk_rows.claim(self.job_id, claim, self.model.id) if claim else []
                if not claim:
                    db.session.commit()  # (a claim commits; a failed step gives everything back)
            except Exception:
                db.session.rollback()
                raise
            if not parks:
                self.writer.committed(batch)
            for runner, taken, _ in lent:
                runner.writer.committed(taken)
            return rows, gone, found

        def done(ok, result):
            for index, (runner, taken, _) in enumerate(lent):
                runner.writer.lent -= 1
                if not ok:
                    runner.writer.give_back(taken)
                elif result[2][index]:
                    runner._canceled_found(True, result[2][index])
            if not ok:
                self.writer.give_back(batch)
                self.parks[:0] = parks
                self.pending.extendleft(reversed(claim))
                self.ctx.waiting += len(claim)
                self.ctx.claimed -= len(claim)
                return
            rows, gone, _ = result
            self.ctx.claimed -= len(claim) - len(rows)
            self.ready.extend(rows)
            if gone:
                self._canceled_found(True, gone)
            self._fill()

        return self._in_lane(step), done

    def _in_lane(self, fn, *args) -> asyncio.Future:
        context = contextvars.copy_context()  # the app context, hence the same database session
        return asyncio.get_running_loop().run_in_executor(self.lane, context.run, fn, *args)

    def _canceled_found(self, ok: bool, gone) -> None:
        """Stop the calls of tasks that were canceled (or taken away) while running."""
        gone = set(gone or ())
        if gone and self.ready:
            kept = [row for row in self.ready if row.id not in gone]
            self.ctx.claimed -= len(self.ready) - len(kept)
            self.ready = deque(kept)
        for task_id in gone:
            self.writer.forget(task_id)
            task = self.inflight.pop(task_id, None)
            if task is not None:
                task.cancel()
                logger.info("task %s canceled while running; its call was stopped", task_id)
