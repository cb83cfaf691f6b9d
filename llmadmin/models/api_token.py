"""Personal API tokens: a person's key to the JSON API, shown once, stored as a SHA-256.

Tokens are 256-bit random strings, so a fast unsalted hash is enough (nothing to brute-force)
and lets a request find its row with one indexed lookup. Revoking sets ``revoked_at``; every
request checks it, so a revoked token stops at once.
"""

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class ApiToken(db.Model):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The first characters of the token ("lla_AbCd"), so a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    last_used_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    expires_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    revoked_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    revoked_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("person.id", ondelete="SET NULL")
    )

    person = relationship("Person", foreign_keys=[person_id], passive_deletes=True)
    revoked_by = relationship("Person", foreign_keys=[revoked_by_id], passive_deletes=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
