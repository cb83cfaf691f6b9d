"""Jobs that deliver messages to people (one-time sign-in codes)."""

from __future__ import annotations

from llmadmin.jobs.context import app_context
from llmadmin.services.otp import deliver_login_code


def send_login_code(person_id: int, sealed_code: str, locale: str | None = None) -> str:
    """Send a sign-in code (Fernet-encrypted in the job's arguments) unless it expired or was used.

    ``locale`` is the language the person signed in with (used when they chose none).
    """

    with app_context():
        return deliver_login_code(person_id, sealed_code, locale=locale)
