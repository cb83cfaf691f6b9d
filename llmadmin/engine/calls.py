"""The calls of one task: breaker, limits, the HTTP call, retries, and when to park.

``TaskCalls`` is the half of a ``ChunkRunner`` (``engine.executor``) that runs inside the
event loop for one task at a time: it asks the breaker and the shared limits, calls the
model, records the outcome in the runner's writer, and sleeps only short waits; a wait of
PARK_MIN_SECONDS or more parks the task instead (``engine.parking``), carrying its calls,
its last real failure and its breaker wait (``parking.Carried``). The runner's other
half — claims, slots, database steps, drain — stays in ``engine.executor``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from llmadmin.engine import final_error, parking, resilience
from llmadmin.engine.limits import MustWait
from llmadmin.engine.params import CallParams
from llmadmin.engine.parking import Carried
from llmadmin.errors import CircuitOpen, LLMError
from llmadmin.llm import ChatRequest, chat, compute_cost
from llmadmin.queues import REDIS_OUTAGE

logger = logging.getLogger(__name__)

# Set by the worker's SIGTERM handler in the job process (see llmadmin.worker_class).
DRAIN = threading.Event()

PARTIAL_SAVE_SECONDS = 1.0


async def backoff_sleep(seconds: float) -> None:
    """Wait between attempts (a separate function so tests can record the delays)."""
    await asyncio.sleep(seconds)


class TaskCalls:
    """Run one task's calls; the attributes used here are set by ``ChunkRunner``.

    model, ctx (the model's state in this process: pause), breaker, limiter, gate, clients,
    writer, parks, partial_saved, healthy, park_min, breaker_patience, redis_patience, relay.
    """

    def _park(self, task_id: int, seconds: float, reason: str, carried: Carried) -> None:
        """Hand the task back for later: the lane parks it under a scheduled job."""
        self.healthy = False
        self.writer.forget(task_id)
        self.parks.append(parking.Park(task_id, seconds, reason, carried))

    async def _run_one(
        self,
        task_id: int,
        messages: list[dict],
        params: CallParams,
        carried: Carried,
        relay_stream: bool = False,
    ) -> None:
        """Call the model for one task until it has an outcome or must be parked.

        ``carried`` is what this run did before it was parked: the calls made, the last real
        failure (a final error names it, never the breaker) and the breaker wait so far.
        ``relay_stream``: a gateway client reads the answer as a stream (``engine.relay``).
        """
        model = self.model
        request = ChatRequest(
            base_url=model.base_url,
            api_key=model.api_key,
            model=model.model_name,
            messages=messages,
            timeout=model.timeout,
            stream=model.stream or relay_stream,  # a streaming gateway client gets a stream
            **params.sent(),
        )
        streamed: list[str] = []
        on_delta = self._delta_saver(task_id, streamed) if request.stream else None
        started = time.monotonic()
        while True:
            try:  # the breaker and the limits, in one round trip
                token, breaker_dirty = await self._with_redis(
                    lambda: self.gate.enter(self.park_min)
                )
            except CircuitOpen as exc:
                wait = self._breaker_open(task_id, exc, carried, started)
                if wait is None:
                    return
                await asyncio.sleep(wait)
                continue
            except MustWait as wait:
                reason = (
                    f"parked: rate limit of {model.label} ({model.rpm}/min) reached"
                    if wait.reason == "rate"
                    else f"parked: all {model.cap} slots of {model.label} busy"
                )
                self._park(task_id, wait.seconds, reason, carried)
                return
            carried.calls += 1
            try:
                answered = False
                client = self.clients.take()
                try:
                    call_started = time.monotonic()
                    result = await chat(client, request, on_delta=on_delta)
                    answered = True
                finally:  # passed on to the next call, or given back with its round trip
                    self.clients.give_back(client)
                    self.gate.leave(token, ended_well=answered)
                if breaker_dirty:
                    await self._best_effort(self.breaker.record_success())
                cost = compute_cost(
                    result.prompt_tokens, result.completion_tokens, model.price_in, model.price_out
                )
                latency = (time.monotonic() - call_started) * 1000
                self.writer.success(task_id, result, latency, cost, calls=carried.calls)
                self.healthy = True
                return
            except LLMError as exc:
                self.healthy = False
                carried.last_error = exc
                await self._best_effort(self.breaker.record_failure(exc.kind, exc.message))
                delay = resilience.retry_delay(exc, carried.calls, model.max_attempts)
                if delay is None:
                    final = final_error.after_calls(exc, carried.calls, model.max_attempts)
                    self.writer.failure(
                        task_id,
                        final.message,
                        final.kind,
                        (time.monotonic() - started) * 1000,
                        "".join(streamed) or None,
                        calls=carried.calls,
                        frame=final.frame,
                    )
                    return
                streamed.clear()
                self.relay.reset(task_id)  # the text a gateway client got so far is void
                if resilience.should_park(delay, self.park_min):
                    self._park_after_failure(task_id, exc, delay, carried)
                    return
                await backoff_sleep(delay)

    def _breaker_open(
        self, task_id: int, exc: CircuitOpen, carried: Carried, started: float
    ) -> float | None:
        """Handle the model's open breaker: give up or park (None), or a short wait to sleep."""
        model = self.model
        wait = resilience.breaker_wait(
            exc.retry_after, carried.breaker_waited, self.breaker_patience
        )
        if wait is None:
            final = final_error.breaker_gave_up(
                exc, carried.last_error, carried.calls, carried.breaker_waited, model.label
            )
            elapsed = (time.monotonic() - started) * 1000
            self.writer.failure(
                task_id, final.message, final.kind, elapsed, calls=carried.calls, frame=final.frame
            )
            return None
        carried.breaker_waited += wait
        if resilience.should_park(wait, self.park_min):
            reason = f"parked: circuit breaker of {model.label} open"
            self.ctx.pause(wait, reason)
            self._park(task_id, wait, reason, carried)
            return None
        return wait

    def _park_after_failure(self, task_id: int, exc: LLMError, delay: float, carried) -> None:
        """Park a task whose call failed and will be tried again after ``delay`` seconds."""
        model = self.model
        reason = f"parked: call {carried.calls} failed ({exc.kind}"
        reason += f", Retry-After {exc.retry_after:g} s)" if exc.retry_after else ")"
        if exc.retry_after:  # the server asked the whole model to wait
            self.ctx.pause(
                float(exc.retry_after),
                f"parked: {model.label} asked for a pause (Retry-After {exc.retry_after:g} s)",
            )
        self._park(task_id, delay, reason, carried)

    async def _with_redis(self, step):
        """Run a Redis step of a call, waiting out a Redis outage of up to REDIS_OUTAGE_WAIT_SECONDS.

        A restart or blip of Redis is not the model's fault: it costs the task no attempt.
        When Redis stays away longer, the error reaches ``_reap``, which hands the task back.
        """
        deadline = time.monotonic() + self.redis_patience
        delay = 0.1
        while True:
            try:
                return await step()
            except REDIS_OUTAGE as exc:
                if DRAIN.is_set() or time.monotonic() + delay > deadline:
                    raise
                if delay >= 1.0:
                    logger.warning("Redis unreachable (%s); waiting %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    async def _best_effort(coro) -> None:
        """Breaker bookkeeping must never cost a task its answer."""
        try:
            await coro
        except REDIS_OUTAGE as exc:
            logger.warning("circuit breaker not updated: %s", exc)

    def _delta_saver(self, task_id: int, streamed: list[str]):
        def on_delta(delta: str) -> None:
            streamed.append(delta)
            self.relay.delta(task_id, delta)
            now = time.monotonic()
            if now - self.partial_saved.get(task_id, 0.0) >= PARTIAL_SAVE_SECONDS:
                self.partial_saved[task_id] = now
                self.writer.partial(task_id, "".join(streamed))

        return on_delta
