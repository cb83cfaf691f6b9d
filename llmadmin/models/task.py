"""Tasks: one prompt sent to one model, and what came back."""

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    column,
    table,
)
from sqlalchemy import false as sa_false
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
    # creator_id, model_id and status are indexed together with id (``__table_args__``).
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("llm_model.id", ondelete="SET NULL"))
    source_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("task.id", ondelete="SET NULL"), index=True
    )
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    # Earlier turns of a conversation, sent between the system prompt and the prompt (the
    # last user message): a JSON list of {"role": "user"|"assistant", "content": text}.
    messages: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32), index=True)
    # The final failure as data (``llmadmin.texts``): screens render it in the reader's
    # language; ``error`` keeps the English text (API, exports, rows from before 0018).
    error_frame: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    queue_note: Mapped[str | None] = mapped_column(String(200))
    # Set from a form's one-time token: posting the same form twice creates nothing more.
    submission_key: Mapped[str | None] = mapped_column(String(80), unique=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    run_requested_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    # A parked task (backoff, Retry-After, open breaker, rate window) is QUEUED under a job
    # scheduled for this moment and must not be sent earlier, also when re-queued.
    not_before: Mapped[object | None] = mapped_column(DateTime, index=True)
    # Seconds this run waited for an open breaker, carried across parks (``calls`` and
    # ``error``/``error_kind`` carry the calls made and the last real failure so far).
    breaker_waited: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    queued_at: Mapped[object | None] = mapped_column(DateTime)
    started_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    finished_at: Mapped[object | None] = mapped_column(DateTime, index=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, index=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), index=True)
    # Call parameters (services/task_params.py); empty = the model's setting or not sent.
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    top_p: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    stop: Mapped[str | None] = mapped_column(Text)  # JSON list of up to 4 strings
    response_format: Mapped[str | None] = mapped_column(Text)  # JSON, OpenAI's response_format
    frequency_penalty: Mapped[float | None] = mapped_column(Float)
    presence_penalty: Mapped[float | None] = mapped_column(Float)
    # JSON mode only: whether the output parsed as JSON (None: not JSON mode, or no output).
    output_is_json: Mapped[bool | None] = mapped_column(Boolean, index=True)
    # The prompt, model or parameters changed after the shown result was produced.
    result_outdated: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=sa_false(), index=True
    )
    # Why the model stopped: "stop", "length" (cut off by max tokens), "content_filter", ...
    finish_reason: Mapped[str | None] = mapped_column(String(32), index=True)
    # Calls made to the endpoint for the current outcome (retries included); ``attempts``
    # counts runs (a worker starting the task), which is what the reconciler limits.
    calls: Mapped[int | None] = mapped_column(Integer)
    # The batch (uploaded file) the task came from, its line there and the caller's own id
    # for it (OpenAI's custom_id), by which batch results are matched.
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id", ondelete="SET NULL"))
    batch_line: Mapped[int | None] = mapped_column(Integer)
    custom_id: Mapped[str | None] = mapped_column(String(200))

    creator = relationship("Person", foreign_keys=[creator_id], passive_deletes=True)
    model = relationship("LLMModel", foreign_keys=[model_id], passive_deletes=True)
    source_task = relationship("Task", remote_side=[id], foreign_keys=[source_task_id])
    batch = relationship("Batch", foreign_keys=[batch_id], passive_deletes=True)

    # (x, id): a filter on x (or a member's scope) read newest first straight from the index,
    # on PostgreSQL too (its plain index on x would need a sort of every matching row).
    __table_args__ = (
        Index("ix_task_status_id", "status", "id"),
        Index("ix_task_creator_id_id", "creator_id", "id"),
        Index("ix_task_model_id_id", "model_id", "id"),
        Index("ix_task_status_finished_at", "status", "finished_at", "id"),
        # A batch's tasks in line order, and its counts by status (one GROUP BY).
        Index("ix_task_batch_id_status", "batch_id", "status"),
        Index("ix_task_batch_id_id", "batch_id", "id"),
    )

    def __str__(self) -> str:
        return f"#{self.id} {self.name}"


# The text-search indexes over name and prompt (migration 0011) are not ORM objects:
# SQLite: the FTS5 table ``task_fts`` (trigram tokenizer, external content = task, kept
# current by triggers); PostgreSQL: pg_trgm GIN indexes. Autogenerate must not see them.
TASK_SEARCH_TABLE = table("task_fts", column("rowid", Integer))
TASK_SEARCH_INDEXES = ("ix_task_name_trgm", "ix_task_prompt_trgm")


def is_unmodelled_search_object(name: str | None, type_: str) -> bool:
    """Whether a reflected object is one of the search indexes the models do not declare."""
    if type_ == "table":
        return bool(name) and (name == "task_fts" or name.startswith("task_fts_"))
    return type_ == "index" and name in TASK_SEARCH_INDEXES


def is_batch_column_fk(object, type_: str) -> bool:
    """Whether a schema object is task.batch_id's foreign key (left out of model comparisons).

    Migration 0013 adds it on SQLite as a column constraint (ALTER TABLE ADD COLUMN; copying
    the task table instead would run ON DELETE actions of the rows it drops), which
    SQLAlchemy reflects without its name or ON DELETE. tests/test_migrations.py checks it
    directly on both databases.
    """
    if type_ != "foreign_key_constraint":
        return False
    table = getattr(object, "table", None)
    columns = [c.name for c in getattr(object, "columns", ())]
    table = None if table is None else table.name
    return table == "task" and columns == ["batch_id"]
