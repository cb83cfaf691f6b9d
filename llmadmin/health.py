"""``/healthz`` for load balancers and monitoring, the "queue unreachable" banner, the favicon."""

from __future__ import annotations

import time

import redis
from flask import Blueprint, current_app, jsonify, send_from_directory
from rq import Queue, Worker
from sqlalchemy import case, func, select, text

from llmadmin import queues
from llmadmin.extensions import csrf, db
from llmadmin.models import Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import PENDING, QUEUED
from llmadmin.queues import all_queue_names, get_redis

bp = Blueprint("health", __name__)
_BANNER_CACHE_SECONDS = 5.0


def _database() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        # Waiting starts when the task was queued (or asked to run), not when it was created:
        # a re-run of an old task is not old work.
        waiting_since = case(
            (Task.status == QUEUED, func.coalesce(Task.queued_at, Task.run_requested_at)),
            else_=Task.run_requested_at,
        )
        oldest = db.session.execute(
            select(func.min(func.coalesce(waiting_since, Task.created_at))).where(
                (Task.status == QUEUED)
                | ((Task.status == PENDING) & Task.run_requested_at.is_not(None))
            )
        ).scalar()
        db.session.commit()
        age = round((utcnow() - oldest).total_seconds(), 1) if oldest else 0.0
        return {"ok": True, "oldest_pending_age_seconds": age}
    except Exception as exc:  # report any database failure, never raise from a health check
        db.session.rollback()
        return {"ok": False, "error": type(exc).__name__}


def _queues() -> dict:

    try:
        connection = get_redis()
        connection.ping()
        depths = {name: Queue(name, connection=connection).count for name in all_queue_names()}
        workers = Worker.count(connection=connection)
        return {"ok": True, "queue_depths": depths, "live_workers": workers}
    except (redis.RedisError, OSError, RuntimeError) as exc:
        return {"ok": False, "error": type(exc).__name__}


@bp.route("/healthz")
@csrf.exempt
def healthz():
    """Report database, Redis, workers, queue depths and the oldest pending age."""
    database, queues = _database(), _queues()
    degraded = not database["ok"] or not queues["ok"] or queues.get("live_workers", 0) == 0
    body = {"status": "degraded" if degraded else "ok", "database": database, "redis": queues}
    return jsonify(body), 503 if degraded else 200


def queue_reachable_cached() -> bool:
    """Tell (cached for a few seconds) whether Redis answers, for the admin banner."""
    cache = current_app.extensions.setdefault("llmadmin.queue_ok", {"at": 0.0, "ok": True})
    if time.monotonic() - cache["at"] > _BANNER_CACHE_SECONDS:
        # Looked up on the module at call time (tests and the outbox swap it).
        cache.update(at=time.monotonic(), ok=queues.redis_available())
    return cache["ok"]


@bp.get("/favicon.ico")
def favicon():
    """Serve the icon every browser asks for (without it, each page logs a 404)."""
    return send_from_directory(current_app.static_folder, "favicon.ico", max_age=86400)


def init_app(app) -> None:
    """Register /healthz and the banner flag for templates."""
    app.register_blueprint(bp)

    @app.context_processor
    def queue_banner():
        return {"queue_reachable": queue_reachable_cached}
