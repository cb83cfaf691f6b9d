"""What a chunk needs to know about its model: a detached snapshot of its row."""

from __future__ import annotations

from dataclasses import dataclass

from llmadmin import crypto
from llmadmin.models import LLMModel


@dataclass
class ModelSettings:
    """A detached snapshot of the model row (the ORM object never crosses into coroutines)."""

    id: int
    label: str
    base_url: str
    api_key: str | None
    model_name: str
    temperature: float
    max_tokens: int
    timeout: float
    cap: int
    rpm: int
    max_attempts: int
    stream: bool
    price_in: object
    price_out: object
    breaker_threshold: int
    breaker_cooldown: int

    @classmethod
    def load(cls, model: LLMModel) -> ModelSettings:
        """Snapshot ``model`` (decrypting its key)."""
        return cls(
            id=model.id,
            label=model.name,
            base_url=model.base_url,
            api_key=crypto.decrypt(model.api_key_encrypted),
            model_name=model.model_name,
            temperature=model.temperature,
            max_tokens=model.max_tokens,
            timeout=float(model.timeout_seconds),
            cap=max(1, model.max_concurrency),
            rpm=max(0, model.rpm_limit),
            max_attempts=max(1, model.max_attempts),
            stream=model.stream,
            price_in=model.price_input_per_1k,
            price_out=model.price_output_per_1k,
            breaker_threshold=model.breaker_threshold,
            breaker_cooldown=model.breaker_cooldown_seconds,
        )
