"""The OpenAI-compatible gateway, ``/v1``: point any OpenAI client at llmadmin with a token.

``GET /v1/models``, ``POST /v1/chat/completions`` (plain and streamed), ``/v1/files`` and
``/v1/batches`` (OpenAI's Batch API over Batch rows). Every call is a
task run by the worker like any other (limits, breaker, retries, cost, audit, the admin's
lists). Errors have OpenAI's shape (``errors.py``) so the official SDKs raise the right
classes; the token check (``blueprint.py``) and the error helpers are shared by every
``/v1`` endpoint.
"""

from __future__ import annotations

from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from llmadmin.errors import LLMAdminError
from llmadmin.extensions import csrf, db
from llmadmin.gateway import batches, chat, files, models  # noqa: F401  (routes)
from llmadmin.gateway.blueprint import bp
from llmadmin.gateway.errors import GatewayError, from_llmadmin, respond


@bp.errorhandler(GatewayError)
def gateway_error(exc: GatewayError):
    """Answer a gateway error."""
    db.session.rollback()
    return respond(exc)


@bp.errorhandler(LLMAdminError)
def llmadmin_error(exc: LLMAdminError):
    """Answer one of our errors in OpenAI's shape."""
    db.session.rollback()
    return respond(from_llmadmin(exc))


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Answer werkzeug's errors (404, 405, 413, …) in OpenAI's shape."""
    status = exc.code or 500
    messages = {
        404: _(
            "Unknown request URL. This gateway serves /v1/models, /v1/chat/completions, "
            "/v1/files and /v1/batches."
        ),
        405: _("This method is not allowed on this URL."),
        413: _("The request body is larger than this gateway allows."),
    }
    message = messages.get(status) or exc.description or exc.name
    return respond(GatewayError(status, str(message), "invalid_request_error"))


def init_app(app) -> None:
    """Register the gateway; like the JSON API it takes a token, never a cookie (no CSRF)."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
