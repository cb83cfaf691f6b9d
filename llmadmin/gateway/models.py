"""``GET /v1/models``: the enabled model rows a caller may use, named as the gateway knows them."""

from __future__ import annotations

import calendar

from llmadmin.gateway.blueprint import bp
from llmadmin.services import chat_calls


def model_object(row) -> dict:
    """A model row in OpenAI's ``model`` shape (its id is the row's unique name)."""
    created = calendar.timegm(row.created_at.timetuple()) if row.created_at else 0
    return {"id": row.name, "object": "model", "created": created, "owned_by": "llmadmin"}


@bp.get("/models")
def list_models():
    """List the enabled models."""
    return {"object": "list", "data": [model_object(m) for m in chat_calls.usable_models()]}


@bp.get("/models/<path:name>")
def get_model(name: str):
    """Return one enabled model by name; 404 model_not_found otherwise."""
    return model_object(chat_calls.usable_model(name))
