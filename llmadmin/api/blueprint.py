"""The ``/api/v1`` blueprint and what every request goes through: a token, a rate, a size.

A request is authenticated only by ``Authorization: Bearer lla_…``. Browser cookies are never
looked at here, so a request that only carries a session cookie is refused (401) and a forged
cross-site request cannot use a signed-in browser: that is why the blueprint is exempt from
CSRF. The token's person becomes ``current_user`` for this request only (no session is
written), so services, scoping and the audit log see the person behind the token.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _

from llmadmin.errors import (
    AuthenticationFailed,
    MalformedRequest,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from llmadmin.extensions import login_manager
from llmadmin.services import api_tokens

bp = Blueprint("api", __name__, url_prefix="/api/v1", static_folder="static")

MAX_ID = 2**31 - 1
# Served without a token: the description of the API and its docs page.
PUBLIC_ENDPOINTS = {"api.openapi_json", "api.docs", "api.static"}


@bp.before_request
def authenticate():
    """Check the token, count the request against its rate, cap the body size."""
    request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            _(
                "Send your API token as 'Authorization: Bearer lla_…' (browser sessions are not "
                "accepted here; make a token under API tokens in the admin)."
            )
        )
    person, row = api_tokens.authenticate(token.strip())
    # For this request only: Flask-Login's current_user is the token's person; nothing is
    # stored in the session, so no cookie is set.
    login_manager._update_request_context_with_user(person)
    g.api_token_id = row.id
    g.api_token_label = f"“{row.name}” ({row.prefix}…)"
    api_tokens.check_rate(row.id, current_app.config["API_RATE_PER_MINUTE"])
    for key, value in (request.view_args or {}).items():
        if key.endswith("_id") and not 0 < value <= MAX_ID:  # ids are 32-bit columns
            raise NotFound(_("No such row."))


def current_person():
    """Return the person behind the request's token."""
    return g._login_user


def require_admin() -> None:
    """Refuse (403) a member's request to an admin-only operation."""
    if not current_person().is_admin:
        raise PermissionDenied(_("Only administrators may do this."))


def json_body() -> object:
    """Return the decoded JSON body; say where it is malformed (line and column)."""
    if not request.is_json:
        raise ValidationError(_("Send a JSON body with Content-Type: application/json."), "body")
    raw = request.get_data(cache=False)  # past API_MAX_BODY_BYTES: RequestEntityTooLarge (413)
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise MalformedRequest(
            _("The body is not UTF-8 (byte %(n)s).", n=exc.start), "body"
        ) from exc
    except json.JSONDecodeError as exc:
        raise MalformedRequest(
            _(
                "Malformed JSON at line %(line)s, column %(column)s: %(reason)s.",
                line=exc.lineno,
                column=exc.colno,
                reason=exc.msg,
            ),
            "body",
        ) from exc
