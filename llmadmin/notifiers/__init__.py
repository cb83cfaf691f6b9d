"""Deliver one-time sign-in codes through the configured notifier (OTP_NOTIFIER=log|smtp|sms).

``log`` (development) writes the code to the log and to the Code outbox panel; ``smtp``
sends an email (STARTTLS); ``sms`` POSTs JSON to an SMS gateway. Delivery always runs in
an RQ job (``llmadmin.jobs.notify``), so a slow mail server never holds up a sign-in page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from llmadmin.errors import LLMAdminError
from llmadmin.extensions import db
from llmadmin.models import Person
from llmadmin.models.code_outbox import CodeOutboxEntry  # noqa: F401  registers the table

logger = logging.getLogger(__name__)

NOTIFIERS = ("log", "smtp", "sms")


class NotifyError(LLMAdminError):
    """A message could not be delivered; the job fails (and RQ retries it)."""


@dataclass(frozen=True)
class Message:
    """One message to one person."""

    person_id: int
    person_label: str
    destination: str
    subject: str
    body: str


def destination_for(person: Person, config: dict | None = None) -> str | None:
    """Return where ``person``'s codes go for the configured notifier (None when nowhere)."""
    config = current_app.config if config is None else config
    if config["OTP_NOTIFIER"] == "sms":
        return person.phone or None
    if config["OTP_NOTIFIER"] == "smtp":
        return person.email or None
    return person.email or person.name


def get_notifier(config: dict | None = None, transport=None):
    """Build the notifier OTP_NOTIFIER names (``transport``: an httpx transport for the SMS gateway)."""
    from llmadmin.notifiers.channels import LogNotifier, SmsNotifier, SmtpNotifier

    config = current_app.config if config is None else config
    kind = config["OTP_NOTIFIER"]
    if kind == "smtp":
        return SmtpNotifier(
            config["SMTP_HOST"],
            config["SMTP_PORT"],
            config["SMTP_USER"],
            config["SMTP_PASSWORD"],
            config["SMTP_FROM"],
            config["SMTP_STARTTLS"],
        )
    if kind == "sms":
        return SmsNotifier(
            config["SMS_GATEWAY_URL"], config["SMS_GATEWAY_TOKEN"], transport=transport
        )
    return LogNotifier()


def login_code_message(person: Person, code: str) -> Message:
    """Write the sign-in code message for ``person``."""
    ttl = current_app.config["OTP_TTL_SECONDS"]
    body = (
        f"Your llmadmin sign-in code is {code}. It is valid for {ttl} seconds and can be used once. "
        "If you did not just try to sign in, tell an administrator."
    )
    return Message(
        person_id=person.id,
        person_label=str(person)[:300],
        destination=destination_for(person) or "",
        subject="llmadmin sign-in code",
        body=body,
    )


def deliver_login_code(person_id: int, sealed_code: str, notifier=None) -> str:
    """Send the (encrypted) code to the person unless it is no longer live; return what happened."""
    from llmadmin import crypto
    from llmadmin.services import otp

    person = db.session.get(Person, person_id)
    if person is None or not person.active:
        logger.info("sign-in code not sent: person_id=%s is gone or inactive", person_id)
        return "skipped"
    code = crypto.decrypt(sealed_code)
    if not otp.is_live(person_id, code):
        # Expired or used before this (possibly repeated) delivery: sending it would only confuse.
        logger.info(
            "sign-in code for person_id=%s expired or was used before it was sent", person_id
        )
        return "stale"
    (notifier or get_notifier()).send(login_code_message(person, code))
    logger.info(
        "sign-in code for person_id=%s sent via %s", person_id, current_app.config["OTP_NOTIFIER"]
    )
    return "sent"


def validate_settings(config: dict) -> None:
    """Refuse to start with notifier settings that cannot work."""
    kind = config["OTP_NOTIFIER"]
    if kind not in NOTIFIERS:
        raise RuntimeError(f"OTP_NOTIFIER must be one of {', '.join(NOTIFIERS)} (it is {kind!r}).")
    if kind == "smtp" and not (config["SMTP_HOST"] and config["SMTP_FROM"]):
        raise RuntimeError("OTP_NOTIFIER=smtp needs SMTP_HOST and SMTP_FROM.")
    if kind == "sms" and not config["SMS_GATEWAY_URL"].startswith(("https://", "http://")):
        raise RuntimeError("OTP_NOTIFIER=sms needs SMS_GATEWAY_URL (an http(s) URL).")
    if kind == "log" and config["ENV_NAME"] != "development" and not config.get("TESTING"):
        logger.warning(
            "OTP_NOTIFIER=log outside development: sign-in codes are written to the log and "
            "the Code outbox; use smtp or sms in production."
        )


def init_app(app) -> None:
    """Check the notifier settings and, for the log notifier, add the admin-only Code outbox panel."""
    validate_settings(app.config)
    admin = app.extensions.get("llmadmin.admin")
    if admin is not None and app.config["OTP_NOTIFIER"] == "log":
        from llmadmin.notifiers.outbox_admin import CodeOutboxView

        admin.add_view(
            CodeOutboxView(CodeOutboxEntry, db, name="Code outbox", endpoint="code_outbox")
        )
