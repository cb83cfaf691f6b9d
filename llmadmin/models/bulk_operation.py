"""Bulk operations: one row per bulk action a person starts, with its selection and counts."""

from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class BulkStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class BulkOperation(db.Model):
    """What was asked (who, action, list, selection), how far it got, and how it ended."""

    __tablename__ = "bulk_operation"
    __table_args__ = (Index("ix_bulk_operation_status_created_at", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    list_name: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    selection: Mapped[str] = mapped_column(Text, nullable=False)  # Selection.to_dict() as JSON
    arguments: Mapped[str | None] = mapped_column(Text)  # JSON, e.g. {"model_id": 3}
    description: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=BulkStatus.PENDING, index=True
    )
    matched: Mapped[int | None] = mapped_column(Integer, index=True)
    processed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    changed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    skipped: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    download_id: Mapped[int | None] = mapped_column(
        ForeignKey("download.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    started_at: Mapped[object | None] = mapped_column(DateTime)
    updated_at: Mapped[object | None] = mapped_column(DateTime)  # last progress, for the sweep
    finished_at: Mapped[object | None] = mapped_column(DateTime, index=True)

    creator = relationship("Person", foreign_keys=[creator_id], passive_deletes=True)
    download = relationship("Download", foreign_keys=[download_id], passive_deletes=True)

    def __str__(self) -> str:
        return f"#{self.id} {self.action} on {self.list_name}"
