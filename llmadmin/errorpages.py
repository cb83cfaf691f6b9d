"""Friendly error pages (HTML) and JSON errors for API and fetch requests."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import flash, jsonify, redirect, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from llmadmin.database import is_transient_error
from llmadmin.extensions import db

logger = logging.getLogger(__name__)

MESSAGES = {
    400: _l("The request could not be understood."),
    401: _l("Please sign in."),
    403: _l("You do not have access to this page."),
    404: _l("Not found."),
    405: _l("This action is not allowed here."),
    409: _l("This cannot be done in the current state."),
    410: _l("This is gone."),
    413: _l("The request is too large."),
    500: _l("Something went wrong on our side; the error was logged."),
    503: _l("The service is unavailable right now; please try again in a moment."),
}


def wants_json() -> bool:
    """Tell whether the client expects JSON rather than a page."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


API_PREFIX = "/api/v1"
GATEWAY_PREFIX = "/v1"  # the OpenAI-compatible gateway
API_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def api_error(status: int, message: str, *, code: str | None = None, field=None, **extra):
    """Return the JSON API's one error shape: {"error": {"code", "message", "field"}}."""
    body = {"code": code or API_CODES.get(status, "error"), "message": message, "field": field}
    return jsonify(error={**body, **extra}), status


def render_error(code: int, message: str | None = None):
    """Render ``code`` as JSON or as a page with a human message."""
    message = str(message or MESSAGES.get(code) or _("Error."))
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        return api_error(code, message)
    if request.path == GATEWAY_PREFIX or request.path.startswith(GATEWAY_PREFIX + "/"):
        # OpenAI's shape, so the SDKs raise their classes (llmadmin/gateway/errors.py).
        kind = "server_error" if code >= 500 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": None, "code": None}
        return jsonify(error=error), code
    if wants_json():
        return jsonify(error=message, status=code), code
    return render_template("error.html", code=code, message=message), code


def _same_host_referrer() -> str | None:
    """Return the Referer when it is a page of this site (a forged POST comes from elsewhere)."""
    referrer = request.referrer
    if referrer and urlsplit(referrer).netloc == request.host:
        return referrer
    return None


def init_app(app) -> None:
    """Register the error handlers."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        message = _("Your form expired or was sent without its security token; please try again.")
        back = _same_host_referrer()
        if wants_json() or request.method != "POST" or not back:
            return render_error(400, message)
        flash(message, "error")
        return redirect(back)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 401:
            if not current_user.is_authenticated and not wants_json():
                return app.login_manager.unauthorized()
        # Our own sentence for every code we know; werkzeug's English description otherwise.
        return render_error(exc.code or 500, MESSAGES.get(exc.code or 500, exc.description))

    @app.errorhandler(DataError)
    def data_error(exc: DataError):
        # The database refused a value taken from the request (a NUL byte in a search, an id
        # too large for its column, a negative page): the request is bad, not the server.
        logger.info("rejected value on %s %s: %s", request.method, request.path, exc.orig)
        db.session.rollback()
        return render_error(400, _("The request contains a value that cannot be used here."))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(exc):
        # Locked past the busy timeout, connection lost, server restarting, every pooled
        # connection busy: transient. The transaction was rolled back, so nothing was
        # half-written; say so and ask for a retry.
        if not isinstance(exc, PoolTimeout) and not is_transient_error(exc):
            return unexpected_error(exc)
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        db.session.rollback()
        body, status = render_error(
            503,
            _(
                "The database is busy or unreachable right now; nothing was "
                "changed. Please try again in a moment."
            ),
        )
        return body, status, {"Retry-After": "5"}

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.path)
        # A failed statement leaves the transaction aborted (PostgreSQL refuses every later
        # query in it); roll back so the error page and after-request hooks can still query.
        db.session.rollback()
        return render_error(500)
