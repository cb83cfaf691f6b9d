"""The engine's set of small HTTP clients."""

import asyncio

import httpx

from llmadmin.llm.pool import ClientPool


def test_a_call_goes_to_the_client_with_the_fewest_calls_in_flight():
    async def scenario():
        pool = ClientPool(max_connections=8, per_client=4)
        try:
            first, second, third = pool.take(), pool.take(), pool.take()
            pool.give_back(second)  # first has two calls in flight, second none now
            return pool.clients, first, second, third, pool.take()
        finally:
            await pool.aclose()

    clients, first, second, third, fourth = asyncio.run(scenario())
    assert len(clients) == 2 and first is not second and third is first
    assert fourth is second


def test_the_clients_neither_keep_nor_send_cookies():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, json={})

    async def scenario():
        pool = ClientPool(max_connections=4, transport=httpx.MockTransport(handler))
        client = pool.take()
        try:
            for _ in range(2):
                await client.get("http://llm.test/v1/models")
            client.cookies.set("extra", "1")
            await client.get("http://llm.test/v1/models")
            return len(client.cookies)
        finally:
            await pool.aclose()

    assert asyncio.run(scenario()) == 0 and seen == [None, None, None]
