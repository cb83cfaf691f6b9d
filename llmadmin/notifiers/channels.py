"""The notifiers: log (development, with the Code outbox), SMTP and an SMS HTTP gateway."""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import delete

from llmadmin.extensions import db
from llmadmin.models.base import utcnow
from llmadmin.models.code_outbox import CodeOutboxEntry
from llmadmin.notifiers.message import Message, NotifyError

logger = logging.getLogger(__name__)

OUTBOX_KEEP = timedelta(days=1)
TIMEOUT_SECONDS = 10.0


class LogNotifier:
    """Development: write the message to the log and to the Code outbox panel."""

    channel = "log"

    def send(self, message: Message) -> None:
        """Log the message and store it in the outbox (pruning day-old entries)."""
        logger.info("[code outbox] to %s: %s", message.destination, message.body)
        db.session.execute(
            delete(CodeOutboxEntry).where(CodeOutboxEntry.at < utcnow() - OUTBOX_KEEP)
        )
        db.session.add(
            CodeOutboxEntry(
                person_id=message.person_id,
                person_label=message.person_label,
                channel=self.channel,
                destination=message.destination[:255],
                subject=message.subject[:200],
                body=message.body,
            )
        )
        db.session.commit()


class SmtpNotifier:
    """Send an email through SMTP, upgraded with STARTTLS (or implicit TLS on port 465)."""

    channel = "smtp"

    def __init__(
        self, host: str, port: int, user: str, password: str, sender: str, starttls: bool = True
    ):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.sender, self.starttls = sender, starttls

    def send(self, message: Message) -> None:
        """Deliver ``message`` by email or raise NotifyError."""
        email = EmailMessage()
        email["From"], email["To"], email["Subject"] = (
            self.sender,
            message.destination,
            message.subject,
        )
        email.set_content(message.body)
        context = ssl.create_default_context()
        try:
            if self.port == 465:
                server = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=TIMEOUT_SECONDS, context=context
                )
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
            with server:
                if self.port != 465 and self.starttls:
                    server.starttls(context=context)
                if self.user:
                    server.login(self.user, self.password)
                server.send_message(email)
        except (smtplib.SMTPException, OSError) as exc:
            # No message text here: it holds the code. The type and server reply are enough.
            raise NotifyError(
                f"Sending the sign-in code by email via {self.host}:{self.port} failed "
                f"({type(exc).__name__})."
            ) from exc


class SmsNotifier:
    """POST ``{"to": phone, "message": text}`` as JSON to an SMS gateway."""

    channel = "sms"

    def __init__(self, url: str, token: str = "", transport: httpx.BaseTransport | None = None):
        self.url, self.token, self.transport = url, token, transport

    def send(self, message: Message) -> None:
        """Deliver ``message`` by SMS or raise NotifyError."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with httpx.Client(
                transport=self.transport, timeout=TIMEOUT_SECONDS, follow_redirects=False
            ) as client:
                response = client.post(
                    self.url,
                    json={"to": message.destination, "message": message.body},
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            raise NotifyError(
                f"The SMS gateway could not be reached ({type(exc).__name__})."
            ) from exc
        if not 200 <= response.status_code < 300:
            raise NotifyError(
                f"The SMS gateway refused the sign-in code (HTTP {response.status_code})."
            )
