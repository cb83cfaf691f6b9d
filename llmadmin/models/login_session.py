"""Signed-in sessions, one row per sign-in: the server side of the session and remember-me cookies.

The cookies carry a random token; only its SHA-256 is stored here. A request is signed in
only while its token's row exists and has not expired, so deleting the row ends that
session (and its remember-me cookie) at once, wherever the cookie was copied to.
"""

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class LoginSession(db.Model):
    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    remember: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[object] = mapped_column(DateTime, nullable=False, index=True)
