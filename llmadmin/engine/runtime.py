"""What the chunks running in one process share.

One async Redis client, one database "lane" thread (every database step of every chunk,
one at a time, off the event loop; claims and outcome writes grouped into shared
transactions by ``engine.batching``), one heartbeat thread, and per model its limiter,
breaker, HTTP clients and a count of the slots this process uses, so chunks of the same
model never claim more tasks together than the model's cap.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
from flask import current_app

from llmadmin.engine.batching import StepBatcher
from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.gate import Gate
from llmadmin.engine.heartbeat import Heartbeat
from llmadmin.engine.limits import ModelLimiter
from llmadmin.engine.model_settings import ModelSettings
from llmadmin.llm.pool import ClientPool


class ModelContext:
    """One model's shared state inside a process."""

    def __init__(self, runtime: Runtime, settings: ModelSettings):
        self.settings = settings
        self.users = 0
        self.busy = 0  # calls in flight from this process's chunks
        self.claimed = 0  # tasks claimed (or being claimed) whose call has not started
        self.waiting = 0  # tasks of this process's chunks not claimed yet
        # The model as a whole must wait (Retry-After, open breaker) until this monotonic time.
        self.paused_until = 0.0
        self.pause_reason = ""
        self.healthy = False  # the last call of the model ended well: runners claim ahead
        # The wake-up callbacks of this model's runners: a freed slot wakes them all, so a
        # runner with tasks claimed ahead refills it at once instead of at its next poll.
        self.wakers: set = set()
        self.limiter = ModelLimiter(
            runtime.redis,
            runtime.prefix,
            settings.id,
            settings.cap,
            settings.rpm,
            lease_seconds=runtime.lease_seconds,
        )
        self.breaker = CircuitBreaker(
            runtime.redis,
            runtime.prefix,
            settings.id,
            settings.label,
            settings.breaker_threshold,
            settings.breaker_cooldown,
            probe_seconds=settings.timeout + 5,
        )
        self.gate = Gate(runtime.redis, self.limiter, self.breaker)  # both in one round trip
        self.clients = ClientPool(
            max_connections=min(runtime.max_connections, settings.cap),
            transport=runtime.transport,
        )

    def slot_freed(self) -> None:
        """A call of this model ended: let every runner of the model refill the slot."""
        for wake in tuple(self.wakers):
            wake()

    def pause(self, seconds: float, reason: str) -> None:
        """Remember that no call to the model is worth making for ``seconds``."""
        until = time.monotonic() + seconds
        if until > self.paused_until:
            self.paused_until, self.pause_reason = until, reason


class Runtime:
    """Shared resources of every chunk in one process (build and use it on one event loop)."""

    def __init__(self, transport=None, registry_key: str | None = None):
        cfg = current_app.config
        self.prefix = cfg["QUEUE_PREFIX"]
        self.redis_url = cfg["REDIS_URL"]
        self.max_connections = cfg["LLM_MAX_CONNECTIONS"]
        # Concurrency leases live as long as the heartbeat: a killed worker frees its slots fast.
        self.lease_seconds = float(cfg["HEARTBEAT_TTL_SECONDS"])
        self.transport = transport
        # A blocking pool: with many calls, a call waits for a Redis connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=512, timeout=60, socket_connect_timeout=5
        )
        self.redis = aioredis.Redis.from_pool(pool)
        self.lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-db")
        # Claims and outcome writes of every chunk, grouped into shared transactions.
        self.batcher = StepBatcher(self.lane, current_app._get_current_object())
        self.heartbeat = Heartbeat(self.redis_url, self.lease_seconds, registry_key)
        self.heartbeat.start()
        self.models: dict[int, ModelContext] = {}

    def model(self, settings: ModelSettings) -> ModelContext:
        """Return the shared context of a model, rebuilt when its settings changed."""
        ctx = self.models.get(settings.id)
        if ctx is None or (ctx.settings != settings and ctx.users == 0):
            if ctx is not None:
                asyncio.ensure_future(ctx.clients.aclose())
            ctx = self.models[settings.id] = ModelContext(self, settings)
        ctx.users += 1
        return ctx

    async def release(self, ctx: ModelContext) -> None:
        """A chunk stopped using ``ctx``; close it when nobody uses it any more."""
        ctx.users -= 1
        if ctx.users <= 0:
            await ctx.gate.give_back_now()
            if self.models.get(ctx.settings.id) is not ctx:
                await ctx.clients.aclose()

    async def aclose(self) -> None:
        """Close every client and stop the threads (no chunk may run any more)."""
        for ctx in self.models.values():
            await ctx.gate.give_back_now()
            await ctx.clients.aclose()
        self.models.clear()
        self.heartbeat.stop()
        await self.batcher.aclose()
        self.lane.shutdown(wait=True)
        await self.redis.aclose()
