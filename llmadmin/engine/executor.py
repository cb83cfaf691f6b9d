"""Run a chunk of tasks for one model with many calls in flight.

One RQ job carries a chunk of task ids. Inside it an asyncio loop claims tasks
(QUEUED -> RUNNING, only for this job id) as slots free up, calls the model through the
one HTTP client under the shared limits and breaker, and writes outcomes in batches.
Database work stays on the loop's thread and is short (batched statements), so the
loop keeps dozens of HTTP requests in flight while it writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from flask import current_app
from sqlalchemy import select

from llmadmin import crypto
from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.limits import RENEW, ModelLimiter, heartbeat_key
from llmadmin.engine.writer import OutcomeWriter
from llmadmin.errors import CircuitOpen, LLMError
from llmadmin.extensions import db
from llmadmin.llm import ChatRequest, build_messages, chat, compute_cost
from llmadmin.llm.pool import ClientPool
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import QUEUED, RUNNING
from llmadmin.services import policy
from llmadmin.services.task_state import transition

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5
HEARTBEAT_SECONDS = 2.0

# Set by the worker's SIGTERM handler in the job process (see llmadmin.worker_class).
DRAIN = threading.Event()


def request_drain() -> None:
    """Ask the running chunk to stop claiming work and hand back what it cannot finish."""
    DRAIN.set()


PARTIAL_SAVE_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 120.0
# Errors that mean "Redis is away", as opposed to a bug in a script or command.
REDIS_OUTAGE = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass
class ModelSettings:
    """A detached snapshot of the model row (the ORM object never crosses into coroutines)."""

    id: int
    label: str
    base_url: str
    api_key: str | None
    model_name: str
    temperature: float
    max_tokens: int
    timeout: float
    cap: int
    rpm: int
    max_attempts: int
    stream: bool
    price_in: object
    price_out: object
    breaker_threshold: int
    breaker_cooldown: int

    @classmethod
    def load(cls, model: LLMModel) -> ModelSettings:
        """Snapshot ``model`` (decrypting its key)."""
        return cls(
            id=model.id, label=model.name, base_url=model.base_url,
            api_key=crypto.decrypt(model.api_key_encrypted), model_name=model.model_name,
            temperature=model.temperature, max_tokens=model.max_tokens,
            timeout=float(model.timeout_seconds), cap=max(1, model.max_concurrency),
            rpm=max(0, model.rpm_limit), max_attempts=max(1, model.max_attempts),
            stream=model.stream, price_in=model.price_input_per_1k,
            price_out=model.price_output_per_1k, breaker_threshold=model.breaker_threshold,
            breaker_cooldown=model.breaker_cooldown_seconds,
        )


def backoff_delay(attempt: int, retry_after: float | None, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After is a floor."""
    delay = random.uniform(0, min(cap, base * (2 ** (attempt - 1))))
    if retry_after is not None:
        delay = max(delay, float(retry_after) + random.uniform(0, 0.1))
    return delay


class Heartbeat(threading.Thread):
    """Keep the job's heartbeat key and its concurrency leases alive from a thread.

    A thread (with its own blocking Redis client) rather than a coroutine: the event loop
    blocks while a database write waits on a lock, and the job must not look dead then.
    """

    def __init__(self, redis_url: str, key: str, ttl_seconds: float, limiter: ModelLimiter):
        super().__init__(name=f"heartbeat-{key}", daemon=True)
        self.redis_url, self.key, self.limiter = redis_url, key, limiter
        self.ttl_ms = int(ttl_seconds * 1000)
        self.stopping = threading.Event()

    def run(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        renew = client.register_script(RENEW)
        while True:
            try:
                client.set(self.key, "1", px=self.ttl_ms)
                tokens = list(self.limiter.held)
                if tokens:
                    renew(keys=[self.limiter.keys[0]], args=[self.ttl_ms, *tokens])
            except (redis.RedisError, OSError) as exc:
                logger.warning("heartbeat missed: %s", exc)
            if self.stopping.wait(HEARTBEAT_SECONDS):
                break
        try:
            client.delete(self.key)
        except (redis.RedisError, OSError):
            pass  # the key expires by itself
        client.close()

    def stop(self) -> None:
        """Stop beating and remove the key."""
        self.stopping.set()
        self.join(timeout=10)


async def backoff_sleep(seconds: float) -> None:
    """Wait between attempts (a separate function so tests can record the delays)."""
    await asyncio.sleep(seconds)


class ChunkRunner:
    """Execute the tasks of one job."""

    def __init__(self, job_id: str, task_ids: list[int], model: ModelSettings, transport=None,
                 steal_seconds: float | None = None):
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
        self.partial_saved: dict[int, float] = {}
        cfg = current_app.config
        self.prefix = cfg["QUEUE_PREFIX"]
        self.redis_url = cfg["REDIS_URL"]
        self.max_connections = cfg["LLM_MAX_CONNECTIONS"]
        # Concurrency leases live as long as the heartbeat: a killed worker frees its slots fast.
        self.lease_seconds = float(cfg["HEARTBEAT_TTL_SECONDS"])
        self.redis_patience = float(cfg["REDIS_OUTAGE_WAIT_SECONDS"])
        self.breaker_patience = float(cfg["BREAKER_WAIT_SECONDS"])

    async def run(self) -> int:
        """Run every claimable task of the chunk; return how many outcomes were written."""
        # A blocking pool: with a large cap, calls wait for a Redis connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=min(512, self.model.cap + 16), timeout=60,
            socket_connect_timeout=5)
        self.redis = aioredis.Redis.from_pool(pool)
        self.limiter = ModelLimiter(self.redis, self.prefix, self.model.id, self.model.cap,
                                    self.model.rpm, lease_seconds=self.lease_seconds)
        self.breaker = CircuitBreaker(self.redis, self.prefix, self.model.id, self.model.label,
                                      self.model.breaker_threshold, self.model.breaker_cooldown,
                                      probe_seconds=self.model.timeout + 5)
        self.clients = ClientPool(max_connections=min(self.max_connections, self.model.cap),
                                  transport=self.transport)
        heartbeat = Heartbeat(self.redis_url, heartbeat_key(self.prefix, self.job_id), self.lease_seconds,
                              self.limiter)
        heartbeat.start()
        try:
            await self._loop()
        finally:
            for task in self.inflight.values():
                task.cancel()
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
            heartbeat.stop()
            self.writer.flush()
            await self.clients.aclose()
            await self.redis.aclose()
        return self.writer.written

    async def _loop(self) -> None:
        last_cancel_check = time.monotonic()
        while self.pending or self.inflight or self._may_steal():
            if DRAIN.is_set():
                await self._drain()
                return
            self._claim_more()
            if self.inflight:
                await asyncio.wait(list(self.inflight.values()), timeout=0.05,
                                   return_when=asyncio.FIRST_COMPLETED)
                self._reap()
            if self.writer.due():
                self.writer.flush()
            if time.monotonic() - last_cancel_check >= CANCEL_CHECK_SECONDS:
                self._drop_canceled()
                last_cancel_check = time.monotonic()

    async def _drain(self) -> None:
        """Let in-flight calls finish within the grace period, then hand the rest back."""
        grace = current_app.config["WORKER_DRAIN_SECONDS"]
        logger.warning("shutdown: finishing %d call(s) within %ss, handing %d back",
                       len(self.inflight), grace, len(self.pending))
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace)
        self._reap()
        unfinished = list(self.inflight)
        for task in self.inflight.values():
            task.cancel()
        await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        self.inflight.clear()
        self.writer.flush()
        requeue_unfinished(self.job_id, unfinished + list(self.pending))
        self.pending.clear()

    def _claim_more(self) -> None:
        free = self.model.cap - len(self.inflight)
        if free <= 0:
            return
        if self.pending:
            batch = [self.pending.popleft() for _ in range(min(free, len(self.pending)))]
            claimed = transition(batch, RUNNING, from_statuses=(QUEUED,), where=Task.job_id == self.job_id)
        elif self._may_steal():
            claimed = self._steal(free)
        else:
            return
        if not claimed:
            return
        rows = db.session.execute(
            select(Task.id, Task.prompt, Task.system_prompt).where(Task.id.in_(claimed))
        ).all()
        db.session.commit()  # end the read transaction; SQLite must not hold a snapshot open
        for task_id, prompt, system_prompt in rows:
            coro = self._run_one(task_id, build_messages(prompt, system_prompt))
            self.inflight[task_id] = asyncio.ensure_future(coro)

    def _may_steal(self) -> bool:
        now = time.monotonic()
        return self.steal_until is not None and now < self.steal_until and now >= self.next_steal

    def _steal(self, free: int) -> list[int]:
        """Claim up to ``free`` tasks queued for this model under other jobs."""
        candidates = db.session.execute(
            select(Task.id).where(Task.model_id == self.model.id, Task.status == QUEUED)
            .order_by(Task.id).limit(free)
        ).scalars().all()
        claimed = transition(candidates, RUNNING, from_statuses=(QUEUED,), job_id=self.job_id) if candidates else []
        if not claimed:
            db.session.commit()
            self.next_steal = time.monotonic() + 0.5
        return claimed

    def _reap(self) -> None:
        handed_back: list[int] = []
        for task_id, task in list(self.inflight.items()):
            if task.done():
                del self.inflight[task_id]
                self.partial_saved.pop(task_id, None)
                if task.cancelled() or task.exception() is None:
                    continue
                if isinstance(task.exception(), REDIS_OUTAGE):
                    # Redis stayed away too long: not the task's fault, it waits for the queue.
                    handed_back.append(task_id)
                    continue
                logger.error("task %s crashed in the executor", task_id, exc_info=task.exception())
                self.writer.failure(task_id, f"Internal error: {task.exception()}", "unexpected", None)
        if handed_back:
            logger.warning("Redis unreachable: handing %d task(s) back to the queue", len(handed_back))
            self.writer.flush()
            requeue_unfinished(self.job_id, handed_back, note="re-queued: Redis was unreachable")

    def _drop_canceled(self) -> None:
        """Stop the calls of tasks that were canceled (or taken away) while running."""
        if not self.inflight:
            return
        gone = db.session.execute(
            select(Task.id).where(Task.id.in_(list(self.inflight)),
                                  (Task.status != RUNNING) | (Task.job_id != self.job_id))
        ).scalars().all()
        db.session.commit()
        for task_id in gone:
            task = self.inflight.pop(task_id, None)
            if task is not None:
                task.cancel()
                logger.info("task %s canceled while running; its call was stopped", task_id)

    async def _run_one(self, task_id: int, messages: list[dict]) -> None:
        model = self.model
        request = ChatRequest(
            base_url=model.base_url, api_key=model.api_key, model=model.model_name,
            messages=messages, temperature=model.temperature, max_tokens=model.max_tokens,
            timeout=model.timeout, stream=model.stream,
        )
        streamed: list[str] = []
        on_delta = self._delta_saver(task_id, streamed) if model.stream else None
        started = time.monotonic()
        attempt, breaker_waited = 0, 0.0
        while True:
            try:
                breaker_dirty = await self._with_redis(self.breaker.before_call)
            except CircuitOpen as exc:
                # The model is paused; waiting for it costs no attempt. Only a wait longer
                # than BREAKER_WAIT_SECONDS in all fails the task with the breaker's message.
                wait = float(exc.retry_after or 1)
                if breaker_waited + wait > self.breaker_patience:
                    self.writer.failure(task_id, exc.message, exc.kind, (time.monotonic() - started) * 1000)
                    return
                breaker_waited += wait
                await asyncio.sleep(wait + random.uniform(0, 0.2))
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
                cost = compute_cost(result.prompt_tokens, result.completion_tokens,
                                    model.price_in, model.price_out)
                latency = (time.monotonic() - call_started) * 1000
                self.writer.success(task_id, result.text, latency, result.prompt_tokens,
                                    result.completion_tokens, cost)
                return
            except LLMError as exc:
                await self._best_effort(self.breaker.record_failure(exc.kind))
                can_retry = exc.retryable and attempt < model.max_attempts
                if can_retry and (exc.retry_after or 0) > MAX_RETRY_AFTER_SECONDS:
                    can_retry = False
                if not can_retry:
                    suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                    self.writer.failure(task_id, exc.message + suffix, exc.kind,
                                        (time.monotonic() - started) * 1000,
                                        "".join(streamed) or None)
                    return
                streamed.clear()
                await backoff_sleep(backoff_delay(attempt, exc.retry_after))

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
            now = time.monotonic()
            if now - self.partial_saved.get(task_id, 0.0) >= PARTIAL_SAVE_SECONDS:
                self.partial_saved[task_id] = now
                self.writer.partial(task_id, "".join(streamed))
        return on_delta


def run_chunk(job_id: str, task_ids: list[int], transport=None, steal_seconds: float | None = None) -> int:
    """Run the tasks of ``job_id`` that are still queued for it; return outcomes written."""
    first = db.session.execute(
        select(Task.model_id).where(Task.id.in_(task_ids), Task.job_id == job_id).limit(1)
    ).scalar_one_or_none()
    model = db.session.get(LLMModel, first) if first else None
    if model is None:
        fail_queued(job_id, task_ids, "The task's model was deleted before the task ran.", "model_deleted")
        return 0
    if not model.enabled:
        fail_queued(job_id, task_ids, f"The model {model.name} is disabled.", "model_disabled")
        return 0
    if policy.fail_blocked_tasks(job_id, task_ids, model.base_url):  # OUTBOUND_ALLOWLIST, kind "blocked_url"
        return 0
    try:
        settings = ModelSettings.load(model)
    except crypto.SecretUnreadable as exc:
        fail_queued(job_id, task_ids, str(exc), "auth")
        return 0
    db.session.commit()
    return asyncio.run(ChunkRunner(job_id, task_ids, settings, transport, steal_seconds).run())


def requeue_unfinished(job_id: str, task_ids: list[int], note: str = "re-queued: worker shut down") -> int:
    """Put tasks of a stopping job back in the queue under new jobs (graceful shutdown, Redis outage)."""
    from llmadmin.errors import QueueUnavailable
    from llmadmin.models.base import utcnow
    from llmadmin.models.task import PENDING
    from llmadmin.services.dispatch import dispatch

    back = transition(task_ids, PENDING, from_statuses=(QUEUED, RUNNING), where=Task.job_id == job_id,
                      run_requested_at=utcnow(), job_id=None, queue_note=note)
    try:
        dispatch(back)
    except QueueUnavailable:
        pass  # they stay PENDING with run_requested_at; housekeeping sends them later
    return len(back)


def fail_queued(job_id: str, task_ids: list[int], message: str, kind: str) -> None:
    """Fail the tasks still queued for ``job_id`` with a clear message."""
    from llmadmin.models.task import FAILURE

    transition(task_ids, FAILURE, from_statuses=(QUEUED,), where=Task.job_id == job_id,
               error=message, error_kind=kind, run_requested_at=None)
