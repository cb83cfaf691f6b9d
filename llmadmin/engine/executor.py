"""Run a chunk of tasks for one model with many calls in flight.

One RQ job carries a chunk of task ids. A ``ChunkRunner`` claims tasks (QUEUED -> RUNNING,
only for this job id) as the model's slots in this process free up, starts their calls
(``engine.calls``: breaker, shared limits, the HTTP call, retries, parking) and writes
outcomes in batches. Many runners, of many models, share one event loop in a worker process
(``engine.engine``) and its ``Runtime``; database work (claims, batched writes, cancel
checks, parks) runs one step at a time in the runtime's "lane" thread, so a locked or
slow database never stalls the calls in flight. A task that must wait a while is parked
(``engine.parking``), never waited for here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections import deque

from flask import current_app
from sqlalchemy import exc as sa_exc

from llmadmin import policy
from llmadmin.database import is_transient_error
from llmadmin.engine import chunk_rows, parking, resilience
from llmadmin.engine.calls import DRAIN, TaskCalls
from llmadmin.engine.chunk_rows import prepare_chunk
from llmadmin.engine.limits import heartbeat_key
from llmadmin.engine.model_settings import ModelSettings
from llmadmin.engine.params import CallParams
from llmadmin.engine.parking import Carried
from llmadmin.engine.relay import Relay
from llmadmin.engine.resilience import backoff_delay  # noqa: F401  (tests import it from here)
from llmadmin.engine.runtime import Runtime
from llmadmin.engine.writer import OutcomeWriter
from llmadmin.llm import build_messages
from llmadmin.queues import REDIS_OUTAGE

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5
IDLE_SECONDS = 0.5  # the longest a runner's loop sleeps without a wake-up (drain, pauses)


def request_drain() -> None:
    """Ask the running chunks to stop claiming work and hand back what they cannot finish."""
    DRAIN.set()


class ChunkRunner(TaskCalls):
    """Execute the tasks of one job."""

    def __init__(
        self,
        job_id: str,
        task_ids: list[int],
        model: ModelSettings,
        transport=None,
        runtime: Runtime | None = None,
    ):
        self.job_id = job_id
        self.pending = deque(task_ids)
        self.model = model
        self.transport = transport
        self.runtime = runtime
        self.writer = OutcomeWriter(job_id)
        self.inflight: dict[int, asyncio.Task] = {}
        self.ended: list[int] = []  # tasks whose call ended, not reaped yet
        self.ready: deque = deque()  # claimed (RUNNING) rows whose call has not started yet
        self.closing = False
        self.wake = asyncio.Event()
        self.handed_back: list[int] = []
        self.parks: list[parking.Park] = []
        self.partial_saved: dict[int, float] = {}
        cfg = current_app.config
        self.redis_patience = float(cfg["REDIS_OUTAGE_WAIT_SECONDS"])
        self.breaker_patience = float(cfg["BREAKER_WAIT_SECONDS"])
        self.park_min = float(cfg["PARK_MIN_SECONDS"])
        # Gateway calls: their deltas and "done" go to the web request waiting for them.
        self.relay = Relay(None, cfg["QUEUE_PREFIX"])
        self.writer.after_write = self.relay.written

    @property
    def healthy(self) -> bool:
        """Claim ahead only while the model's calls in this process succeed (the model's
        last call, of any chunk: a new chunk of a healthy model refills slots at once)."""
        return self.ctx.healthy

    @healthy.setter
    def healthy(self, value: bool) -> None:
        self.ctx.healthy = value

    async def run(self) -> int:
        """Run every claimable task of the chunk; return how many outcomes were written."""
        owned = self.runtime is None
        if owned:  # run alone (tests, a plain RQ worker): a runtime of its own
            self.runtime = Runtime(self.transport)
        runtime = self.runtime
        self.lane = runtime.lane
        self.ctx = runtime.model(self.model)
        ctx = self.ctx
        self.limiter, self.breaker, self.gate, self.clients = (
            ctx.limiter,
            ctx.breaker,
            ctx.gate,
            ctx.clients,
        )
        key = heartbeat_key(runtime.prefix, self.job_id)
        runtime.heartbeat.add(key, self.limiter)
        self.ctx.waiting += len(self.pending)
        self.ctx.wakers.add(self._refill)
        self.relay.redis = runtime.redis
        pump = asyncio.ensure_future(self.relay.pump())
        try:
            await self._loop()
        finally:
            self.closing = True
            self.ctx.wakers.discard(self._refill)
            self.ctx.waiting -= len(self.pending)
            self.ctx.claimed -= len(self.ready)
            for task in self.inflight.values():
                task.cancel()
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
            await self._final_flush()
            pump.cancel()
            runtime.heartbeat.remove(key, self.limiter)
            await runtime.release(self.ctx)
            if owned:
                await runtime.aclose()
        return self.writer.written

    async def _final_flush(self) -> None:
        """Write what is left (outcomes, parks); a busy database is waited out."""
        batch, parks = self.writer.take(), self.parks
        self.parks = []
        if not (batch[0] or batch[1] or parks):
            return  # nothing left: no trip to the lane

        def flush():
            self.writer.write(batch)
            parking.park(self.job_id, self.model.id, parks)

        def write():  # the last outcome of a chunk (a gateway call's only one): grouped
            self.writer.write(batch, commit=False)

        for delay in (0, 1, 2, 4, 8, 15):
            await asyncio.sleep(delay)
            try:
                if parks:
                    await self._in_lane(flush)
                else:
                    await self.runtime.batcher.submit(write, lambda: self.writer.committed(batch))
                return
            except sa_exc.SQLAlchemyError as exc:
                if not is_transient_error(exc):
                    raise
                logger.warning("database busy (%s); final write retried", exc)
        logger.error("job %s: final write failed; the reconciler will re-queue", self.job_id)

    async def _loop(self) -> None:
        """Keep the slots busy; database work runs in the lane thread, one step at a time.

        While a step waits on a locked database the loop goes on: calls in flight finish,
        their outcomes wait in the writer and are written when the database answers, so a
        lock costs no call its timeout (and no task a second call).
        """
        step: asyncio.Future | None = None
        on_done = None
        retry_at = 0.0
        last_cancel_check = time.monotonic()
        while self.pending or self.ready or self.inflight or self.handed_back or self.parks or step:
            if DRAIN.is_set():
                if step is not None:
                    await asyncio.wait([step])
                    self._finish_step(step, on_done)
                await self._drain()
                return
            now = time.monotonic()
            if step is None and now >= retry_at:
                step, on_done = self._next_step(now - last_cancel_check >= CANCEL_CHECK_SECONDS)
                if on_done == self._canceled_found:
                    last_cancel_check = now
                if step is not None:
                    step.add_done_callback(self._wake_up)
            if not self.wake.is_set():  # woken by a freed slot of the model or a step
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(
                        self._idle_timeout(step, retry_at, last_cancel_check)
                    ):
                        await self.wake.wait()
            self.wake.clear()
            if step is not None and step.done():
                if not self._finish_step(step, on_done):
                    retry_at = time.monotonic() + 1.0
                step, on_done = None, None
            self._reap()
            if (
                self.ready
            ):  # a slot freed by another chunk of the model (its callback fills its own)
                self._fill()

    def _idle_timeout(self, step, retry_at: float, last_cancel_check: float) -> float:
        """How long the loop may sleep when nothing wakes it: until the next thing due.

        A freed slot of the model (``ModelContext.slot_freed``) or a finished step wakes the
        loop; only the writer's interval, the cancel check, a retry after a busy database
        and a drain (checked at least every ``IDLE_SECONDS``) are waited for by the clock.
        """
        timeout = IDLE_SECONDS
        if step is None:  # a step running wakes the loop when it ends
            now = time.monotonic()
            if retry_at > now:
                timeout = min(timeout, retry_at - now)
            writer = self.writer
            if writer.finals or writer.partials:
                timeout = min(timeout, writer.last_flush + writer.interval - now)
            if self.inflight or self.ready:
                timeout = min(timeout, last_cancel_check + CANCEL_CHECK_SECONDS - now)
        return max(timeout, 0.001)

    def _next_step(self, cancel_check_due: bool):
        """Start the most urgent database step in the lane; return (future, on_done) or (None, None).

        Outcomes, parks and the next claim go in one step (one transaction each), and claims
        run ahead of the free slots (``_claim_room``), so a slot that frees up is refilled
        from ``ready`` at once instead of waiting for the database.
        """
        if self.handed_back:
            ids, self.handed_back = self.handed_back, []
            batch = self.writer.take()

            def hand_back():
                self.writer.write(batch)
                chunk_rows.requeue_unfinished(
                    self.job_id, ids, note="re-queued: Redis was unreachable"
                )

            def give_back(ok, _):
                if not ok:
                    self.writer.give_back(batch)
                    self.handed_back[:0] = ids

            return self._in_lane(hand_back), give_back
        pause = self.ctx.paused_until - time.monotonic()
        if self.pending and resilience.should_park(pause, self.park_min):
            return self._defer_pending(pause)
        room = min(self._claim_room(), len(self.pending))
        if room > 0 and self.ready and room < self._claim_batch():
            room = 0  # enough is claimed ahead: claim a bigger batch a little later
        if room > 0 or self.writer.due() or self.parks:
            return self._write_and_claim(room)
        if cancel_check_due and (self.inflight or self.ready):
            watched = list(self.inflight) + [row.id for row in self.ready]
            return self._in_lane(chunk_rows.find_gone, self.job_id, watched), self._canceled_found
        return None, None

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

    def _write_and_claim(self, room: int):
        batch, parks = self.writer.take(), self.parks
        self.parks = []
        claim = [self.pending.popleft() for _ in range(room)]
        self.ctx.claimed += len(claim)  # reserved while the claim runs
        self.ctx.waiting -= len(claim)

        def step():
            self.writer.write(batch)
            parking.park(self.job_id, self.model.id, parks)
            return chunk_rows.claim(self.job_id, claim, self.model.id) if claim else []

        def grouped():
            # Outcomes and the claim in one transaction, with other chunks' steps
            # (``engine.batching``); a failure rolls back both and ``done`` gives both back.
            self.writer.write(batch, commit=False)
            return (
                chunk_rows.claim(self.job_id, claim, self.model.id, commit=False) if claim else []
            )

        def done(ok, rows):
            if not ok:
                self.writer.give_back(batch)
                self.parks[:0] = parks
                self.pending.extendleft(reversed(claim))
                self.ctx.waiting += len(claim)
                self.ctx.claimed -= len(claim)
                return
            self.ctx.claimed -= len(claim) - len(rows)
            self.ready.extend(rows)
            self._fill()

        if parks:
            return self._in_lane(step), done
        after = (lambda: self.writer.committed(batch)) if batch[0] or batch[1] else None
        # A claim alone may be lost in a database crash (the reconciler re-sends the task);
        # outcomes must not be: a client may already have been told.
        step = self.runtime.batcher.submit(grouped, after, durable=bool(after))
        return step, done

    def _in_lane(self, fn, *args) -> asyncio.Future:
        context = contextvars.copy_context()  # the app context, hence the same database session
        return asyncio.get_running_loop().run_in_executor(self.lane, context.run, fn, *args)

    @staticmethod
    def _finish_step(step: asyncio.Future, on_done) -> bool:
        """Apply a finished step's result; return False when it hit a transient database error."""
        try:
            result = step.result()
        except (
            sa_exc.SQLAlchemyError
        ) as exc:  # retried: locks past the busy timeout, lost connections
            if not is_transient_error(exc):
                raise
            logger.warning("database busy or unreachable (%s); retrying in 1 s", exc)
            on_done(False, None)
            return False
        on_done(True, result)
        return True

    async def _drain(self) -> None:
        """Let in-flight calls finish within the grace period, then hand the rest back."""
        grace = current_app.config["WORKER_DRAIN_SECONDS"]
        logger.warning(
            "shutdown: finishing %d call(s) within %ss, handing %d back",
            len(self.inflight),
            grace,
            len(self.pending),
        )
        self.closing = True  # no new call starts from the tasks claimed ahead
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace)
        self._reap()
        unfinished = list(self.inflight) + [row.id for row in self.ready]
        for task in self.inflight.values():
            task.cancel()
        await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        self.inflight.clear()
        batch, parks = self.writer.take(), self.parks
        ids = unfinished + list(self.pending) + self.handed_back
        self.ctx.waiting -= len(self.pending)
        self.ctx.claimed -= len(self.ready)
        self.pending.clear()
        self.ready.clear()
        self.handed_back, self.parks = [], []

        def hand_back():
            self.writer.write(batch)
            if parks:
                parking.park(self.job_id, self.model.id, parks)
            chunk_rows.requeue_unfinished(self.job_id, ids)

        await self._in_lane(hand_back)

    def _fill(self) -> None:
        """Start calls for ready tasks while the model has free slots in this process."""
        while self.ready and self.ctx.busy < self.model.cap and not self.closing:
            row = self.ready.popleft()
            self.ctx.claimed -= 1
            task_id = row.id
            params = CallParams.of(row, self.model)  # the task's own, else the model's
            self.writer.begin(task_id, params)
            relay_stream = self.relay.watch(task_id, getattr(row, "submission_key", None))
            if task_id in self.relay.watched:
                self.writer.hurry(task_id)  # a client is waiting: write its outcome at once
            try:  # the prompt policy may have changed since the task was written (a re-run)
                policy.check_prompt(row.prompt, row.system_prompt)
            except policy.PromptRefused as exc:
                self.writer.failure(task_id, str(exc), "blocked_prompt", None, calls=row.calls)
                continue
            messages = build_messages(row.prompt, row.system_prompt)
            call = asyncio.ensure_future(
                self._run_one(task_id, messages, params, Carried.of(row), relay_stream)
            )
            self.ctx.busy += 1  # the slot is taken now, and given back however the call ends
            call.add_done_callback(functools.partial(self._slot_freed, task_id))
            self.inflight[task_id] = call

    def _slot_freed(self, task_id: int, _call) -> None:
        self.ctx.busy -= 1
        self.ended.append(task_id)  # reaped by the loop (no scan of every call in flight)
        self.ctx.slot_freed()  # every runner of the model (this one too) refills at once

    def _refill(self) -> None:
        """Refill free slots of the model at once from the tasks claimed ahead; wake the loop."""
        self._fill()
        self.wake.set()

    def _wake_up(self, _future) -> None:
        self.wake.set()

    def _reap(self) -> None:
        ended, self.ended = self.ended, []
        for task_id in ended:
            task = self.inflight.get(task_id)
            if task is not None and task.done():
                del self.inflight[task_id]
                self.partial_saved.pop(task_id, None)
                if task.cancelled() or task.exception() is None:
                    continue
                if isinstance(task.exception(), REDIS_OUTAGE):
                    # Redis stayed away too long: not the task's fault, it waits for the queue.
                    logger.warning("Redis unreachable: handing task %s back to the queue", task_id)
                    self.handed_back.append(task_id)
                    continue
                logger.error("task %s crashed in the executor", task_id, exc_info=task.exception())
                self.writer.failure(
                    task_id, f"Internal error: {task.exception()}", "unexpected", None
                )

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


def run_chunk(job_id: str, task_ids: list[int], transport=None) -> int:
    """Run the tasks of ``job_id`` that are still queued for it here and now; return outcomes written."""
    settings = prepare_chunk(job_id, task_ids)
    if settings is None:
        return 0
    return asyncio.run(ChunkRunner(job_id, task_ids, settings, transport).run())
