"""People: the company's staff, who are also the login accounts."""

import secrets

from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from llmadmin.extensions import db
from llmadmin.models.base import utcnow

ROLE_ADMIN = "admin"
ROLE_MEMBER = "member"
ROLES = (ROLE_ADMIN, ROLE_MEMBER)


class Person(UserMixin, db.Model):
    __tablename__ = "person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False, index=True)
    email: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=ROLE_MEMBER, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Ask for a one-time code after the password (admins may be required to by OTP_REQUIRED_FOR_ADMINS).
    otp_required: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=sa_false()
    )
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    # The person's own choices; empty means: the browser's language / the site's DEFAULT_TIMEZONE.
    locale: Mapped[str | None] = mapped_column(String(16))  # "zh_Hans_CN" or "en"
    timezone: Mapped[str | None] = mapped_column(String(64))  # an IANA name, e.g. "Asia/Shanghai"

    # The token of the signed-in session this object was loaded for (services/sessions), not a column.
    login_token = None
    # Whether a finished download waits to be announced, asked with the session check; not a column.
    download_notices_waiting = True

    def get_id(self) -> str | None:
        """Flask-Login's id for the cookies: the session token, never the guessable, unrevocable row id."""
        return self.login_token

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @property
    def is_active(self) -> bool:  # Flask-Login: inactive people cannot log in
        return bool(self.active)

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash of ``password`` (werkzeug's default scheme)."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Tell whether ``password`` matches the stored hash (as slowly when there is none)."""
        if not self.password_hash:
            return spend_password_check(password)
        return check_password_hash(self.password_hash, password)

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


# One throw-away hash per hashing function in use (tests swap in a cheaper one).
_DUMMY_HASHES: dict = {}


def spend_password_check(password: str) -> bool:
    """Check ``password`` against a throw-away hash and return False.

    A sign-in for an unknown email (or an account without a password) then costs the same
    hash work as a wrong password for a real account, so response times do not tell which
    email addresses have accounts. The hash is made with the configured hashing function.
    """
    hasher = generate_password_hash
    dummy = _DUMMY_HASHES.get(hasher)
    if dummy is None:
        if len(_DUMMY_HASHES) > 8:
            _DUMMY_HASHES.clear()
        dummy = _DUMMY_HASHES[hasher] = hasher(secrets.token_urlsafe(16))
    check_password_hash(dummy, password)
    return False
