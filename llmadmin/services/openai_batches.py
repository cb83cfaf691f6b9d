"""Batches through the gateway (``/v1/batches``): OpenAI's Batch API over Batch rows.

``create`` copies a ``/v1/files`` file into the batch upload folder and hands it to
``batches.create_batch_from_file`` with ``all_or_nothing`` (as OpenAI's, a file with any
invalid line makes a ``failed`` batch holding the errors); the answer is the VALIDATING
batch at once, a job makes the tasks. A person sees only the batches they made through
the gateway (an admin too: the gateway is per token, like OpenAI's per project).
"""

from __future__ import annotations

import json

from flask_babel import gettext as _
from sqlalchemy import select

from llmadmin.errors import NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.models import Batch, Person
from llmadmin.models.batch import BatchStatus
from llmadmin.services import batch_results, batches, openai_files
from llmadmin.services.batch_uploads import discard_upload

BATCH_ID_PREFIX = "batch_"
ENDPOINTS = ("/v1/chat/completions",)
COMPLETION_WINDOWS = ("24h",)
TERMINAL = (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.EXPIRED, BatchStatus.FAILED)
MAX_METADATA_PAIRS = 16


def public_id(batch: Batch) -> str:
    return f"{BATCH_ID_PREFIX}{batch.id}"


def _row_id(batch_id) -> int | None:
    text = str(batch_id or "")
    if text.startswith(BATCH_ID_PREFIX) and text[len(BATCH_ID_PREFIX) :].isdigit():
        return int(text[len(BATCH_ID_PREFIX) :][:18])
    return None


def get(batch_id: str, person: Person) -> Batch:
    """The person's gateway batch ``batch_<n>``, or NotFound."""
    row_id = _row_id(batch_id)
    row = db.session.get(Batch, row_id) if row_id is not None else None
    if row is None or row.creator_id != person.id or row.input_file_id is None:
        exc = NotFound(_("No such Batch object: %(id)s", id=str(batch_id)[:100]))
        exc.param, exc.code = "id", None
        raise exc
    return row


def _metadata(value) -> str | None:
    if value is None:
        return None
    ok = (
        isinstance(value, dict)
        and len(value) <= MAX_METADATA_PAIRS
        and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in value.items()
        )
    )
    if not ok:
        raise ValidationError(
            _("metadata must be an object of up to 16 string keys (64 chars) and values (512)."),
            field="metadata",
        )
    return json.dumps(value, ensure_ascii=False)


def create(body: dict, person: Person) -> Batch:
    """Make a batch from ``input_file_id``; the row is VALIDATING, a job makes the tasks."""
    unknown = sorted(set(body) - {"input_file_id", "endpoint", "completion_window", "metadata"})
    if unknown:
        raise ValidationError(
            _("Unrecognized request argument supplied: %(name)s", name=unknown[0]),
            field=unknown[0],
        )
    if body.get("endpoint") not in ENDPOINTS:
        raise ValidationError(
            _("The endpoint must be /v1/chat/completions (the only one this gateway batches)."),
            field="endpoint",
        )
    if body.get("completion_window") not in COMPLETION_WINDOWS:
        raise ValidationError(_("The completion window must be 24h."), field="completion_window")
    metadata = _metadata(body.get("metadata"))
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise ValidationError(_("input_file_id is required."), field="input_file_id")
    upload_id, path, meta = openai_files.copy_for_batch(file_id, person)
    try:
        batch = batches.create_batch_from_file(
            path,
            "jsonl",
            person.id,
            name=meta.get("filename"),
            source_name=meta.get("filename"),
            all_or_nothing=True,
            keep_failed=True,
            upload_id=upload_id,
            completion_window=body["completion_window"],
        )
    except BaseException:
        discard_upload(upload_id)
        raise
    batch.input_file_id = file_id
    batch.metadata_json = metadata
    db.session.commit()
    return batch


def listing(person: Person, after: str | None, limit) -> tuple[list[Batch], bool]:
    """The person's gateway batches, newest first, after ``after``; and whether more follow."""
    try:
        limit = int(limit) if limit is not None else 20
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= 100:
        raise ValidationError(_("limit must be between 1 and 100."), field="limit")
    query = select(Batch).where(Batch.creator_id == person.id, Batch.input_file_id.is_not(None))
    if after:
        row_id = _row_id(after)
        if row_id is None:
            raise ValidationError(_("after must be a batch id."), field="after")
        query = query.where(Batch.id < row_id)
    rows = db.session.scalars(query.order_by(Batch.id.desc()).limit(limit + 1)).all()
    return list(rows[:limit]), len(rows) > limit


def cancel(batch_id: str, person: Person) -> Batch:
    """Cancel the person's batch (unfinished requests canceled, results kept)."""
    row = get(batch_id, person)
    batches.cancel_batch(row.id)
    db.session.expire_all()
    return db.session.get(Batch, row.id)


def objects(rows: list[Batch]) -> list[dict]:
    """OpenAI batch objects of the rows (their statuses brought up to date first)."""
    found = batches.refresh(rows)
    return [_object(row, found[row.id]) for row in rows]


def _object(row: Batch, counts) -> dict:
    info = batch_results.openai_batch(row, counts)
    finished = row.status in TERMINAL or row.status == BatchStatus.FINALIZING
    output = f"file-batch-{row.id}-output" if finished and counts.succeeded else None
    failed = counts.failed + counts.canceled
    error = f"file-batch-{row.id}-error" if finished and failed else None
    if row.status == BatchStatus.FAILED and info["errors"] is None and row.error:
        info["errors"] = {
            "object": "list",
            "data": [{"code": "failed", "message": row.error, "param": None, "line": None}],
        }
    return {
        "id": public_id(row),
        **info,
        "input_file_id": row.input_file_id,
        "output_file_id": output,
        "error_file_id": error,
        "metadata": json.loads(row.metadata_json) if row.metadata_json else None,
    }
