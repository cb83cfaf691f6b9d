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


def _counting(gate):
    """Count the gate's round trips."""
    calls = []
    script = gate.script

    async def counted(**kw):
        calls.append(kw["args"][5])  # how many callers the round trip answered
        return await script(**kw)

    gate.script = counted
    return calls


def test_callers_of_one_turn_share_one_round_trip_and_get_what_alone_they_would(app):
    """Cap 2, three callers at once: one round trip, two leases, the third waits for a slot."""

    async def scenario(client):
        gate, limiter, _ = _gate(client, 4, cap=2)
        rounds = _counting(gate)
        results = await asyncio.gather(
            *(gate.enter(park_after=0.05) for _ in range(3)), return_exceptions=True
        )
        return rounds, results, await client.zcard(limiter.keys[0]), set(limiter.held)

    rounds, results, leases, held = _run(app, scenario)
    granted = [r for r in results if isinstance(r, tuple)]
    waited = [r for r in results if isinstance(r, MustWait)]
    assert rounds[0] == 3 and len(granted) == 2 and len(waited) == 1
    assert waited[0].reason == "cap" and leases == 2 and held == {t for t, _ in granted}


def test_the_rate_window_admits_only_its_room_and_says_how_long_the_rest_waits(app):
    async def scenario(client):
        limiter = ModelLimiter(client, "g", 5, cap=0, rpm=2, lease_seconds=30)
        breaker = CircuitBreaker(client, "g", 5, "M", 1, 60, probe_seconds=30)
        gate = Gate(client, limiter, breaker)
        return await asyncio.gather(
            *(gate.enter(park_after=1) for _ in range(3)), return_exceptions=True
        )

    results = _run(app, scenario)
    assert sum(isinstance(r, tuple) for r in results) == 2
    (wait,) = [r for r in results if isinstance(r, MustWait)]
    assert wait.reason == "rate" and wait.seconds > 60


def test_a_half_open_breaker_lets_one_caller_of_a_round_probe(app):
    async def scenario(client):
        gate, limiter, breaker = _gate(client, 6, cap=5, cooldown=0)
        await breaker.record_failure("timeout", "timed out")
        results = await asyncio.gather(
            *(gate.enter(park_after=1) for _ in range(3)), return_exceptions=True
        )
        return results, await client.zcard(limiter.keys[0])

    results, leases = _run(app, scenario)
    probes = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, CircuitOpen)]
    assert len(probes) == 1 and probes[0][1] is True and len(refused) == 2 and leases == 1
    assert refused[0].cause == "timed out"


def test_a_caller_cancelled_while_its_round_trip_runs_gives_its_lease_back(app):
    async def scenario(client):
        gate, limiter, _ = _gate(client, 7, cap=1)
        waiting = asyncio.ensure_future(gate.enter(park_after=1))
        await asyncio.sleep(0)  # asked: the round trip starts in the next turn
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.sleep(GIVE_BACK_SECONDS * 4)
        token, _ = await gate.enter(park_after=1)  # cap 1: only possible if it went back
        return token, set(limiter.held)

    token, held = _run(app, scenario)
    assert held == {token}


def test_a_lease_of_a_call_that_ended_well_passes_to_the_next_call_without_a_round_trip(app):
    """No rate limit, breaker closed: one round trip for a run of calls, the cap still held."""

    async def scenario(client):
        gate, limiter, _ = _gate(client, 8, cap=1)
        rounds = _counting(gate)
        first, _ = await gate.enter(park_after=1)
        gate.leave(first, ended_well=True)
        second, dirty = await gate.enter(park_after=1)
        holders = {m.decode() for m in await client.zrange(limiter.keys[0], 0, -1)}
        gate.leave(second, ended_well=True)
        await asyncio.sleep(GIVE_BACK_SECONDS * 4)  # no call follows: it goes back by itself
        return rounds, first, second, dirty, holders, await client.zcard(limiter.keys[0])

    rounds, first, second, dirty, holders, left = _run(app, scenario)
    assert len(rounds) == 1 and second == first and dirty is False
    assert holders == {first} and left == 0


def test_a_failed_call_or_a_rate_limit_or_an_old_view_of_the_breaker_asks_redis(app, monkeypatch):
    from llmadmin.engine import gate as gate_module

    async def scenario(client):
        gate, limiter, breaker = _gate(client, 9, cap=2)
        rounds = _counting(gate)
        token, _ = await gate.enter(park_after=1)
        gate.leave(token)  # the call failed: its lease goes back, the next call asks Redis
        token, _ = await gate.enter(park_after=1)
        after_failure = len(rounds)
        monkeypatch.setattr(gate_module, "HAND_OVER_SECONDS", 0.0)
        token, _ = await gate.enter(park_after=1)  # a round trip whose view is old at once
        gate.leave(token, ended_well=True)
        await breaker.record_failure("server_error", "HTTP 500")  # seen only by asking
        with pytest.raises(CircuitOpen):
            await gate.enter(park_after=1)
        stale = len(rounds)
        rated = ModelLimiter(client, "g", 10, cap=2, rpm=100, lease_seconds=30)
        rated_gate = Gate(client, rated, CircuitBreaker(client, "g", 10, "M", 1, 60, 30))
        rated_rounds = _counting(rated_gate)
        for _ in range(2):
            token, _ = await rated_gate.enter(park_after=1)
            rated_gate.leave(token, ended_well=True)
        return after_failure, stale, len(rated_rounds), await client.zcard(limiter.keys[0])

    after_failure, stale, rated_rounds, leases = _run(app, scenario)
    assert after_failure == 2 and stale == 4 and rated_rounds == 2
    assert leases == 1  # the failed call's lease went back; one call still holds its own
