"""Tasks: one prompt sent to one model, and what came back."""

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import DateTime, Float, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class TaskStatus(StrEnum):
    """Where a task is in its life; changed only through ``llmadmin.lifecycle.TASKS``."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELED = "CANCELED"


PENDING, QUEUED, RUNNING = TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING
SUCCESS, FAILURE, CANCELED = TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.CANCELED
STATUSES = tuple(TaskStatus)
FINAL_STATUSES = (SUCCESS, FAILURE, CANCELED)
ACTIVE_STATUSES = (QUEUED, RUNNING)


class Task(db.Model):
    __tablename__ = "task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_model.id", ondelete="SET NULL"), index=True
    )
    source_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("task.id", ondelete="SET NULL"), index=True
    )
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING, index=True)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32), index=True)
    queue_note: Mapped[str | None] = mapped_column(String(200))
    # Set from a form's one-time token: posting the same form twice creates nothing more.
    submission_key: Mapped[str | None] = mapped_column(String(80), unique=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    run_requested_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    # A parked task (backoff, Retry-After, open breaker, rate window) is QUEUED under a job
    # scheduled for this moment and must not be sent earlier, also when re-queued.
    not_before: Mapped[object | None] = mapped_column(DateTime, index=True)
    # Calls made and seconds waited for an open breaker, carried across parks.
    call_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    breaker_waited: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    queued_at: Mapped[object | None] = mapped_column(DateTime)
    started_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    finished_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, index=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), index=True)

    creator = relationship("Person", foreign_keys=[creator_id], passive_deletes=True)
    model = relationship("LLMModel", foreign_keys=[model_id], passive_deletes=True)
    source_task = relationship("Task", remote_side=[id], foreign_keys=[source_task_id])

    def __str__(self) -> str:
        return f"#{self.id} {self.name}"
