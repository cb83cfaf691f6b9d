"""Audit log: who did what, when, from where, to which object, and what changed."""

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    # No foreign key: entries must outlive the people they mention.
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    person_label: Mapped[str | None] = mapped_column(String(300), index=True)
    action: Mapped[str] = mapped_column(String(60), nullable=False, index=True)
    object_type: Mapped[str | None] = mapped_column(String(40), index=True)
    object_id: Mapped[str | None] = mapped_column(String(200), index=True)
    summary: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
