"""The gate before each call: breaker and limits in one Redis round trip."""

import asyncio

import pytest
import redis.asyncio as aioredis

from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.gate import GIVE_BACK_SECONDS, Gate
from llmadmin.engine.limits import ModelLimiter, MustWait
from llmadmin.errors import CircuitOpen


def _run(app, scenario):
    async def main():
        client = aioredis.Redis.from_url(app.config["REDIS_URL"])
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def _gate(client, model_id, cap=2, threshold=1, cooldown=60):
    limiter = ModelLimiter(client, "g", model_id, cap=cap, rpm=0, lease_seconds=30)
    breaker = CircuitBreaker(client, "g", model_id, "M", threshold, cooldown, probe_seconds=30)
    return Gate(client, limiter, breaker), limiter, breaker


def test_a_finished_lease_goes_back_with_the_next_round_trip(app):
    async def scenario(client):
        gate, limiter, _ = _gate(client, 1, cap=1)
        first, dirty = await gate.enter(park_after=1)
        gate.leave(first)
        second, _ = await gate.enter(park_after=1)  # cap 1: only possible if first went back
        holders = {m.decode() for m in await client.zrange(limiter.keys[0], 0, -1)}
        gate.leave(second)
        await asyncio.sleep(GIVE_BACK_SECONDS * 4)  # no call follows: it goes back by itself
        left = await client.zcard(limiter.keys[0])
        return dirty, holders, second, left

    dirty, holders, second, left = _run(app, scenario)
    assert dirty is False and holders == {second} and left == 0


def test_an_open_breaker_takes_no_lease_and_says_what_failed(app):
    async def scenario(client):
        gate, limiter, breaker = _gate(client, 2)
        await breaker.record_failure("server_error", "HTTP 502 from http://x/v1")
        with pytest.raises(CircuitOpen) as caught:
            await gate.enter(park_after=1)
        return caught.value, await client.zcard(limiter.keys[0])

    error, leases = _run(app, scenario)
    assert leases == 0 and error.cause == "HTTP 502 from http://x/v1" and error.retry_after >= 59
    assert "will" not in error.message


def test_the_half_open_probe_is_granted_only_with_a_lease(app):
    """Cap held elsewhere: a call that cannot start must not hold the breaker's probe."""

    async def scenario(client):
        gate, limiter, breaker = _gate(client, 3, cap=1, cooldown=0)
        await breaker.record_failure("timeout", "timed out")
        other = ModelLimiter(client, "g", 3, cap=1, rpm=0, lease_seconds=30)
        held = await other.acquire()
        with pytest.raises(MustWait):
            await gate.enter(park_after=0.05)
        probe_while_full = await client.exists(breaker.probe_key)
        await other.release(held)
        token, dirty = await gate.enter(park_after=1)
        return probe_while_full, dirty, await client.exists(breaker.probe_key)

    probe_while_full, dirty, probe_after = _run(app, scenario)
    assert probe_while_full == 0 and dirty is True and probe_after == 1
