"""The code outbox: one-time sign-in codes "sent" by the development (log) notifier.

Developers read their codes here instead of from an inbox; production notifiers
(SMTP, SMS) never write to it. Rows older than a day are pruned as new ones arrive.
"""

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class CodeOutboxEntry(db.Model):
    __tablename__ = "code_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    # No foreign key: like the audit log, entries outlive the people they mention.
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    person_label: Mapped[str | None] = mapped_column(String(300), index=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    destination: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, nullable=False)
