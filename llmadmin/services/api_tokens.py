"""Personal API tokens: create (shown once), check on every API request, revoke, rate-limit.

A token is ``lla_`` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored:
the token is high-entropy, so a fast hash cannot be brute-forced and one indexed lookup finds
the row. Every request re-reads the row, so revocation and expiry take effect at once and a
deactivated person's tokens stop too. ``last_used_at`` is written at most once a minute per
token (a conditional UPDATE), so a busy client does not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

import redis
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from llmadmin.errors import AuthenticationFailed, RateLimited, ValidationError
from llmadmin.extensions import db
from llmadmin.models import ApiToken, Person
from llmadmin.models.base import utcnow
from llmadmin.queues import get_redis
from llmadmin.services import audit
from llmadmin.services.tasks import clean_text

logger = logging.getLogger(__name__)

PREFIX = "lla_"
MAX_EXPIRES_DAYS = 3650
LAST_USED_EVERY = timedelta(minutes=1)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError, RuntimeError)


def token_hash(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    person_id: int, name: str | None, expires_days: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``person_id``; return its row and the token (shown this once only)."""
    person = db.session.get(Person, person_id)
    if person is None or not person.active:
        raise ValidationError(_("Tokens can only be made for an active person."), field="person")
    name = clean_text(name, _("Name"), required=True, max_chars=100)
    if expires_days is not None and not 1 <= int(expires_days) <= MAX_EXPIRES_DAYS:
        raise ValidationError(
            _("Expiry must be between 1 and %(max)s days (or none).", max=MAX_EXPIRES_DAYS),
            field="expires_days",
        )
    token = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(
        person_id=person.id,
        name=name.strip(),
        token_hash=token_hash(token),
        prefix=token[:8],
        created_at=now,
        expires_at=now + timedelta(days=int(expires_days)) if expires_days else None,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        "api_token_create",
        "api_token",
        row.id,
        f"API token “{row.name}” ({row.prefix}…) made for {person}",
        commit=False,
    )
    db.session.commit()
    return row, token


def authenticate(token: str | None) -> tuple[Person, ApiToken]:
    """Return the person and row of a live token, or raise AuthenticationFailed."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        raise AuthenticationFailed(_("Send a valid API token: Authorization: Bearer lla_…"))
    # The token and its person in one statement (every API and gateway request asks).
    found = db.session.execute(
        select(ApiToken, Person)
        .outerjoin(Person, Person.id == ApiToken.person_id)
        .where(ApiToken.token_hash == token_hash(token))
    ).one_or_none()
    now = utcnow()
    if found is None:
        raise AuthenticationFailed(_("This API token is not valid."))
    row, person = found
    if row.revoked_at is not None:
        raise AuthenticationFailed(_("This API token was revoked."))
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationFailed(_("This API token has expired; make a new one."))
    if person is None or not person.active:
        raise AuthenticationFailed(_("The owner of this API token is deactivated."))
    _touch(row, now)
    return person, row


def _touch(row: ApiToken, now) -> None:
    """Record the use, at most once a minute per token (the condition makes it race-free)."""
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_EVERY:
        return
    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == row.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def revoke_tokens(token_ids: list[int], by_person: Person) -> int:
    """Revoke tokens: their owner's own, or anyone's for an admin; return how many changed."""
    stmt = update(ApiToken).where(
        ApiToken.id.in_([int(i) for i in token_ids]), ApiToken.revoked_at.is_(None)
    )
    if not by_person.is_admin:
        stmt = stmt.where(ApiToken.person_id == by_person.id)
    count = db.session.execute(
        stmt.values(revoked_at=utcnow(), revoked_by_id=by_person.id).execution_options(
            synchronize_session=False
        )
    ).rowcount
    audit.record(
        "api_token_revoke",
        "api_token",
        ",".join(str(i) for i in token_ids[:100]),
        f"{count} API token(s) revoked",
        person=by_person,
        commit=False,
    )
    db.session.commit()
    return count


def token_status(row: ApiToken) -> str:
    """Say whether a token is active, revoked or expired."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= utcnow():
        return "expired"
    return "active"


# --- per-token rate limit ------------------------------------------------------------------


def rate_key(token_id: int, scope: str = "api") -> str:
    """Return the Redis key counting this minute's requests of a token."""
    return f"{current_app.config['QUEUE_PREFIX']}:{scope}:rate:{token_id}"


def check_rate(token_id: int, per_minute: int, scope: str = "api") -> None:
    """Count one request; raise RateLimited past ``per_minute`` in the current window.

    A fixed 60-second window that starts with the first request: the key's TTL *is* the
    wait (``Retry-After``), so tests move time by changing it. With Redis away the request
    is let through (logged): the database check of the token does not depend on Redis.
    """
    if per_minute <= 0:
        return
    key = rate_key(token_id, scope)
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.set(key, 0, ex=60, nx=True)  # the window starts with its first request
        pipe.incr(key)  # keeps the TTL
        pipe.ttl(key)
        _started, count, ttl = pipe.execute()
    except REDIS_ERRORS as exc:
        logger.warning("API rate limit skipped: Redis unreachable (%s)", exc)
        return
    if count > per_minute:
        wait = max(1, int(ttl))
        raise RateLimited(
            _(
                "Too many requests: at most %(n)s per minute for one token. "
                "Try again in %(wait)s s.",
                n=per_minute,
                wait=wait,
            ),
            retry_after=wait,
        )
