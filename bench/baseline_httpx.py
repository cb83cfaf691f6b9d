"""What an engineer would write by hand: one httpx.AsyncClient, a semaphore, N calls.

python bench/baseline_httpx.py URL N CAP   # prints "<req/s> <cpu ms per request>"
"""

import asyncio
import sys
import time

import httpx


async def main(url: str, n: int, cap: int) -> None:
    limit = asyncio.Semaphore(cap)
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            async with limit:
                body = {"model": "sim-chat", "messages": [{"role": "user", "content": f"p {i}"}]}
                response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
                assert response.json()["choices"][0]["message"]["content"]

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
        print(f"{n / elapsed:.1f} {(time.process_time() - cpu) / n * 1000:.3f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
