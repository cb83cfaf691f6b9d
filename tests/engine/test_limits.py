"""Shared per-model limits and breaker state in Redis."""

import asyncio

import redis.asyncio as aioredis

from llmadmin.engine.breaker import CircuitBreaker
from llmadmin.engine.limits import RATE_WINDOW_MS, ModelLimiter
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
    """A worker that died never renews its lease: once the lease runs out, its slot is free."""

    async def scenario(client):
        dead = ModelLimiter(client, "t", 2, cap=1, rpm=0, lease_seconds=30)
        alive = ModelLimiter(client, "t", 2, cap=1, rpm=0, lease_seconds=30)
        lost = await dead.acquire()  # never released: its worker "died"
        waiting = asyncio.ensure_future(alive.acquire())
        await asyncio.sleep(0.2)
        blocked_while_leased = not waiting.done()
        # Thirty seconds later, without a heartbeat renewing it, the lease has run out.
        await client.zadd(dead.keys[0], {lost: await redis_now_ms(client) - 1}, xx=True)
        taken = await asyncio.wait_for(waiting, 2)
        holders = {m.decode() for m in await client.zrange(dead.keys[0], 0, -1)}
        return blocked_while_leased, taken, holders

    blocked_while_leased, taken, holders = _run(app, scenario)
    assert blocked_while_leased, "the cap of 1 was not enforced while the lease was alive"
    assert holders == {taken}, "the dead worker's lease should be gone, the new one held"


class Refused(Exception):
    """Stops ``ModelLimiter.acquire`` at its first refusal instead of letting it sleep."""


def _stop_at_first_refusal(limiter: ModelLimiter) -> list[tuple[int, int]]:
    """Record the Lua script's answers; raise Refused on the first refusal."""
    answers: list[tuple[int, int]] = []
    script = limiter.script

    async def recording(keys, args):
        ok, wait_ms = await script(keys=keys, args=args)
        answers.append((int(ok), int(wait_ms)))
        if int(ok) == 0:
            raise Refused
        return ok, wait_ms

    limiter.script = recording
    return answers


async def redis_now_ms(client) -> int:
    """Redis' own clock (the Lua script's), in milliseconds."""
    seconds, micros = await client.time()
    return seconds * 1000 + micros // 1000


async def _age_requests(client, limiter: ModelLimiter, age_ms: int) -> None:
    """Pretend every logged request of ``limiter`` started ``age_ms`` ago (no sleeping)."""
    key = limiter.keys[1]
    started = await redis_now_ms(client) - age_ms
    members = await client.zrange(key, 0, -1)
    await client.zadd(key, dict.fromkeys(members, started), xx=True)


def _rpm_scenario(age_ms: int | None):
    """Three requests at rpm 3 (aged by ``age_ms``), then a fourth: return its script answers."""

    async def scenario(client):
        limiter = ModelLimiter(client, "t", 3, cap=0, rpm=3, lease_seconds=30)
        for _ in range(3):
            await limiter.release(await limiter.acquire())
        if age_ms is not None:
            await _age_requests(client, limiter, age_ms)
        answers = _stop_at_first_refusal(limiter)
        try:
            await limiter.acquire()
        except Refused:
            pass
        return answers

    return scenario


def test_the_request_over_the_rpm_limit_waits_out_a_whole_minute(app):
    """The 4th request at rpm 3 is refused and told to wait a full window (60 s + margin)."""
    answers = _run(app, _rpm_scenario(None))
    assert len(answers) == 1 and answers[0][0] == 0, answers
    assert 60_000 <= answers[0][1] <= RATE_WINDOW_MS, answers


def test_a_request_61_seconds_old_still_counts_against_the_limit(app):
    """The margin: the endpoint may count a request later than we started it."""
    answers = _run(app, _rpm_scenario(61_000))
    assert len(answers) == 1 and answers[0][0] == 0, answers
    assert 0 < answers[0][1] <= RATE_WINDOW_MS - 61_000, answers


def test_a_request_older_than_the_window_no_longer_counts(app):
    answers = _run(app, _rpm_scenario(RATE_WINDOW_MS + 1_000))
    assert answers == [(1, 0)]


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
    assert message and "(circuit breaker open after 2 consecutive failures)" in message


def test_an_open_breaker_names_the_last_failure_and_promises_nothing(app):
    async def scenario(client):
        breaker = CircuitBreaker(
            client, "t", 11, "M", threshold=2, cooldown_seconds=60, probe_seconds=5
        )
        await breaker.record_failure("server_error", "HTTP 502 from http://a/v1: first")
        await breaker.record_failure("server_error", "HTTP 500 from http://a/v1: second")
        try:
            await breaker.before_call()
        except CircuitOpen as exc:
            return exc
        return None

    exc = _run(app, scenario)
    assert exc.cause == "HTTP 500 from http://a/v1: second" and exc.threshold == 2
    assert "paused for about 60 s more" in exc.message
    assert "will be tried" not in exc.message


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
