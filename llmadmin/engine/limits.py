"""Per-model limits shared by every worker through Redis.

A concurrency lease is a member of a sorted set scored by its expiry, so a worker that
dies never holds a slot for longer than the lease; the requests-per-minute limit is a
sliding log of request starts. Both are checked and taken atomically in one Lua script
against Redis' own clock, so N processes on N machines agree.

The rate window is 60 s plus a margin: a request admitted at the start of a window may
reach the endpoint some milliseconds later than one admitted at its end, and without
the margin the endpoint could count a few more than the limit in its own 60 s
(measured: 608 for a limit of 600 with no margin).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager

import redis

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  return {0, 0}
end
if rpm > 0 then
  local window = tonumber(ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  if redis.call('ZCARD', KEYS[2]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now}
  end
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], window + 1000)
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return {1, 0}
"""


def keys_for(prefix: str, model_id: int) -> tuple[str, str]:
    """Return the Redis keys of a model's in-flight leases and request log."""
    return f"{prefix}:model:{model_id}:inflight", f"{prefix}:model:{model_id}:rpm"


RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 1000)
return #ARGV - 1
"""


def heartbeat_key(prefix: str, job_id: str) -> str:
    """Return the Redis key a running chunk keeps alive (the reconciler reads it)."""
    return f"{prefix}:alive:{job_id}"


RATE_WINDOW_MS = 62_000


class MustWait(Exception):
    """No slot now: the rate window is exhausted (``reason`` "rate") or the cap is full ("cap")."""

    def __init__(self, seconds: float, reason: str):
        super().__init__(f"{reason}: wait {seconds:.1f} s")
        self.seconds, self.reason = seconds, reason


class ModelLimiter:
    """Acquire a slot under a model's concurrency cap and requests-per-minute limit."""

    def __init__(
        self, redis_client, prefix: str, model_id: int, cap: int, rpm: int, lease_seconds: float
    ):
        self.redis = redis_client
        self.keys = keys_for(prefix, model_id)
        self.cap = max(0, int(cap))
        self.rpm = max(0, int(rpm))
        self.lease_ms = int(lease_seconds * 1000)
        # Tokens held right now; the heartbeat thread renews their leases.
        self.held: set[str] = set()
        self.script = redis_client.register_script(ACQUIRE)

    async def acquire(self, park_after: float | None = None) -> str:
        """Wait until a slot is free, take it and return its token.

        With ``park_after``, raise ``MustWait`` instead of waiting that long or longer:
        for the rate window at once (Redis knows when the oldest request ages out), for a
        concurrency slot held by other workers once it has been full that long.
        """
        token = uuid.uuid4().hex
        started = time.monotonic()
        while True:
            ok, wait_ms = await self.script(
                keys=list(self.keys),
                args=[self.cap, self.rpm, self.lease_ms, token, RATE_WINDOW_MS],
            )
            if int(ok) == 1:
                self.held.add(token)
                return token
            # Concurrency waits are short; rate waits sleep until the oldest request ages out.
            delay = (int(wait_ms) / 1000) if int(wait_ms) > 0 else 0.01
            if park_after is not None:
                if int(wait_ms) > 0 and delay >= park_after:
                    raise MustWait(delay, "rate")
                if int(wait_ms) <= 0 and time.monotonic() - started >= park_after:
                    raise MustWait(park_after, "cap")
            await asyncio.sleep(min(5.0, delay) + random.uniform(0, 0.01))

    async def release(self, token: str) -> None:
        """Give the concurrency slot back (the rate-limit entry stays for its minute)."""
        self.held.discard(token)
        try:
            await self.redis.zrem(self.keys[0], token)
        except (redis.RedisError, OSError):
            pass  # the lease expires by itself; the call's answer must not be lost for this

    @asynccontextmanager
    async def slot(self):
        """Hold one slot for the duration of the block."""
        token = await self.acquire()
        try:
            yield token
        finally:
            await asyncio.shield(self.release(token))
