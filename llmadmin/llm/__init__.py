"""The only code that speaks HTTP to LLM endpoints (see ``client``), plus a simulated endpoint."""

from llmadmin.llm.catalog import list_models
from llmadmin.llm.client import (
    ChatRequest,
    ChatResult,
    build_messages,
    chat,
    chat_blocking,
    compute_cost,
    display_url,
    make_async_client,
    mask_key,
    parse_retry_after,
)

__all__ = [
    "ChatRequest",
    "ChatResult",
    "build_messages",
    "chat",
    "chat_blocking",
    "compute_cost",
    "display_url",
    "list_models",
    "make_async_client",
    "mask_key",
    "parse_retry_after",
]
