"""The RQ dashboard (rq-dashboard package) mounted inside the app, admin role only.

rq-dashboard has no auth and its POSTs carry no form token; its script does send the
``_csrf_token`` cookie back as an ``X-CSRFToken`` header, so we set that cookie to
Flask-WTF's token and let CSRFProtect check every POST like any other form.

Escaping: rq-dashboard renders job data with underscore templates, most of them through
``<%= %>``, which inserts text as HTML. ``templates/rq_dashboard/{queues,workers,jobs,job}.html``
override its pages (the app's template folder wins over a blueprint's) with every
interpolation as ``<%- %>`` (escaped), so a description, call string, result or traceback
is shown as text. Our own jobs also describe themselves with ids and counts only. When
upgrading rq-dashboard, copy its new templates and replace ``<%=`` again:
tests/security/test_rq_dashboard.py fails while any page still has one.
"""

from __future__ import annotations

import rq_dashboard
from flask import abort, current_app, redirect, request, url_for
from flask_wtf.csrf import generate_csrf
from rq.exceptions import NoSuchJobError

from llmadmin.auth import require_admin
from llmadmin.errorpages import render_error
from llmadmin.queues import get_redis

DASHBOARD_URL = "/admin/rq"
STATE_CHANGING_ENDPOINTS = {"rq_dashboard.requeue_all"}


def init_app(app) -> None:
    """Mount the dashboard blueprint under /admin/rq behind the admin check."""
    bp = rq_dashboard.blueprint
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    if "rq_dashboard" not in app.blueprints:
        # The blueprint object is a module-level singleton: hooks are registered on it once.
        if not getattr(bp, "_llmadmin_guarded", False):
            bp.before_request(_guard)
            bp.after_request(_set_csrf_cookie)
            bp._llmadmin_guarded = True
        app.register_blueprint(bp, url_prefix=DASHBOARD_URL)
    rq_dashboard.web.setup_rq_connection(app)
    app.register_error_handler(NoSuchJobError, _no_such_job)


def _no_such_job(exc: NoSuchJobError):

    return render_error(404, "This job no longer exists (it finished, expired or was deleted).")


def _guard():
    require_admin()
    if request.method == "GET" and request.endpoint in STATE_CHANGING_ENDPOINTS:
        # rq-dashboard accepts GET here; a link or an <img> could then requeue jobs
        # without any CSRF token, so only the (CSRF-checked) POST is allowed.
        abort(405)
    args = request.view_args or {}
    if request.endpoint == "rq_dashboard.jobs_overview" and args.get("queue_name") is None:
        # Its Jobs tab shows RQ's queue "default", which nothing here uses: show ours.
        return redirect(
            url_for(
                "rq_dashboard.jobs_overview",
                instance_number=args.get("instance_number", 0),
                queue_name=current_app.config["LLM_QUEUE"],
                registry_name=args.get("registry_name", "queued"),
                per_page=args.get("per_page", "8"),
                order=args.get("order", "asc"),
                page=args.get("page", "1"),
            )
        )
    # Use our own client so the embedded server is started on demand and the
    # connection matches the one the app and the workers use.

    current_app.redis_conn = get_redis()


def _set_csrf_cookie(response):
    if request.method == "GET" and response.mimetype == "text/html":
        response.set_cookie(
            "_csrf_token",
            generate_csrf(),
            path=DASHBOARD_URL,
            samesite="Strict",
            secure=request.is_secure,
            httponly=False,
        )
    return response
