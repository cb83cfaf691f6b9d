"""One Redis round trip before the calls that start together: give back finished leases, ask the breaker, take leases.

``limits.ModelLimiter`` (cap and requests per minute) and ``breaker.CircuitBreaker`` each
keep their state in Redis and can be asked alone; before a call the engine asks both at
once here, in one Lua script, so a call costs no Redis round trip of its own besides its
HTTP request: the calls of a model that ask in the same turn of the event loop (a chunk
filling its slots, calls freed by one burst of answers) ask together, and while one round
trip is under way the next callers wait for it and then go together in the next. Each
token is answered as if it had asked alone, in order: leases while the cap and the rate
window have room, and the breaker's half-open probe for the first one only. The lease of
a finished call is given back by the next round trip, or ``GIVE_BACK_SECONDS`` later by
itself when no call follows. A lease is taken only when the breaker lets the call
through, and the probe is granted only with a lease, so a probe is never held by a call
that cannot start.
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
# How old the last round trip's "breaker closed, no failures" may be for a lease to pass on
# to the next call without asking Redis.
HAND_OVER_SECONDS = 1.0
ROUND_MAX = 256  # callers answered by one round trip (Lua's unpack has a limit)

# KEYS: leases, request log, breaker, probe lock.
# ARGV: cap, rpm, lease ms, rate window ms, probe ms, n, then n tokens asking (in order),
# then the tokens to give back.
# Returns {k, dirty, code, wait ms, last error}: the first k tokens got a lease (dirty:
# breaker state to clear after a success); the others none, because of the limits (code 0,
# wait ms: 0 for a full cap, else until the oldest request leaves the rate window) or the
# breaker (code 1, open for wait ms more, or probed by another caller).
GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, rpm, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, probe_ms, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if #ARGV > 6 + n then redis.call('ZREM', KEYS[1], unpack(ARGV, 7 + n)) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local room, rate_bound = n, false
if cap > 0 then room = math.min(room, cap - redis.call('ZCARD', KEYS[1])) end
if room <= 0 then return {0, 0, 0, 0, ''} end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  local free = rpm - redis.call('ZCARD', KEYS[2])
  if free <= 0 then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, 0, 0, tonumber(oldest[2]) + window - now, ''}
  end
  if free < room then room, rate_bound = free, true end
end
local state = redis.call('HMGET', KEYS[3], 'opened_until', 'failures', 'last_error')
local until_ms = tonumber(state[1] or '0')
local dirty = tonumber(state[2] or '0') > 0 and 1 or 0
local code, wait, err = 0, 0, ''
if until_ms ~= 0 then
  if now < until_ms then return {0, 0, 1, until_ms - now, state[3] or ''} end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', probe_ms) then
    return {0, 0, 1, 1000, state[3] or ''}
  end
  dirty, room, rate_bound = 1, 1, false
  if n > 1 then code, wait, err = 1, 1000, state[3] or '' end
end
local leases, log = {}, {}
for i = 1, room do
  leases[2 * i - 1], leases[2 * i] = now + ttl, ARGV[6 + i]
  log[2 * i - 1], log[2 * i] = now, ARGV[6 + i]
end
if rpm > 0 then
  redis.call('ZADD', KEYS[2], unpack(log))
  redis.call('PEXPIRE', KEYS[2], window + 1000)
  if rate_bound then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window - now
  end
end
redis.call('ZADD', KEYS[1], unpack(leases))
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return {room, dirty, code, wait, err}
"""


class Gate:
    """The way into a call to one model: its breaker and its limits, one round trip per turn."""

    def __init__(self, redis_client, limiter: ModelLimiter, breaker: CircuitBreaker):
        self.redis = redis_client
        self.limiter, self.breaker = limiter, breaker
        self.keys = [*limiter.keys, breaker.key, breaker.probe_key]
        self.script = redis_client.register_script(GATE)
        # Lease tokens: unique across processes (a random prefix), cheap per call (a serial).
        self.token_prefix = uuid.uuid4().hex[:16] + ":"
        self.serial = itertools.count()
        self.finished: list[str] = []  # leases of finished calls not given back yet
        # Leases of calls that ended well, still held: the next call takes one without Redis.
        self.spare: list[str] = []
        self.clean_until = 0.0  # until then the last round trip's "breaker closed" holds
        self._give_back_soon: asyncio.TimerHandle | None = None
        self.asking: list[tuple[str, asyncio.Future]] = []  # callers of the next round trip
        self.in_round = False  # a round trip is due or under way
        self._rounds_task: asyncio.Task | None = None

    async def enter(self, park_after: float) -> tuple[str, bool]:
        """Take a lease for one call; return (token, breaker state to clear after a success).

        Raise CircuitOpen while the breaker is open (or another caller probes), MustWait when
        the rate window or a cap held by other workers would keep the call waiting
        ``park_after`` seconds or more; shorter waits for a slot are waited here.
        """
        if self.spare:
            if time.monotonic() < self.clean_until:
                return self.spare.pop(), False  # a lease passed on: no round trip
            self._spare_back()  # a stale view: given back with this caller's round trip
        token = f"{self.token_prefix}{next(self.serial)}"
        started = time.monotonic()
        while True:
            code, wait_ms, last_error = await self._ask(token)
            if code == 2:  # a lease; wait_ms carries "dirty" here
                return token, bool(wait_ms)
            if code == 1:
                raise self.breaker.open_error(wait_ms, last_error)
            delay = wait_ms / 1000 if wait_ms > 0 else 0.01
            if wait_ms > 0 and delay >= park_after:
                raise MustWait(delay, "rate")
            if wait_ms <= 0 and time.monotonic() - started >= park_after:
                raise MustWait(park_after, "cap")
            await asyncio.sleep(min(5.0, delay) + random.uniform(0, 0.01))

    async def _ask(self, token: str) -> tuple[int, int, str | bytes]:
        """Ask with the next round trip; (2, dirty, '') for a lease, else (code, wait ms, error)."""
        future = asyncio.get_running_loop().create_future()
        self.asking.append((token, future))
        if not self.in_round:
            self.in_round = True
            # Kept: the loop holds tasks weakly. It starts after the other callers of this turn.
            self._rounds_task = asyncio.ensure_future(self._rounds())
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result()[0] == 2:
                self.leave(token)  # granted, but its caller is gone: give the lease back
            raise

    async def _rounds(self) -> None:
        """Answer the callers in round trips, one at a time, until none waits."""
        try:
            while True:
                asking = [(token, future) for token, future in self.asking if not future.done()]
                batch, self.asking = asking[:ROUND_MAX], asking[ROUND_MAX:]
                if not batch:
                    return
                await self._round(batch)
        except asyncio.CancelledError:
            for _, future in self.asking:
                future.cancel()
            self.asking = []
            raise
        finally:
            self.in_round = False

    async def _round(self, batch: list[tuple[str, asyncio.Future]]) -> None:
        """One round trip for every caller in ``batch``."""
        limiter = self.limiter
        given_back, self.finished = self.finished, []
        args = [limiter.cap, limiter.rpm, limiter.lease_ms, RATE_WINDOW_MS, self.breaker.probe_ms]
        try:
            granted, dirty, code, wait_ms, last_error = await self.script(
                keys=self.keys, args=[*args, len(batch), *(t for t, _ in batch), *given_back]
            )
        except BaseException as exc:  # each caller gets the error (Redis away: it waits)
            self.finished[:0] = given_back  # given back by the next round trip
            stopped = isinstance(exc, asyncio.CancelledError)
            for _, future in batch:
                if not future.done():
                    future.cancel() if stopped else future.set_exception(exc)
            if stopped:
                raise
            return
        # Leases may pass on between calls while the breaker is closed with no failures
        # counted and no rate window must log each call.
        clean = not limiter.rpm and int(granted) > 0 and not int(dirty) and not int(code)
        self.clean_until = time.monotonic() + HAND_OVER_SECONDS if clean else 0.0
        for index, (token, future) in enumerate(batch):
            if index >= int(granted):
                if not future.done():
                    future.set_result((int(code), int(wait_ms), last_error))
                continue
            limiter.held.add(token)
            if future.done():  # its caller was cancelled meanwhile
                self.leave(token)
            else:
                future.set_result((2, int(dirty), ""))

    def leave(self, token: str, ended_well: bool = False) -> None:
        """Pass a finished call's lease on to the next call, else give it back with the next
        round trip; either way it goes back by itself very soon when no call follows.

        ``ended_well``: the call got an answer (a failure or a cancel gives its lease back,
        and the next call asks Redis: the breaker may have changed).
        """
        if ended_well and time.monotonic() < self.clean_until:
            self.spare.append(token)  # still held (the heartbeat renews it)
        else:
            if not ended_well:
                self.clean_until = 0.0
            self.limiter.held.discard(token)
            self.finished.append(token)
        if self._give_back_soon is None:
            loop = asyncio.get_running_loop()
            self._give_back_soon = loop.call_later(GIVE_BACK_SECONDS, self._give_back)

    def _spare_back(self) -> None:
        """Leases kept for a next call that did not come (soon enough) are given back."""
        for token in self.spare:
            self.limiter.held.discard(token)
        self.finished.extend(self.spare)
        self.spare = []

    def _give_back(self) -> None:
        self._give_back_soon = None
        if self.finished or self.spare:
            # A task: it runs after the callbacks already queued, so a call that is about to
            # start (its slot was refilled in this turn) still takes a spare lease first.
            asyncio.ensure_future(self.give_back_now())

    async def give_back_now(self) -> None:
        """Give back every finished lease not given back yet (a chunk or the process ends)."""
        self._spare_back()
        tokens, self.finished = self.finished, []
        if not tokens:
            return
        try:
            await self.redis.zrem(self.limiter.keys[0], *tokens)
        except (redis.RedisError, OSError):
            pass  # the leases expire by themselves; no answer is lost for this
