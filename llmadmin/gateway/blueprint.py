"""The ``/v1`` blueprint and what every gateway request goes through: a token and a size.

The token is a personal API token (``Authorization: Bearer lla_…``, as the OpenAI SDKs send
their ``api_key``); its person becomes ``current_user`` for this request only, so the task
it creates, the audit log and the per-person scoping see that person. A per-token rate
(``GATEWAY_RATE_PER_MINUTE``) is off by default: the models' own limits govern the calls.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _

from llmadmin.extensions import login_manager
from llmadmin.gateway.errors import GatewayError
from llmadmin.services import api_tokens

bp = Blueprint("gateway", __name__, url_prefix="/v1")


@bp.before_request
def authenticate():
    """Check the token, count the request against the optional rate, cap the body size."""
    request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GatewayError(
            401,
            _("Send your llmadmin API token as the API key (Authorization: Bearer lla_…)."),
            "invalid_request_error",
            code="invalid_api_key",
        )
    person, row = api_tokens.authenticate(token.strip())
    login_manager._update_request_context_with_user(person)  # this request only, no cookie
    g.api_token_id = row.id
    g.api_token_label = f"“{row.name}” ({row.prefix}…)"
    api_tokens.check_rate(row.id, current_app.config["GATEWAY_RATE_PER_MINUTE"], "gateway")


def current_person():
    """Return the person behind the request's token."""
    return g._login_user


def json_object() -> dict:
    """Return the request's JSON object, or a 400 saying what is wrong with the body."""
    raw = request.get_data(cache=False)  # past API_MAX_BODY_BYTES: 413
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            _(" (line %(line)s, column %(column)s)", line=exc.lineno, column=exc.colno)
            if hasattr(exc, "lineno")
            else ""
        )
        raise GatewayError(
            400,
            _("We could not parse the JSON body of your request%(where)s.", where=where),
            "invalid_request_error",
        ) from exc
    if not isinstance(body, dict):
        raise GatewayError(
            400, _("The request body must be a JSON object."), "invalid_request_error"
        )
    return body
