"""LLM endpoints the company uses (anything OpenAI-compatible)."""

from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmadmin.extensions import db
from llmadmin.models.base import utcnow


class LLMModel(db.Model):
    __tablename__ = "llm_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False, index=True)
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    maintainer_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, index=True)
    simulated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    stream: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    temperature: Mapped[float] = mapped_column(Float, nullable=False, default=0.7)
    max_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=1024)
    timeout_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=60.0)
    max_concurrency: Mapped[int] = mapped_column(Integer, nullable=False, default=8)
    rpm_limit: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    breaker_threshold: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    breaker_cooldown_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    price_input_per_1k: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    price_output_per_1k: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    last_test_at: Mapped[object | None] = mapped_column(DateTime)
    last_test_status: Mapped[int | None] = mapped_column(Integer)
    last_test_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_test_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[object] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    updated_at: Mapped[object] = mapped_column(
        DateTime, nullable=False, default=utcnow, onupdate=utcnow, index=True
    )

    maintainer = relationship("Person", foreign_keys=[maintainer_id], passive_deletes=True)

    def __str__(self) -> str:
        label = f"{self.name} ({self.model_name})"
        return f"{label} [{_('simulated')}]" if self.simulated else label
