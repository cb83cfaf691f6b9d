"""What a chunk needs to know about its model, and how long to wait between attempts."""

from __future__ import annotations

import random
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


def backoff_delay(
    attempt: int, retry_after: float | None, base: float = 0.5, cap: float = 30.0
) -> float:
    """Exponential backoff with full jitter; a server's Retry-After is a floor."""
    delay = random.uniform(0, min(cap, base * (2 ** (attempt - 1))))
    if retry_after is not None:
        delay = max(delay, float(retry_after) + random.uniform(0, 0.1))
    return delay
