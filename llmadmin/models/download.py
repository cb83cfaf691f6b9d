"""Download Center rows: files produced asynchronously by the worker."""

from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class DownloadStatus(StrEnum):
    """Where an export is in its life; changed only through ``llmadmin.lifecycle.DOWNLOADS``."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


PENDING, RUNNING = DownloadStatus.PENDING, DownloadStatus.RUNNING
SUCCESS, FAILURE = DownloadStatus.SUCCESS, DownloadStatus.FAILURE
STATUSES = tuple(DownloadStatus)


class Download(db.Model):
    __tablename__ = "download"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), nullable=False, index=True)
    # How the name was made (``services.downloads.name_frame``), so the Download Center says
    # it in the reader's language; None once a person renames the download (their words).
    name_frame: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    file_name: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    file_format: Mapped[str] = mapped_column(String(8), nullable=False, default="csv")
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="tasks")
    selection: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING, index=True)
    storage_path: Mapped[str | None] = mapped_column(String(500))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)  # files may pass 2 GiB
    md5: Mapped[str | None] = mapped_column(String(32))
    row_count: Mapped[int | None] = mapped_column(Integer)
    progress_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    notified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    started_at: Mapped[object | None] = mapped_column(DateTime)
    finished_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    expires_at: Mapped[object | None] = mapped_column(DateTime, index=True)

    creator = relationship("Person", foreign_keys=[creator_id], passive_deletes=True)

    def __str__(self) -> str:
        return self.file_name
