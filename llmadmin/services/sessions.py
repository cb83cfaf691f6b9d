"""Server-side sign-in sessions: start one per sign-in, end one on sign-out, end them all on demand.

The session cookie and the remember-me cookie carry a random token (Flask-Login's "alternative
id", see ``Person.get_id``); the database keeps its SHA-256 in ``login_session``. A request is
signed in only while that row exists and has not expired, so:

* signing out deletes the row: a copy of the old cookie (or remember-me cookie) opens nothing;
* every sign-in makes a new token: the remember-me cookie is different after each sign-in;
* a new password, a new role, deactivation or deletion of a person ends all their sessions,
  through a session hook, whatever made the change (People panel, CLI, a future API) — except
  the session of the person making a change to their own password or role, who stays signed in;
* "Sign out everywhere" ends all of a person's sessions.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from flask import current_app, g, has_request_context
from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import Session

from llmadmin.extensions import db
from llmadmin.models import Download, LoginSession, Person
from llmadmin.models.base import utcnow
from llmadmin.services import downloads

logger = logging.getLogger(__name__)

# A change to one of these ends every session of the person.
REVOKING_FIELDS = ("password_hash", "role", "active")


def token_hash(token: str) -> str:
    """Return the stored form of a session token (only the hash is kept)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def lifetime(remember: bool) -> timedelta:
    """Return how long a new session lasts: REMEMBER_COOKIE_DAYS or LOGIN_SESSION_HOURS."""
    config = current_app.config
    if remember:
        return timedelta(days=config["REMEMBER_COOKIE_DAYS"])
    return timedelta(hours=config["LOGIN_SESSION_HOURS"])


def start(person: Person, remember: bool) -> str:
    """Record a new session for ``person`` and return its token (set it on the person for login_user)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.execute(
        delete(LoginSession).where(
            LoginSession.person_id == person.id, LoginSession.expires_at < now
        )
    )
    db.session.add(
        LoginSession(
            person_id=person.id,
            token_hash=token_hash(token),
            remember=bool(remember),
            created_at=now,
            expires_at=now + lifetime(remember),
        )
    )
    db.session.commit()
    person.login_token = token
    return token


def load(token: str | None) -> Person | None:
    """Return the person whose live session has ``token``, or None (ended, expired, unknown)."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    # One statement for the session row, its person and whether a finished download waits to
    # be announced (this runs on every request; most pages then need no notice query).
    notices = select(Download.id).where(*downloads.unannounced(Person.id)).exists()
    found = db.session.execute(
        select(Person, LoginSession.expires_at, notices.label("notices"))
        .join(LoginSession, LoginSession.person_id == Person.id)
        .where(LoginSession.token_hash == token_hash(token))
    ).one_or_none()
    if found is None or found.expires_at <= utcnow():
        return None
    person = found.Person
    person.login_token = token
    person.download_notices_waiting = bool(found.notices)
    return person


def end(token: str | None) -> None:
    """End the session with ``token`` (sign-out)."""
    if token:
        db.session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))
        db.session.commit()


def end_all(person_id: int, keep_token: str | None = None) -> int:
    """End every session of ``person_id`` (but ``keep_token``'s); return how many ended."""
    stmt = delete(LoginSession).where(LoginSession.person_id == person_id)
    if keep_token:
        stmt = stmt.where(LoginSession.token_hash != token_hash(keep_token))
    count = db.session.execute(stmt).rowcount
    db.session.commit()
    logger.info("ended %d session(s) of person_id=%s", count, person_id)
    return count


def end_all_for(person_ids: list[int], keep_token: str | None = None) -> int:
    """End every session of each person in ``person_ids``; return how many ended."""
    return sum(end_all(int(pid), keep_token) for pid in person_ids)


def _own_token(person: Person, deactivated: bool) -> str | None:
    """Return the token of the request's own session when ``person`` is changing themselves."""
    if deactivated or not has_request_context():
        return None
    user = g.get("_login_user")  # already loaded; never load a user in the middle of a flush
    if user is None or getattr(user, "id", None) != person.id:
        return None
    return getattr(user, "login_token", None)


@event.listens_for(Session, "before_flush")
def _end_sessions_on_account_changes(session, flush_context, instances) -> None:
    """End a person's sessions when their password, role or active flag changes, or they are deleted."""
    for obj in list(session.dirty) + list(session.deleted):
        if not isinstance(obj, Person) or obj.id is None:
            continue
        state = inspect(obj)
        if obj in session.deleted:
            keep = None
        elif any(state.attrs[name].history.has_changes() for name in REVOKING_FIELDS):
            keep = _own_token(obj, deactivated=not obj.active)
        else:
            continue
        stmt = delete(LoginSession).where(LoginSession.person_id == obj.id)
        if keep:
            stmt = stmt.where(LoginSession.token_hash != token_hash(keep))
        # A Core statement on the flush's connection: part of the same transaction.
        session.connection().execute(stmt)
