"""Task runs: one row per execution of a task, kept when the task runs again."""

from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class TaskRun(db.Model):
    """What one execution sent (model, parameters) and what came back.

    Written by the engine in the same transaction as the task's final status
    (``engine/writer.py``); the task's own result columns are its latest run.
    """

    __tablename__ = "task_run"
    __table_args__ = (Index("ix_task_run_task_id_id", "task_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_model.id", ondelete="SET NULL"), index=True
    )
    model_label: Mapped[str | None] = mapped_column(String(200))  # kept if the model goes
    params: Mapped[str | None] = mapped_column(Text)  # JSON: the parameters the call sent
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_frame: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # see Task
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    output_is_json: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    calls: Mapped[int | None] = mapped_column(Integer)  # calls to the endpoint, retries included
    latency_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 6))
    started_at: Mapped[object | None] = mapped_column(DateTime)
    finished_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow)

    model = relationship("LLMModel", foreign_keys=[model_id], passive_deletes=True)

    def __str__(self) -> str:
        return f"run #{self.id} of task #{self.task_id}"
