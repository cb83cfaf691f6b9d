"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The status decides which class the official SDKs raise (400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 429 RateLimitError, 5xx InternalServerError...).
``x-should-retry: false`` tells them not to repeat a call the engine already retried.
"""

from __future__ import annotations

import logging

from flask import jsonify
from flask_babel import gettext as _

from llmadmin.errors import (
    AuthenticationFailed,
    Conflict,
    ItemsInvalid,
    LLMAdminError,
    MalformedRequest,
    NotFound,
    PermissionDenied,
    QueueUnavailable,
    RateLimited,
    TooLarge,
    ValidationError,
)

logger = logging.getLogger(__name__)


class GatewayError(Exception):
    """An error to answer in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict:
        """The error's JSON body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def from_llmadmin(exc: LLMAdminError) -> GatewayError:
    """Translate one of our own errors into the gateway's."""
    message = str(exc)
    field = getattr(exc, "field", None)
    if isinstance(exc, AuthenticationFailed):
        return GatewayError(401, message, "invalid_request_error", code="invalid_api_key")
    if isinstance(exc, PermissionDenied):
        return GatewayError(403, message, "invalid_request_error")
    if isinstance(exc, NotFound):
        param, code = getattr(exc, "param", "model"), getattr(exc, "code", "model_not_found")
        return GatewayError(404, message, "invalid_request_error", param, code)
    if isinstance(exc, Conflict):
        return GatewayError(409, message, "invalid_request_error", code="conflict")
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
        return GatewayError(429, message, "requests", None, "rate_limit_exceeded", headers)
    if isinstance(exc, TooLarge):
        return GatewayError(413, message, "invalid_request_error", field)
    if isinstance(exc, ValidationError | MalformedRequest | ItemsInvalid):
        return GatewayError(400, message, "invalid_request_error", field)
    if isinstance(exc, QueueUnavailable):
        return GatewayError(503, message, "server_error", code="queue_unavailable")
    logger.error("gateway: unexpected %s", type(exc).__name__, exc_info=exc)
    return GatewayError(
        500, _("Something went wrong on our side; the error was logged."), "server_error"
    )


def respond(error: GatewayError):
    """Return the Flask response of ``error``."""
    response = jsonify(error.body())
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
