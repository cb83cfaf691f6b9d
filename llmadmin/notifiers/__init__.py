"""Deliver one-time sign-in codes through the configured notifier (OTP_NOTIFIER=log|smtp|sms).

``log`` (development) writes the code to the log and to the Code outbox panel; ``smtp``
sends an email (STARTTLS); ``sms`` POSTs JSON to an SMS gateway. Delivery always runs in
an RQ job (``llmadmin.jobs.notify`` -> ``services.otp.deliver_login_code``), so a slow mail
server never holds up a sign-in page.
"""

from __future__ import annotations

import logging

from flask import current_app
from flask_babel import gettext as _

from llmadmin.models import Person
from llmadmin.notifiers.channels import LogNotifier, SmsNotifier, SmtpNotifier
from llmadmin.notifiers.message import Message, NotifyError  # noqa: F401  (public here)

logger = logging.getLogger(__name__)

NOTIFIERS = ("log", "smtp", "sms")


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
    body = _(
        "Your llmadmin sign-in code is %(code)s. It is valid for %(seconds)s seconds and can be "
        "used once. If you did not just try to sign in, tell an administrator.",
        code=code,
        seconds=ttl,
    )
    return Message(
        person_id=person.id,
        person_label=str(person)[:300],
        destination=destination_for(person) or "",
        subject=_("llmadmin sign-in code"),
        body=body,
    )


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
    """Check the notifier settings, so a setting that cannot work stops the start-up."""
    validate_settings(app.config)
