"""The JSON API, ``/api/v1``: thin over the services, authenticated by personal API tokens.

Every error answers ``{"error": {"code", "message", "field"}}`` with the status that
``llmadmin.errors.HTTP_STATUS`` gives its exception (400, 401, 403, 404, 409, 413, 422, 429).
"""

from __future__ import annotations

import logging

from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from llmadmin.api import batches, docs, downloads, models, operations, tasks  # noqa: F401
from llmadmin.api.blueprint import bp
from llmadmin.errorpages import MESSAGES, api_error
from llmadmin.errors import ItemsInvalid, LLMAdminError, RateLimited, http_status
from llmadmin.extensions import csrf, db

logger = logging.getLogger(__name__)


@bp.errorhandler(LLMAdminError)
def llmadmin_error(exc: LLMAdminError):
    """Answer one of our errors with its status and the API's error shape."""
    db.session.rollback()
    status, code = http_status(exc)
    extra = {"details": exc.errors} if isinstance(exc, ItemsInvalid) else {}
    body, status = api_error(
        status, str(exc), code=code, field=getattr(exc, "field", None), **extra
    )
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="llmadmin"'
    return body, status, headers


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Answer werkzeug's errors (404, 405, 413, …) in the API's error shape."""
    status = exc.code or 500
    message = getattr(exc, "message", None) or MESSAGES.get(status) or exc.description
    if status == 413:
        message = _("The request body is larger than API_MAX_BODY_BYTES allows.")
    return api_error(status, message, field="body" if status == 413 else None)


def init_app(app) -> None:
    """Register the API; its requests carry a token, never a cookie, so CSRF does not apply."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
