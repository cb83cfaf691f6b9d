"""One-time sign-in codes: made after the password, kept hashed in Redis, sent by a job, used once.

A code is 6 digits, lives OTP_TTL_SECONDS (60 s) and allows OTP_MAX_ATTEMPTS (5) tries.
Redis only ever holds an HMAC of it (keyed with SECRET_KEY, so the million possible codes
cannot be tried offline by someone who can read Redis); the job that delivers it receives
the code encrypted with the app's Fernet key, never in plain text. While a code is live
no new one is made, so "resend" cannot be used to flood a person's inbox or phone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from flask import current_app
from flask_babel import force_locale, get_locale, ngettext
from flask_babel import gettext as _

from llmadmin import crypto, notifiers, queues
from llmadmin.errors import LLMAdminError, QueueUnavailable
from llmadmin.extensions import db
from llmadmin.models import Person
from llmadmin.notifiers import destination_for
from llmadmin.queues import get_redis
from llmadmin.services.login_guard import REDIS_ERRORS

logger = logging.getLogger(__name__)

CODE_DIGITS = 6


class OtpError(LLMAdminError):
    """A one-time code was refused; the message is safe to show."""


class CodeExpired(OtpError):
    """No live code: it expired, was used, or was never sent."""


class CodeLocked(OtpError):
    """Too many wrong tries: the code was thrown away."""


class WrongCode(OtpError):
    """The code does not match; more tries are allowed."""


class CodeStillLive(OtpError):
    """A code was sent and is still valid: no new one is made yet."""

    def __init__(self, seconds: int) -> None:
        super().__init__(
            ngettext(
                "A code was already sent and is valid for %(num)s more second; "
                "you can ask for a new one after that.",
                "A code was already sent and is valid for %(num)s more seconds; "
                "you can ask for a new one after that.",
                seconds,
            )
        )
        self.seconds = seconds


class CodeUnavailable(OtpError):
    """A code cannot be made or sent right now (Redis or the job queue is down, no destination)."""


def required_for(person: Person) -> bool:
    """Tell whether ``person`` must give a one-time code after the password."""
    return bool(person.otp_required) or bool(
        current_app.config["OTP_REQUIRED_FOR_ADMINS"] and person.is_admin
    )


def can_send_to(person: Person) -> bool:
    """Tell whether the configured notifier has somewhere to send ``person``'s codes."""

    return bool(destination_for(person))


def code_key(person_id: int) -> str:
    """Return the Redis key holding the HMAC of ``person_id``'s live code."""
    return f"{current_app.config['QUEUE_PREFIX']}:otp:{person_id}:code"


def attempts_key(person_id: int) -> str:
    """Return the Redis key counting tries of ``person_id``'s live code."""
    return f"{current_app.config['QUEUE_PREFIX']}:otp:{person_id}:attempts"


def digest(person_id: int, code: str) -> str:
    """Return the keyed hash stored in place of ``code``."""
    key = current_app.config["SECRET_KEY"]
    key = key if isinstance(key, bytes) else str(key).encode("utf-8")
    return hmac.new(key, f"login-code:{person_id}:{code}".encode(), hashlib.sha256).hexdigest()


def generate_code() -> str:
    """Return a uniformly random 6-digit code (leading zeros kept)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def seconds_left(person_id: int) -> int:
    """Return how long ``person_id``'s live code stays valid (0 when there is none)."""
    try:
        return max(0, int(get_redis().ttl(code_key(person_id))))
    except REDIS_ERRORS:
        return 0


def issue(person: Person) -> int:
    """Make a code for ``person``, store its hash and queue its delivery; return its lifetime in seconds."""
    if not notifiers.destination_for(person):
        raise CodeUnavailable(
            _(
                "Your account has nowhere to send a sign-in code to (no email address or "
                "phone number); ask an administrator."
            )
        )
    ttl = current_app.config["OTP_TTL_SECONDS"]
    code = generate_code()
    try:
        client = get_redis()
        if not client.set(code_key(person.id), digest(person.id, code), nx=True, ex=ttl):
            raise CodeStillLive(max(1, int(client.ttl(code_key(person.id)))))
        client.set(attempts_key(person.id), 0, ex=ttl)
    except REDIS_ERRORS as exc:
        raise CodeUnavailable(
            _(
                "Sign-in codes cannot be made right now (Redis is unreachable); try again in a minute."
            )
        ) from exc
    try:
        # At the front of the most urgent queue: the code is useless after OTP_TTL_SECONDS.
        queues.enqueue(
            "llmadmin.jobs.notify.send_login_code",
            person.id,
            crypto.encrypt(code),
            message_locale(person),
            description=f"send a sign-in code to person #{person.id}",
        )
    except QueueUnavailable as exc:
        discard(person.id)
        raise CodeUnavailable(
            _(
                "The sign-in code cannot be sent right now (the job queue is unreachable); "
                "try again in a minute."
            )
        ) from exc
    logger.info("sign-in code issued for person_id=%s", person.id)
    return ttl


def is_live(person_id: int, code: str) -> bool:
    """Tell whether ``code`` is ``person_id``'s current, unused, unexpired code."""
    stored = get_redis().get(code_key(person_id))
    return stored is not None and hmac.compare_digest(
        stored.decode("ascii"), digest(person_id, code)
    )


def verify(person_id: int, code: str) -> None:
    """Accept ``code`` once, or raise CodeExpired, CodeLocked or WrongCode."""
    try:
        _verify(person_id, (code or "").strip())
    except REDIS_ERRORS as exc:
        raise CodeUnavailable(
            _(
                "Sign-in codes cannot be checked right now (Redis is unreachable); "
                "try again in a minute."
            )
        ) from exc


def _verify(person_id: int, code: str) -> None:
    client = get_redis()
    stored = client.get(code_key(person_id))
    if stored is None:
        raise CodeExpired(_("This code has expired or was already used. Ask for a new code."))
    limit = current_app.config["OTP_MAX_ATTEMPTS"]
    tries = client.incr(attempts_key(person_id))
    if tries == 1:  # the counter vanished (expired just now): give it the code's lifetime again
        client.expire(attempts_key(person_id), current_app.config["OTP_TTL_SECONDS"])
    if tries > limit:
        discard(person_id)
        raise CodeLocked(_("Too many wrong codes. Ask for a new code."))
    if not hmac.compare_digest(stored.decode("ascii"), digest(person_id, code)):
        left = limit - tries
        if left <= 0:
            discard(person_id)
            raise CodeLocked(_("Wrong code, and that was the last try. Ask for a new code."))
        raise WrongCode(
            ngettext("Wrong code. %(num)s try left.", "Wrong code. %(num)s tries left.", left)
        )
    # DEL answers 1 to exactly one caller: two requests racing with the right code cannot both win.
    if not client.delete(code_key(person_id)):
        raise CodeExpired(_("This code has expired or was already used. Ask for a new code."))
    client.delete(attempts_key(person_id))


def discard(person_id: int) -> None:
    """Forget ``person_id``'s live code (thrown away after too many tries, or never sent)."""
    try:
        get_redis().delete(code_key(person_id), attempts_key(person_id))
    except REDIS_ERRORS as exc:
        logger.warning("could not discard a sign-in code: %s", exc)


def message_locale(person: Person) -> str:
    """The language of messages to ``person``: their choice, else this request's language."""
    if person.locale:
        return person.locale
    locale = get_locale()
    return str(locale) if locale is not None else current_app.config["DEFAULT_LOCALE"]


def deliver_login_code(
    person_id: int, sealed_code: str, locale: str | None = None, notifier=None
) -> str:
    """Send the (encrypted) code to the person unless it is no longer live; return what happened."""
    person = db.session.get(Person, person_id)
    if person is None or not person.active:
        logger.info("sign-in code not sent: person_id=%s is gone or inactive", person_id)
        return "skipped"
    code = crypto.decrypt(sealed_code)
    if not is_live(person_id, code):
        # Expired or used before this (possibly repeated) delivery: sending it would only confuse.
        logger.info(
            "sign-in code for person_id=%s expired or was used before it was sent", person_id
        )
        return "stale"
    with force_locale(person.locale or locale or current_app.config["DEFAULT_LOCALE"]):
        message = notifiers.login_code_message(person, code)
    (notifier or notifiers.get_notifier()).send(message)
    logger.info(
        "sign-in code for person_id=%s sent via %s", person_id, current_app.config["OTP_NOTIFIER"]
    )
    return "sent"
