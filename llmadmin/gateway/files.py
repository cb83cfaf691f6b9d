"""``/v1/files``: upload, list, get, delete a JSONL file for batches, and read its content.

Thin over ``services.openai_files``; a batch's output and error files
(``file-batch-<id>-output``/``-error``) are served here too, streamed from its tasks.
"""

from __future__ import annotations

from flask import Response, current_app, request, stream_with_context
from flask_babel import gettext as _

from llmadmin.gateway.blueprint import bp, current_person
from llmadmin.gateway.errors import GatewayError
from llmadmin.services import openai_files


@bp.post("/files")
def upload_file():
    """Store a multipart ``file`` with ``purpose=batch``."""
    limit = current_app.config["BATCH_MAX_UPLOAD_BYTES"]
    if (request.content_length or 0) > limit + 64 * 1024:  # the form's own bytes besides
        raise GatewayError(
            413,
            _("The file is larger than %(limit)s bytes.", limit=f"{limit:,}"),
            "invalid_request_error",
            "file",
        )
    request.max_content_length = limit + 64 * 1024
    upload = request.files.get("file")
    if upload is None:
        raise GatewayError(
            400, _("Send the file as the multipart field 'file'."), "invalid_request_error", "file"
        )
    return openai_files.store_file(
        upload.stream, upload.filename, request.form.get("purpose"), current_person().id
    )


@bp.get("/files")
def list_files():
    """List the caller's files, newest first (``purpose``, ``after``, ``limit`` as OpenAI's)."""
    purpose = request.args.get("purpose")
    limit = request.args.get("limit", type=int) or 10000
    found = openai_files.list_files(current_person(), request.args.get("after"), limit + 1)
    if purpose and purpose != "batch":
        found = []
    data = found[:limit]
    return {
        "object": "list",
        "data": data,
        "has_more": len(found) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@bp.get("/files/<file_id>")
def get_file(file_id: str):
    """One file object."""
    return openai_files.get_file(file_id, current_person())


@bp.delete("/files/<file_id>")
def delete_file(file_id: str):
    """Delete one uploaded file."""
    return openai_files.delete_file(file_id, current_person())


@bp.get("/files/<file_id>/content")
def file_content(file_id: str):
    """The file's bytes (a batch's output/error file: JSONL streamed from its tasks)."""
    chunks = openai_files.file_content(file_id, current_person())
    return Response(stream_with_context(chunks), mimetype="application/jsonl")
