"""Batches: list, get with counts, cancel, retry failed lines."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _
from sqlalchemy import select

from llmadmin.api import serialize
from llmadmin.api.blueprint import bp, current_person
from llmadmin.api.tasks import decode_cursor, encode_cursor, page_limit
from llmadmin.errors import NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.models import Batch
from llmadmin.services import batches as batch_service

LIST_PARAMS = {"status", "cursor", "limit"}


def visible_batch(batch_id: int) -> Batch:
    """Load a batch the person may see; 404 for anyone else's, as if absent."""
    row = db.session.get(Batch, batch_id)
    person = current_person()
    if row is None or (not person.is_admin and row.creator_id != person.id):
        raise NotFound(_("Batch #%(id)s does not exist.", id=batch_id))
    return row


@bp.get("/batches")
def list_batches():
    """List the person's batches (an admin: everyone's), newest first, with their counts."""
    unknown = sorted(set(request.args) - LIST_PARAMS)
    if unknown:
        raise ValidationError(
            _("Unknown query parameter %(name)r.", name=unknown[0]), field=unknown[0]
        )
    person = current_person()
    stmt = select(Batch)
    if not person.is_admin:
        stmt = stmt.where(Batch.creator_id == person.id)
    status = (request.args.get("status") or "").strip().upper()
    if status:
        wanted = [s.strip() for s in status.split(",") if s.strip()]
        bad = [s for s in wanted if s not in serialize.BATCH_STATUS_NAMES]
        if bad:
            raise ValidationError(_("Unknown status %(value)r.", value=bad[0]), field="status")
        stmt = stmt.where(Batch.status.in_(wanted))
    cursor = request.args.get("cursor")
    if cursor:
        stmt = stmt.where(Batch.id < decode_cursor(cursor))
    limit = page_limit(request.args.get("limit"))
    rows = db.session.execute(stmt.order_by(Batch.id.desc()).limit(limit + 1)).scalars().all()
    page = rows[:limit]
    found = batch_service.refresh(page)
    return {
        "data": [serialize.batch(row, found[row.id]) for row in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    }


@bp.get("/batches/<int:batch_id>")
def get_batch(batch_id: int):
    """Return one batch with its counts."""
    return _answer(visible_batch(batch_id))


@bp.post("/batches/<int:batch_id>/cancel")
def cancel_batch(batch_id: int):
    """Cancel a batch in progress (409 otherwise); finished results are kept."""
    row = visible_batch(batch_id)
    batch_service.cancel_batch(row.id)
    return _answer(visible_batch(batch_id))


@bp.post("/batches/<int:batch_id>/retry")
def retry_batch(batch_id: int):
    """Run the batch's failed lines again (nothing happens when none failed)."""
    row = visible_batch(batch_id)
    batch_service.retry_failed_lines(row.id)
    return _answer(visible_batch(batch_id))


def _answer(row: Batch) -> dict:
    db.session.expire_all()
    row = db.session.get(Batch, row.id)
    found = batch_service.refresh([row])[row.id]
    return serialize.batch(row, found)
