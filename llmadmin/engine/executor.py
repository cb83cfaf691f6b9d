"""Run a chunk of tasks for one model with many calls in flight.

One RQ job carries a chunk of task ids. Inside it an asyncio loop claims tasks
(QUEUED -> RUNNING, only for this job id) as slots free up, calls the model through the
one HTTP client under the shared limits and breaker, and writes outcomes in batches.
Database work (claims, batched writes, cancel checks) runs one step at a time in a
"lane" thread, so a locked or slow database never stalls the calls in flight.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
from flask import current_app
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from llmadmin import crypto, policy
from llmadmin.database import is_transient_error
from llmadmin.engine import chunk_rows, final_error, resilience
from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.heartbeat import Heartbeat
from llmadmin.engine.limits import ModelLimiter, heartbeat_key
from llmadmin.engine.model_settings import ModelSettings
from llmadmin.engine.params import CallParams
from llmadmin.engine.relay import Relay
from llmadmin.engine.resilience import backoff_delay  # noqa: F401  (tests import it from here)
from llmadmin.engine.writer import OutcomeWriter
from llmadmin.errors import CircuitOpen, LLMError
from llmadmin.extensions import db
from llmadmin.llm import ChatRequest, build_messages, chat, compute_cost
from llmadmin.llm.pool import ClientPool
from llmadmin.models import LLMModel, Task
from llmadmin.queues import REDIS_OUTAGE

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5

# Set by the worker's SIGTERM handler in the job process (see llmadmin.worker_class).
DRAIN = threading.Event()


def request_drain() -> None:
    """Ask the running chunk to stop claiming work and hand back what it cannot finish."""
    DRAIN.set()


PARTIAL_SAVE_SECONDS = 1.0


async def backoff_sleep(seconds: float) -> None:
    """Wait between attempts (a separate function so tests can record the delays)."""
    await asyncio.sleep(seconds)


class ChunkRunner:
    """Execute the tasks of one job."""

    def __init__(
        self,
        job_id: str,
        task_ids: list[int],
        model: ModelSettings,
        transport=None,
        steal_seconds: float | None = None,
    ):
        self.job_id = job_id
        # After its own chunk, a job keeps its slots busy with tasks still queued for the
        # same model under other jobs (those jobs then find nothing to claim): no idle tail
        # per chunk and no fork between chunks. Bounded so the RQ job timeout is never hit.
        self.steal_until = time.monotonic() + steal_seconds if steal_seconds else None
        self.next_steal = 0.0
        self.pending = deque(task_ids)
        self.model = model
        self.transport = transport
        self.writer = OutcomeWriter(job_id)
        self.inflight: dict[int, asyncio.Task] = {}
        self.handed_back: list[int] = []
        # Every database step of the chunk runs here, one at a time, off the event loop.
        self.lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chunk-db-{job_id}")
        self.partial_saved: dict[int, float] = {}
        cfg = current_app.config
        self.prefix = cfg["QUEUE_PREFIX"]
        self.redis_url = cfg["REDIS_URL"]
        self.max_connections = cfg["LLM_MAX_CONNECTIONS"]
        # Concurrency leases live as long as the heartbeat: a killed worker frees its slots fast.
        self.lease_seconds = float(cfg["HEARTBEAT_TTL_SECONDS"])
        self.redis_patience = float(cfg["REDIS_OUTAGE_WAIT_SECONDS"])
        self.breaker_patience = float(cfg["BREAKER_WAIT_SECONDS"])
        # Gateway calls: their deltas and "done" go to the web request waiting for them.
        self.relay = Relay(None, self.prefix)
        self.writer.after_write = self.relay.written

    async def run(self) -> int:
        """Run every claimable task of the chunk; return how many outcomes were written."""
        # A blocking pool: with a large cap, calls wait for a Redis connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=min(512, self.model.cap + 16),
            timeout=60,
            socket_connect_timeout=5,
        )
        self.redis = aioredis.Redis.from_pool(pool)
        self.limiter = ModelLimiter(
            self.redis,
            self.prefix,
            self.model.id,
            self.model.cap,
            self.model.rpm,
            lease_seconds=self.lease_seconds,
        )
        self.breaker = CircuitBreaker(
            self.redis,
            self.prefix,
            self.model.id,
            self.model.label,
            self.model.breaker_threshold,
            self.model.breaker_cooldown,
            probe_seconds=self.model.timeout + 5,
        )
        self.clients = ClientPool(
            max_connections=min(self.max_connections, self.model.cap), transport=self.transport
        )
        heartbeat = Heartbeat(
            self.redis_url,
            heartbeat_key(self.prefix, self.job_id),
            self.lease_seconds,
            self.limiter,
        )
        heartbeat.start()
        self.relay.redis = self.redis
        pump = asyncio.ensure_future(self.relay.pump())
        try:
            await self._loop()
        finally:
            pump.cancel()
            for task in self.inflight.values():
                task.cancel()
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
            heartbeat.stop()
            self.lane.shutdown(wait=True)  # no database step may run beside the last flush
            self.writer.flush()
            await self.clients.aclose()
            await self.redis.aclose()
        return self.writer.written

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
        while self.pending or self.inflight or self.handed_back or step or self._may_steal():
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
            waitables = list(self.inflight.values()) + ([step] if step is not None else [])
            if waitables:
                await asyncio.wait(waitables, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(0.05)
            if step is not None and step.done():
                if not self._finish_step(step, on_done):
                    retry_at = time.monotonic() + 1.0
                step, on_done = None, None
            self._reap()

    def _next_step(self, cancel_check_due: bool):
        """Start the most urgent database step in the lane; return (future, on_done) or (None, None)."""
        if self.writer.due():
            batch = self.writer.take()
            return self._in_lane(
                self.writer.write, batch
            ), lambda ok, _: ok or self.writer.give_back(batch)
        if self.handed_back:
            ids, self.handed_back = self.handed_back, []
            batch = self.writer.take()

            def hand_back():
                self.writer.write(batch)
                chunk_rows.requeue_unfinished(
                    self.job_id, ids, note="re-queued: Redis was unreachable"
                )

            def restore(ok, _):
                if not ok:
                    self.writer.give_back(batch)
                    self.handed_back[:0] = ids

            return self._in_lane(hand_back), restore
        free = self.model.cap - len(self.inflight)
        if free > 0 and self.pending:
            batch = [self.pending.popleft() for _ in range(min(free, len(self.pending)))]
            return (
                self._in_lane(chunk_rows.claim, self.job_id, batch),
                lambda ok, rows: (
                    self._start_calls(rows) if ok else self.pending.extendleft(reversed(batch))
                ),
            )
        if free > 0 and self._may_steal():
            stealing = self._in_lane(chunk_rows.steal, self.job_id, self.model.id, free)
            return stealing, lambda ok, rows: self._stolen(rows if ok else [])
        if cancel_check_due and self.inflight:
            return self._in_lane(
                chunk_rows.find_gone, self.job_id, list(self.inflight)
            ), self._canceled_found
        return None, None

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
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace)
        self._reap()
        unfinished = list(self.inflight)
        for task in self.inflight.values():
            task.cancel()
        await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        self.inflight.clear()
        batch, ids = self.writer.take(), unfinished + list(self.pending) + self.handed_back
        self.pending.clear()
        self.handed_back = []

        def hand_back():
            self.writer.write(batch)
            chunk_rows.requeue_unfinished(self.job_id, ids)

        await self._in_lane(hand_back)

    def _start_calls(self, rows) -> None:
        for row in rows:
            task_id, prompt, system_prompt = row.id, row.prompt, row.system_prompt
            params = CallParams.of(row, self.model)  # the task's own, else the model's
            self.writer.begin(task_id, params)
            relay_stream = self.relay.watch(task_id, getattr(row, "submission_key", None))
            if task_id in self.relay.watched:
                self.writer.hurry(task_id)  # a client is waiting: write its outcome at once
            try:  # the prompt policy may have changed since the task was written (a re-run)
                policy.check_prompt(prompt, system_prompt)
            except policy.PromptRefused as exc:
                self.writer.failure(task_id, str(exc), "blocked_prompt", None)
                continue
            coro = self._run_one(
                task_id, build_messages(prompt, system_prompt), params, relay_stream
            )
            self.inflight[task_id] = asyncio.ensure_future(coro)

    def _may_steal(self) -> bool:
        now = time.monotonic()
        return self.steal_until is not None and now < self.steal_until and now >= self.next_steal

    def _stolen(self, rows) -> None:
        if rows:
            self._start_calls(rows)
        else:
            self.next_steal = time.monotonic() + 0.5

    def _reap(self) -> None:
        for task_id, task in list(self.inflight.items()):
            if task.done():
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
        for task_id in gone or ():
            task = self.inflight.pop(task_id, None)
            if task is not None:
                task.cancel()
                logger.info("task %s canceled while running; its call was stopped", task_id)

    async def _run_one(
        self, task_id: int, messages: list[dict], params: CallParams, relay_stream: bool = False
    ) -> None:
        model = self.model
        request = ChatRequest(
            base_url=model.base_url,
            api_key=model.api_key,
            model=model.model_name,
            messages=messages,
            timeout=model.timeout,
            stream=model.stream or relay_stream,  # a streaming gateway client gets a stream
            **params.sent(),
        )
        streamed: list[str] = []
        on_delta = self._delta_saver(task_id, streamed) if request.stream else None
        started = time.monotonic()
        attempt, breaker_waited = 0, 0.0
        last_error: LLMError | None = None  # the task's own last failure: its final error's cause
        while True:
            try:
                breaker_dirty = await self._with_redis(self.breaker.before_call)
            except CircuitOpen as exc:
                wait = resilience.breaker_wait(
                    exc.retry_after, breaker_waited, self.breaker_patience
                )
                if wait is None:
                    message, kind = final_error.breaker_gave_up(
                        exc, last_error, attempt, breaker_waited, model.label
                    )
                    elapsed = (time.monotonic() - started) * 1000
                    self.writer.failure(task_id, message, kind, elapsed, calls=attempt)
                    return
                breaker_waited += wait
                await asyncio.sleep(wait)
                continue
            attempt += 1
            try:
                token = await self._with_redis(self.limiter.acquire)
                try:
                    call_started = time.monotonic()
                    result = await chat(self.clients.next(), request, on_delta=on_delta)
                finally:
                    await asyncio.shield(self.limiter.release(token))
                if breaker_dirty:
                    await self._best_effort(self.breaker.record_success())
                cost = compute_cost(
                    result.prompt_tokens, result.completion_tokens, model.price_in, model.price_out
                )
                latency = (time.monotonic() - call_started) * 1000
                self.writer.success(task_id, result, latency, cost, calls=attempt)
                return
            except LLMError as exc:
                last_error = exc
                await self._best_effort(self.breaker.record_failure(exc.kind, exc.message))
                delay = resilience.retry_delay(exc, attempt, model.max_attempts)
                if delay is None:
                    self.writer.failure(
                        task_id,
                        final_error.after_calls(exc, attempt, model.max_attempts),
                        exc.kind,
                        (time.monotonic() - started) * 1000,
                        "".join(streamed) or None,
                        calls=attempt,
                    )
                    return
                streamed.clear()
                self.relay.reset(task_id)
                await backoff_sleep(delay)

    async def _with_redis(self, step):
        """Run a Redis step of a call, waiting out a Redis outage of up to REDIS_OUTAGE_WAIT_SECONDS.

        A restart or blip of Redis is not the model's fault: it costs the task no attempt.
        When Redis stays away longer, the error reaches ``_reap``, which hands the task back.
        """
        deadline = time.monotonic() + self.redis_patience
        delay = 0.1
        while True:
            try:
                return await step()
            except REDIS_OUTAGE as exc:
                if DRAIN.is_set() or time.monotonic() + delay > deadline:
                    raise
                if delay >= 1.0:
                    logger.warning("Redis unreachable (%s); waiting %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    async def _best_effort(coro) -> None:
        """Breaker bookkeeping must never cost a task its answer."""
        try:
            await coro
        except REDIS_OUTAGE as exc:
            logger.warning("circuit breaker not updated: %s", exc)

    def _delta_saver(self, task_id: int, streamed: list[str]):
        def on_delta(delta: str) -> None:
            streamed.append(delta)
            self.relay.delta(task_id, delta)
            now = time.monotonic()
            if now - self.partial_saved.get(task_id, 0.0) >= PARTIAL_SAVE_SECONDS:
                self.partial_saved[task_id] = now
                self.writer.partial(task_id, "".join(streamed))

        return on_delta


def run_chunk(
    job_id: str, task_ids: list[int], transport=None, steal_seconds: float | None = None
) -> int:
    """Run the tasks of ``job_id`` that are still queued for it; return outcomes written."""
    first = db.session.execute(
        select(Task.model_id).where(Task.id.in_(task_ids), Task.job_id == job_id).limit(1)
    ).scalar_one_or_none()
    model = db.session.get(LLMModel, first) if first else None
    if model is None:
        chunk_rows.fail_queued(
            job_id, task_ids, "The task's model was deleted before the task ran.", "model_deleted"
        )
        return 0
    if not model.enabled:
        chunk_rows.fail_queued(
            job_id, task_ids, f"The model {model.name} is disabled.", "model_disabled"
        )
        return 0
    if chunk_rows.fail_blocked_tasks(
        job_id, task_ids, model.base_url
    ):  # OUTBOUND_ALLOWLIST, kind "blocked_url"
        return 0
    try:
        settings = ModelSettings.load(model)
    except crypto.SecretUnreadable as exc:
        chunk_rows.fail_queued(job_id, task_ids, str(exc), "auth")
        return 0
    db.session.commit()
    return asyncio.run(ChunkRunner(job_id, task_ids, settings, transport, steal_seconds).run())
