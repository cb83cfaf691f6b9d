"""The long-lived engine of a worker process: chunks of many models side by side.

RQ's default worker runs one job at a time in a forked process, so a chunk whose calls
hang, or a model that answers in 20 s, holds the worker while every other model's tasks
wait. Here the worker does not fork for task chunks: the ``execute_tasks`` job hands its
chunk to this engine (an asyncio loop in a thread of the worker process) and ends at
once, and the worker goes on taking jobs while the engine runs every accepted chunk
concurrently, each model under its own cap. The RQ job's end means "accepted"; the rows
(and the chunk's heartbeat key, set before the job ends) say how far the tasks got.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import threading

from llmadmin.engine.executor import ChunkRunner, request_drain
from llmadmin.engine.limits import heartbeat_key
from llmadmin.engine.model_settings import ModelSettings
from llmadmin.engine.runtime import Runtime
from llmadmin.extensions import db

logger = logging.getLogger(__name__)

_current: Engine | None = None


def engine_key(prefix: str, host: str, pid: int) -> str:
    """The Redis set of the job ids whose chunks the worker process ``pid`` on ``host`` runs."""
    return f"{prefix}:engine:{host}:{pid}"


def current_engine() -> Engine | None:
    """Return this process's engine, if the worker started one (never a forked child's copy)."""
    if _current is None or _current.pid != os.getpid():
        return None
    return _current


class Engine:
    """An event loop in a thread that runs submitted chunks concurrently."""

    def __init__(self, app, max_tasks: int | None = None, transport=None):
        self.app = app
        self.pid = os.getpid()
        self.max_tasks = max_tasks or app.config["ENGINE_MAX_TASKS"]
        self.transport = transport
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="llmadmin-engine", daemon=True)
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.held = 0  # tasks of accepted chunks not finished yet
        self.chunks: set = set()
        self.starting: dict[int, int] = {}  # tasks of chunks submitted, not started yet
        self.runtime: Runtime | None = None

    def start(self) -> Engine:
        """Start the loop thread and make this the process's engine."""
        global _current
        self.thread.start()
        self.ready.wait(30)
        _current = self
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        with self.app.app_context():
            self.runtime = self.loop.run_until_complete(self._open())
        self.ready.set()
        self.loop.run_forever()
        with self.app.app_context():
            self.loop.run_until_complete(self.runtime.aclose())
        self.loop.close()

    async def _open(self) -> Runtime:
        registry = engine_key(self.app.config["QUEUE_PREFIX"], socket.gethostname(), self.pid)
        return Runtime(self.transport, registry_key=registry)

    def full(self) -> bool:
        """Tell whether the engine holds enough tasks that the worker should not take more."""
        return self.held >= self.max_tasks

    def busy(self) -> bool:
        """Tell whether any chunk is running."""
        return bool(self.chunks)

    def crowded(self, settings: ModelSettings) -> bool:
        """Tell whether two chunks' worth of the model's tasks already wait in this engine.

        Then the worker defers the next chunk of that model (RQ schedules it again a moment
        later), so that one model's backlog never fills a worker and idle workers share it.
        Two, not one: a deferred chunk comes back 1-2 s later (retry interval, scheduler
        pass), and a chunk of a fast model (cap 32, 200 ms: 1.6 s) would run out before it.
        """
        cfg = self.app.config
        chunk = min(cfg["TASK_CHUNK_MAX"], settings.cap * cfg["TASK_CHUNK_FACTOR"])
        ctx = self.runtime.models.get(settings.id)
        with self.lock:
            waiting = self.starting.get(settings.id, 0) + (ctx.waiting if ctx else 0)
        return waiting >= 2 * max(1, chunk)

    def submit(self, job_id: str, task_ids: list[int], settings: ModelSettings) -> None:
        """Accept a chunk (from the worker's thread); it runs beside the others."""
        # Alive before the job ends: the reconciler must never see the chunk without a sign.
        self.runtime.heartbeat.add(heartbeat_key(self.runtime.prefix, job_id))
        with self.lock:
            self.held += len(task_ids)
            self.starting[settings.id] = self.starting.get(settings.id, 0) + len(task_ids)
        future = asyncio.run_coroutine_threadsafe(
            self._run_chunk(job_id, task_ids, settings), self.loop
        )
        self.chunks.add(future)
        future.add_done_callback(self.chunks.discard)

    async def _run_chunk(self, job_id: str, task_ids: list[int], settings: ModelSettings) -> None:
        with self.lock:
            self.starting[settings.id] -= len(task_ids)
        try:
            with self.app.app_context():  # its own session, used only from the lane thread
                try:
                    await ChunkRunner(job_id, task_ids, settings, runtime=self.runtime).run()
                finally:
                    context = contextvars.copy_context()
                    await self.loop.run_in_executor(
                        self.runtime.lane, context.run, db.session.remove
                    )
        except Exception:
            logger.exception("chunk %s failed in the engine; the reconciler will re-queue", job_id)
        finally:
            self.runtime.heartbeat.remove(heartbeat_key(self.runtime.prefix, job_id))
            with self.lock:
                self.held -= len(task_ids)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no chunk runs; return False on timeout."""
        deadline = None if timeout is None else timeout
        waited = 0.0
        while self.chunks:
            if deadline is not None and waited >= deadline:
                return False
            threading.Event().wait(0.1)
            waited += 0.1
        return True

    def stop(self, drain: bool = True, timeout: float = 60) -> None:
        """Drain every chunk (finish calls in flight, hand the rest back) and stop the loop."""
        global _current
        if not self.thread.is_alive():
            return
        if drain and self.chunks:
            request_drain()
            self.wait_idle(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        if _current is self:
            _current = None
