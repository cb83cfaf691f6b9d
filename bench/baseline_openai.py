"""The same hand-written script with the official client: one AsyncOpenAI, a semaphore.

python bench/baseline_openai.py URL N CAP   # needs `pip install openai`
"""

import asyncio
import sys
import time

from openai import AsyncOpenAI


async def main(url: str, n: int, cap: int) -> None:
    limit = asyncio.Semaphore(cap)
    client = AsyncOpenAI(base_url=url, api_key="sim", max_retries=0, timeout=60)

    async def one(i: int) -> None:
        async with limit:
            reply = await client.chat.completions.create(
                model="sim-chat", messages=[{"role": "user", "content": f"p {i}"}]
            )
            assert reply.choices[0].message.content

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await client.close()
    print(f"{n / elapsed:.1f} {(time.process_time() - cpu) / n * 1000:.3f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
