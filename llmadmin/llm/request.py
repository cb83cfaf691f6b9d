"""What one chat-completions call asks for, and what a successful one returned."""

from __future__ import annotations

from dataclasses import dataclass

from llmadmin.llm.redact import display_url, mask_key


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call; ``timeout`` is the total budget in seconds."""

    base_url: str
    api_key: str | None
    model: str
    messages: list[dict]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict | None = (
        None  # OpenAI's: {"type": "json_object"}, {"type": "json_schema", ...}
    )
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    timeout: float = 60.0
    connect_timeout: float | None = None  # None -> min(10, timeout)
    stream: bool = False

    def __post_init__(self) -> None:
        if self.connect_timeout is None:
            object.__setattr__(self, "connect_timeout", min(10.0, float(self.timeout)))

    def __repr__(self) -> str:
        # Prompts can be long and keys are secret: show neither in full.
        return (
            f"ChatRequest(base_url={display_url(self.base_url)!r}, api_key={mask_key(self.api_key) or None!r}, "
            f"model={self.model!r}, messages=<{len(self.messages)} message(s)>, "
            f"temperature={self.temperature!r}, max_tokens={self.max_tokens!r}, "
            f"top_p={self.top_p!r}, stop={self.stop!r}, seed={self.seed!r}, "
            f"response_format={self.response_format!r}, "
            f"frequency_penalty={self.frequency_penalty!r}, "
            f"presence_penalty={self.presence_penalty!r}, "
            f"timeout={self.timeout!r}, connect_timeout={self.connect_timeout!r}, stream={self.stream!r})"
        )

    @property
    def url(self) -> str:
        """The chat-completions endpoint for this request's base URL."""
        return f"{self.base_url.rstrip('/')}/chat/completions"


@dataclass
class ChatResult:
    """What a successful call returned."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    status_code: int
    latency_ms: float = 0.0
    finish_reason: str | None = None
    streamed: bool = False
