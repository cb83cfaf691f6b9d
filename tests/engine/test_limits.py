"""Shared per-model limits and breaker state in Redis."""

import asyncio

import redis.asyncio as aioredis

from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.limits import ModelLimiter
from llmadmin.errors import CircuitOpen


def _run(app, coro_factory):
    async def main():
        client = aioredis.Redis.from_url(app.config["REDIS_URL"])
        try:
            return await coro_factory(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_concurrency_cap_is_shared_between_limiters(app):
    async def scenario(client):
        # Two limiters stand for two worker processes.
        a = ModelLimiter(client, "t", 1, cap=2, rpm=0, lease_seconds=30)
        b = ModelLimiter(client, "t", 1, cap=2, rpm=0, lease_seconds=30)
        t1 = await a.acquire()
        await b.acquire()
        third = asyncio.ensure_future(a.acquire())
        await asyncio.sleep(0.1)
        blocked = not third.done()
        await a.release(t1)
        await asyncio.wait_for(third, 2)
        return blocked

    assert _run(app, scenario) is True


def test_expired_lease_frees_its_slot(app):
    async def scenario(client):
        dead = ModelLimiter(client, "t", 2, cap=1, rpm=0, lease_seconds=0.05)
        await dead.acquire()  # never released: its worker "died"
        alive = ModelLimiter(client, "t", 2, cap=1, rpm=0, lease_seconds=30)
        await asyncio.wait_for(alive.acquire(), 2)
        return True

    assert _run(app, scenario)


def test_requests_per_minute_window(app):
    async def scenario(client):
        limiter = ModelLimiter(client, "t", 3, cap=0, rpm=3, lease_seconds=30)
        for _ in range(3):
            await limiter.release(await limiter.acquire())
        ok, wait_ms = await limiter.script(
            keys=list(limiter.keys), args=[0, 3, 30000, "probe", 62000]
        )
        return int(ok), int(wait_ms)

    ok, wait_ms = _run(app, scenario)
    assert (
        ok == 0 and 60_000 < wait_ms <= 62_000
    )  # the 4th waits for the oldest to leave the window


def test_breaker_counts_only_health_failures_and_opens(app):
    async def scenario(client):
        breaker = CircuitBreaker(
            client, "t", 9, "M", threshold=2, cooldown_seconds=60, probe_seconds=5
        )
        assert await breaker.record_failure("rate_limited") is False
        assert await breaker.record_failure("auth") is False
        await breaker.before_call()
        assert await breaker.record_failure("server_error") is False
        assert await breaker.record_failure("timeout") is True
        try:
            await breaker.before_call()
        except CircuitOpen as exc:
            return exc.message
        return None

    message = _run(app, scenario)
    assert message and "circuit breaker open after 2 consecutive failures" in message


def test_half_open_allows_exactly_one_probe(app):
    async def scenario(client):
        breaker = CircuitBreaker(
            client, "t", 10, "M", threshold=1, cooldown_seconds=0.01, probe_seconds=5
        )
        await breaker.record_failure("server_error")
        await asyncio.sleep(0.05)
        await breaker.before_call()  # the probe
        try:
            await breaker.before_call()
        except CircuitOpen:
            second_blocked = True
        else:
            second_blocked = False
        await breaker.record_success()
        await breaker.before_call()
        return second_blocked

    assert _run(app, scenario) is True
