"""LLMWorker's re-registration after Redis lost its data (FLUSHALL, restart without persistence)."""

import fakeredis
from rq import Worker, worker_registration

from llmadmin.worker_class import LLMWorker, _forget


def _worker():
    connection = fakeredis.FakeRedis()
    worker = LLMWorker(["llm"], connection=connection, name="w1")
    worker.register_birth()
    return worker, connection


def test_a_working_worker_that_redis_forgot_registers_again():
    worker, connection = _worker()
    worker.in_work_loop = True
    connection.flushall()
    assert Worker.count(connection=connection) == 0
    assert worker.ensure_registered() is True
    assert Worker.count(connection=connection) == 1
    assert connection.hget(worker.key, "queues") == b"llm"
    assert worker.ensure_registered() is False, "already registered: nothing to do"


def test_a_worker_whose_loop_ended_is_not_brought_back():
    """It is being replaced by a fresh worker: re-registering it would count it twice."""
    worker, connection = _worker()
    connection.flushall()
    assert worker.in_work_loop is False
    assert worker.ensure_registered() is False
    assert Worker.count(connection=connection) == 0


def test_forget_removes_a_replaced_workers_registration():
    worker, connection = _worker()
    assert connection.sismember(worker_registration.REDIS_WORKER_KEYS, worker.key)
    _forget(worker)
    assert Worker.count(connection=connection) == 0 and not connection.exists(worker.key)


def test_one_scheduler_thread_per_site_moves_due_jobs(app):
    """Every worker runs a scheduler thread; only the lock holder moves due jobs to the queue."""
    from datetime import UTC, datetime, timedelta

    from llmadmin.queues import get_queue, get_redis
    from llmadmin.worker_class import SchedulerThread

    queue = get_queue("llm")
    job = queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "builtins.print", "hi")
    assert job.get_status() == "scheduled" and job.id not in queue.job_ids
    first = SchedulerThread(["llm", "reports"], get_redis(), "test")
    second = SchedulerThread(["llm", "reports"], get_redis(), "test")
    assert first.holds_lock() and first.holds_lock(), "the holder renews its lock"
    assert not second.holds_lock(), "one scheduler per site"
    first.scheduler.prepare_registries(first.queue_names)
    first.scheduler.enqueue_scheduled_jobs()
    assert job.id in queue.job_ids
    first.stopping.set()
    first.renew(keys=[first.lock_key], args=[first.token, 1])  # what stop() does
    import time

    time.sleep(0.01)
    assert second.holds_lock(), "another worker takes over when the holder stops"


def test_a_worker_that_recorded_its_death_is_not_brought_back():
    """The housekeeping thread may run between RQ's death record and the end of work()."""
    worker, connection = _worker()
    worker.in_work_loop = True
    worker.register_death()
    assert Worker.count(connection=connection) == 0
    assert worker.ensure_registered() is False, "a dead worker registered again"
    assert Worker.count(connection=connection) == 0
