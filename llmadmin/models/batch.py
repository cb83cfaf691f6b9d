"""Batches: one row per uploaded file of prompts, grouping the tasks it created."""

from enum import StrEnum

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class BatchStatus(StrEnum):
    """OpenAI's batch statuses (upper-case like our others); changed only through lifecycle."""

    VALIDATING = "VALIDATING"
    IN_PROGRESS = "IN_PROGRESS"
    FINALIZING = "FINALIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"


BATCH_STATUSES = tuple(BatchStatus)
# Statuses in which the batch's tasks may still change: its status is then derived again
# from their counts when someone looks (services.batches.refresh).
OPEN_BATCH_STATUSES = (
    BatchStatus.VALIDATING,
    BatchStatus.IN_PROGRESS,
    BatchStatus.FINALIZING,
    BatchStatus.CANCELLING,
)


class Batch(db.Model):
    """Who uploaded which file, how many lines became tasks, and where the batch is."""

    __tablename__ = "batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    source_name: Mapped[str | None] = mapped_column(String(255))  # the uploaded file's name
    source_format: Mapped[str] = mapped_column(String(8), nullable=False)  # csv, xlsx, jsonl
    # The endpoint every line calls (OpenAI's batch "endpoint"); tasks are chat completions.
    endpoint: Mapped[str] = mapped_column(
        String(64), nullable=False, default="/v1/chat/completions"
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=BatchStatus.VALIDATING, index=True
    )
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # tasks created
    lines: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # input lines read
    invalid_lines: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # JSON list of {"line", "custom_id", "field", "message"} of rejected lines (capped), so
    # the results file can say why a line made no task.
    line_errors: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)  # why the whole batch failed, if it did
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    in_progress_at: Mapped[object | None] = mapped_column(DateTime)
    finalizing_at: Mapped[object | None] = mapped_column(DateTime)
    completed_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    failed_at: Mapped[object | None] = mapped_column(DateTime)
    expired_at: Mapped[object | None] = mapped_column(DateTime)
    expires_at: Mapped[object | None] = mapped_column(DateTime)
    cancelling_at: Mapped[object | None] = mapped_column(DateTime)
    cancelled_at: Mapped[object | None] = mapped_column(DateTime)
    # OpenAI's completion_window ("24h"): past expires_at unfinished tasks are canceled (EXPIRED).
    completion_window: Mapped[str] = mapped_column(String(8), nullable=False, default="24h")
    # Creating the tasks (a job, in chunks, while VALIDATING): the file, who owns the work,
    # and how far it got. A run resumes after ``last_line`` (the last input line committed).
    source_path: Mapped[str | None] = mapped_column(String(1024))  # cleared when done
    upload_id: Mapped[str | None] = mapped_column(String(32))  # an admin upload to discard
    all_or_nothing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    line_count: Mapped[int | None] = mapped_column(Integer)  # lines to read, once known
    last_line: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    creation_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress_at: Mapped[object | None] = mapped_column(DateTime)  # last chunk committed
    # Made through POST /v1/batches: the /v1/files id it came from and the caller's metadata.
    input_file_id: Mapped[str | None] = mapped_column(String(64))
    metadata_json: Mapped[str | None] = mapped_column(Text)
    # The sizes of its OpenAI output and error files and the state of its tasks they were
    # measured at (JSON, services.openai_files): measured again only when that state moves.
    result_file_bytes: Mapped[str | None] = mapped_column(Text)

    creator = relationship("Person", foreign_keys=[creator_id], passive_deletes=True)

    def __str__(self) -> str:
        return f"#{self.id} {self.name}"
