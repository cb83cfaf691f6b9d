"""Bulk operations with their counts (batches: ``api/batches.py``)."""

from __future__ import annotations

from flask_babel import gettext as _

from llmadmin.api import serialize
from llmadmin.api.blueprint import bp, current_person
from llmadmin.errors import NotFound
from llmadmin.extensions import db
from llmadmin.models import BulkOperation


@bp.get("/bulk-operations/<int:operation_id>")
def get_operation(operation_id: int):
    """Return one bulk operation (its owner's or, for admins, anyone's) with its counts."""
    row = db.session.get(BulkOperation, operation_id)
    person = current_person()
    if row is None or (not person.is_admin and row.creator_id != person.id):
        raise NotFound(_("Bulk operation #%(id)s does not exist.", id=operation_id))
    return serialize.operation(row)
