"""The RQ worker class llmadmin runs, and the loop that keeps it alive through Redis outages.

Task chunks (``execute_tasks``) are not forked: the job hands its chunk to the process's
engine (``engine.engine``), which runs the chunks of every model side by side, and the
worker goes on taking jobs until the engine holds ENGINE_MAX_TASKS tasks. Other jobs
(exports, bulk actions) keep RQ's fork-per-job isolation.

On SIGTERM RQ's parent stops taking jobs and waits for the running one. The engine (and
a forked job process, which gets SIGTERM forwarded) drains: in-flight calls finish
within WORKER_DRAIN_SECONDS and every unfinished task goes back to the queue, so nothing
is left RUNNING.

RQ's ``work()`` retries only its blocking dequeue when Redis goes away; an error in any
other step (heartbeat, registry cleaning, job monitoring) makes it quit. A worker
deployment must not die with Redis, so ``work_until_stopped`` starts a fresh worker
once Redis answers again, and ``ensure_registered`` puts a worker that Redis forgot
(FLUSHALL, restart without persistence) back into ``rq:workers`` so /healthz and the
dashboard see it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable

import redis
from rq import Worker, worker_registration
from rq.scheduler import RQScheduler
from rq.worker import WorkerStatus

from llmadmin.engine.engine import current_engine
from llmadmin.engine.executor import request_drain
from llmadmin.queues import REDIS_OUTAGE

logger = logging.getLogger(__name__)

# Jobs the engine runs inside the worker process instead of a forked job process.
ENGINE_JOBS = frozenset({"llmadmin.jobs.tasks.execute_tasks"})
# RQ's loop beats three times per job (after the dequeue, after the job, before the next
# dequeue), two Redis round trips each: a third of a gateway job's bookkeeping. The worker's
# key lives worker_ttl + 60 s (at least job_monitoring_interval + 60 s), so one beat every
# few seconds keeps it alive just the same.
HEARTBEAT_EVERY_SECONDS = 5.0


class LLMWorker(Worker):
    def execute_job(self, job, queue) -> None:
        """Hand task chunks to the engine without forking; fork for every other job."""
        if job.func_name in ENGINE_JOBS and current_engine() is not None:
            self.prepare_execution(job)
            self.perform_job(job, queue)  # returns as soon as the engine accepted the chunk
            self._state = WorkerStatus.IDLE  # written by the next dequeue, one round trip less
            return
        super().execute_job(job, queue)

    _beaten_at: float | None = None

    def heartbeat(self, timeout=None, pipeline=None) -> None:
        """RQ's heartbeat; a plain one (no timeout, no pipeline) at most every few seconds."""
        plain = timeout is None and pipeline is None
        if plain and self._beaten_at is not None:
            if time.monotonic() - self._beaten_at < HEARTBEAT_EVERY_SECONDS:
                return
        super().heartbeat(timeout, pipeline)
        if plain:
            self._beaten_at = time.monotonic()

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Take no job while the engine is full: other workers take them meanwhile."""
        engine = current_engine()
        while engine is not None and engine.full() and not self._stop_requested:
            self.heartbeat()
            time.sleep(0.2)
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def setup_work_horse_signals(self) -> None:
        """In the job process: Ctrl-C is the parent's business; SIGTERM means drain."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _drain_on_sigterm)

    def handle_warm_shutdown_request(self) -> None:
        """Drain the engine and forward the warm shutdown to the running job process."""
        super().handle_warm_shutdown_request()
        if current_engine() is not None:
            request_drain()
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    in_work_loop = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._registration_lock = threading.Lock()

    def work(self, *args, **kwargs):
        """RQ's work loop, remembering whether it runs (see ``ensure_registered``)."""
        self.in_work_loop = True
        try:
            return super().work(*args, **kwargs)
        finally:
            self.in_work_loop = False

    def register_death(self, *args, **kwargs) -> None:
        """Close the door on ``ensure_registered`` before recording the death.

        RQ records the death inside ``work()``; without this the housekeeping thread
        could register the dying worker again between the two.
        """
        with self._registration_lock:
            self.in_work_loop = False
            super().register_death(*args, **kwargs)

    def ensure_registered(self) -> bool:
        """Register this worker again if Redis lost it; return True when it had to.

        Called from the housekeeping thread, so it only touches this worker's own keys;
        a worker whose loop has ended (it is being replaced) is never brought back.
        """
        with self._registration_lock:
            if not self.in_work_loop or self.birth_date is None:
                return False
            if self.connection.sismember(worker_registration.REDIS_WORKER_KEYS, self.key):
                return False
            with self.connection.pipeline() as pipeline:
                pipeline.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, pipeline)
                pipeline.expire(self.key, self.worker_ttl + 60)
                pipeline.execute()
        logger.warning("worker %s: Redis had forgotten this worker; registered it again", self.name)
        return True


def _drain_on_sigterm(signum, frame) -> None:

    request_drain()


def work_until_stopped(
    make_worker: Callable[[], LLMWorker],
    *,
    burst: bool,
    on_worker=None,
    max_backoff: float = 30.0,
    **work_kwargs,
) -> None:
    """Run ``make_worker().work()`` again and again until a stop is requested.

    A run that ends without a stop request ended on a Redis error: wait for the job
    process RQ may have left running, then wait (with backoff) until Redis answers and
    start a new worker. SIGTERM/SIGINT during that wait end the loop.
    """
    stop = threading.Event()
    backoff = 1.0
    while True:
        worker = make_worker()
        if on_worker:
            on_worker(worker)
        try:
            worker.work(burst=burst, **work_kwargs)
        except REDIS_OUTAGE as exc:
            logger.warning("worker %s: lost Redis (%s)", worker.name, exc)
        # RQ marks a warm shutdown with _shutdown_requested_date (_stop_requested only when busy).
        if burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            return
        _reap_orphan_horse(worker)
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            while not stop.is_set():
                if _redis_answers(worker.connection):
                    break
                logger.warning(
                    "worker %s: Redis unreachable; retrying in %.0f s", worker.name, backoff
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if stop.is_set():
            return
        _forget(worker)
        backoff = 1.0
        logger.info("worker %s: Redis is back; starting a new worker", worker.name)


def _forget(worker: Worker) -> None:
    """Remove a replaced worker's registration: its death may not have been recorded, and
    with a fixed ``--name`` the next worker's birth would clash with it."""
    with contextlib.suppress(*REDIS_OUTAGE), worker.connection.pipeline() as pipeline:
        worker_registration.unregister(worker, pipeline)
        pipeline.delete(worker.key)
        pipeline.execute()


def _redis_answers(connection) -> bool:
    try:
        return bool(connection.ping())
    except REDIS_OUTAGE:
        return False


def _reap_orphan_horse(worker: Worker) -> None:
    """Wait for a job process the failed run left behind, so two never run at once."""
    pid = getattr(worker, "_horse_pid", 0)
    if not pid:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class SchedulerThread(threading.Thread):
    """RQ's scheduler as a thread of a worker; one per site works, elected by a short lock.

    ``Worker.work(with_scheduler=True)`` forks a scheduler process in every worker (≈ 77 MB
    each), and RQ's scheduler lock lives 61 s, so a killed scheduler stops parked tasks for
    a minute. Here every worker runs this light thread; the one holding a 5-s lock (renewed
    each second) moves due jobs (parked tasks, deferred chunks) from RQ's
    ScheduledJobRegistry to their queues with RQ's own ``enqueue_scheduled_jobs``, and
    another takes over within 5 s when it dies.
    """

    LOCK_MS = 5000

    def __init__(self, queue_names: list[str], connection, prefix: str, interval: float = 1.0):
        super().__init__(name="llmadmin-scheduler", daemon=True)
        self.scheduler = RQScheduler(queue_names, connection=connection)
        self.queue_names = list(queue_names)
        self.connection = connection
        self.lock_key = f"{prefix}:scheduler-lock"
        self.token = uuid.uuid4().hex
        self.interval = interval
        self.stopping = threading.Event()
        self.renew = connection.register_script(RENEW_LOCK)

    def holds_lock(self) -> bool:
        """Take the site's scheduler lock, or renew it if this thread holds it."""
        if self.connection.set(self.lock_key, self.token, nx=True, px=self.LOCK_MS):
            return True
        return bool(self.renew(keys=[self.lock_key], args=[self.token, self.LOCK_MS]))

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                if self.holds_lock():
                    self.scheduler.prepare_registries(self.queue_names)
                    self.scheduler.enqueue_scheduled_jobs()
            except (redis.RedisError, OSError) as exc:
                logger.warning("scheduler pass skipped: %s", exc)
        with contextlib.suppress(redis.RedisError, OSError):
            self.renew(keys=[self.lock_key], args=[self.token, 1])  # let another take over

    def stop(self) -> None:
        """Stop moving jobs and give the lock up."""
        self.stopping.set()
        self.join(timeout=5)


RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
