"""One Redis round trip before each call: give back finished leases, ask the breaker, take a lease.

``limits.ModelLimiter`` (cap and requests per minute) and ``breaker.CircuitBreaker`` each
keep their state in Redis and can be asked alone; before a call the engine asks both at
once here, in one Lua script, so a call costs one Redis round trip besides its HTTP
request instead of three (breaker check, lease, release). The lease of a finished call
is given back by the next call's round trip, or ``GIVE_BACK_SECONDS`` later by itself
when no call follows. A lease is taken only when the breaker lets the call through, and
the breaker's half-open probe is granted only with a lease, so a probe is never held by
a call that cannot start.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid

import redis

from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.limits import RATE_WINDOW_MS, ModelLimiter, MustWait

GIVE_BACK_SECONDS = 0.005

# KEYS: leases, request log, breaker, probe lock.
# ARGV: cap, rpm, lease ms, token, rate window ms, probe ms, then the tokens to give back.
# Returns {0, wait ms}: no lease (cap full: 0, rate window: ms until a request ages out);
# {1, wait ms, last error}: breaker open; {2, dirty}: lease taken (dirty: breaker state to clear).
GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if #ARGV > 6 then redis.call('ZREM', KEYS[1], unpack(ARGV, 7)) end
local cap, rpm, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then return {0, 0} end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  if redis.call('ZCARD', KEYS[2]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now}
  end
end
local state = redis.call('HMGET', KEYS[3], 'opened_until', 'failures', 'last_error')
local until_ms = tonumber(state[1] or '0')
local dirty = tonumber(state[2] or '0') > 0 and 1 or 0
if until_ms ~= 0 then
  if now < until_ms then return {1, until_ms - now, state[3] or ''} end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', tonumber(ARGV[6])) then
    return {1, 1000, state[3] or ''}
  end
  dirty = 1
end
if rpm > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], window + 1000)
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return {2, dirty}
"""


class Gate:
    """The way into a call to one model: its breaker and its limits, in one round trip."""

    def __init__(self, redis_client, limiter: ModelLimiter, breaker: CircuitBreaker):
        self.redis = redis_client
        self.limiter, self.breaker = limiter, breaker
        self.keys = [*limiter.keys, breaker.key, breaker.probe_key]
        self.script = redis_client.register_script(GATE)
        # Lease tokens: unique across processes (a random prefix), cheap per call (a serial).
        self.token_prefix = uuid.uuid4().hex[:16] + ":"
        self.serial = itertools.count()
        self.finished: list[str] = []  # leases of finished calls not given back yet
        self._give_back_soon: asyncio.TimerHandle | None = None

    async def enter(self, park_after: float) -> tuple[str, bool]:
        """Take a lease for one call; return (token, breaker state to clear after a success).

        Raise CircuitOpen while the breaker is open (or another caller probes), MustWait when
        the rate window or a cap held by other workers would keep the call waiting
        ``park_after`` seconds or more; shorter waits for a slot are waited here.
        """
        limiter = self.limiter
        token = f"{self.token_prefix}{next(self.serial)}"
        started = time.monotonic()
        while True:
            given_back, self.finished = self.finished, []
            args = [limiter.cap, limiter.rpm, limiter.lease_ms, token, RATE_WINDOW_MS]
            try:
                answer = await self.script(
                    keys=self.keys, args=[*args, self.breaker.probe_ms, *given_back]
                )
            except BaseException:
                self.finished[:0] = given_back  # given back by the next round trip
                raise
            if int(answer[0]) == 2:
                limiter.held.add(token)
                return token, bool(int(answer[1]))
            if int(answer[0]) == 1:
                raise self.breaker.open_error(int(answer[1]), answer[2])
            wait_ms = int(answer[1])
            delay = wait_ms / 1000 if wait_ms > 0 else 0.01
            if wait_ms > 0 and delay >= park_after:
                raise MustWait(delay, "rate")
            if wait_ms <= 0 and time.monotonic() - started >= park_after:
                raise MustWait(park_after, "cap")
            await asyncio.sleep(min(5.0, delay) + random.uniform(0, 0.01))

    def leave(self, token: str) -> None:
        """Give a finished call's lease back with the next round trip (or very soon)."""
        self.limiter.held.discard(token)
        self.finished.append(token)
        if self._give_back_soon is None:
            loop = asyncio.get_running_loop()
            self._give_back_soon = loop.call_later(GIVE_BACK_SECONDS, self._give_back)

    def _give_back(self) -> None:
        self._give_back_soon = None
        if self.finished:
            asyncio.ensure_future(self.give_back_now())

    async def give_back_now(self) -> None:
        """Give back every finished lease not given back yet (a chunk or the process ends)."""
        tokens, self.finished = self.finished, []
        if not tokens:
            return
        try:
            await self.redis.zrem(self.limiter.keys[0], *tokens)
        except (redis.RedisError, OSError):
            pass  # the leases expire by themselves; no answer is lost for this
