"""``/v1/batches``: create, list, get and cancel batches as OpenAI's Batch API does.

Thin over ``services.openai_batches``; every answer is OpenAI's batch object.
"""

from __future__ import annotations

from flask import request

from llmadmin.gateway.blueprint import bp, current_person, json_object
from llmadmin.services import openai_batches


@bp.post("/batches")
def create_batch():
    """Make a batch from an uploaded file; it is ``validating`` at once."""
    row = openai_batches.create(json_object(), current_person())
    return openai_batches.objects([row])[0]


@bp.get("/batches")
def list_batches():
    """The caller's batches, newest first, ``after``/``limit`` as OpenAI's."""
    rows, more = openai_batches.listing(
        current_person(), request.args.get("after"), request.args.get("limit")
    )
    data = openai_batches.objects(rows)
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    """One batch."""
    return openai_batches.objects([openai_batches.get(batch_id, current_person())])[0]


@bp.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str):
    """Cancel a batch: unfinished requests are canceled, finished results kept."""
    return openai_batches.objects([openai_batches.cancel(batch_id, current_person())])[0]
