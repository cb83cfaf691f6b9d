"""List the models an OpenAI-compatible endpoint serves (``GET {base_url}/models``)."""

from __future__ import annotations

import json

import httpx

from llmadmin.errors import LLMError
from llmadmin.llm.client import USER_AGENT
from llmadmin.llm.failures import status_error, transport_error
from llmadmin.llm.redact import display_url
from llmadmin.llm.request import ChatRequest

MAX_MODELS = 500  # a picker, not an inventory: the first ones are plenty


def list_models(
    base_url: str,
    api_key: str | None,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """Return the model ids the endpoint lists, sorted; raise LLMError on any failure."""
    # The request object only carries the URL and key into the shared error mapping.
    req = ChatRequest(base_url=base_url, api_key=api_key, model="", messages=[], timeout=timeout)
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        with httpx.Client(transport=transport, follow_redirects=False, timeout=timeout) as client:
            response = client.get(f"{base_url.rstrip('/')}/models", headers=headers)
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise transport_error(exc, req) from exc
    if not response.is_success:
        raise status_error(response, req)
    try:
        data = json.loads(response.text).get("data")
        ids = sorted({str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")})
    except (ValueError, TypeError, AttributeError) as exc:
        raise LLMError(
            f"The endpoint at {display_url(base_url)} did not answer GET /models with a model "
            f"list — is it an OpenAI-compatible base URL (usually ending in /v1)?",
            kind="bad_response",
            retryable=False,
            status_code=response.status_code,
        ) from exc
    return ids[:MAX_MODELS]
