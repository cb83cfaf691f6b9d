"""The audit log: every change made by a person (admin forms, actions, API, CLI) and every login.

ORM changes made inside a request (or a CLI command) are captured by a session hook in the
same transaction as the change, so a rolled-back change leaves no entry; bulk operations
that bypass the ORM (row actions, bulk deletes) are recorded explicitly by the admin layer.
Secrets are never written: password hashes and API keys appear as "(changed)".
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import date, datetime
from decimal import Decimal

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from llmadmin.extensions import db
from llmadmin.models import AuditEntry, Download, LLMModel, Person, Task

logger = logging.getLogger(__name__)

AUDITED = {Person: "person", LLMModel: "llm_model", Task: "task", Download: "download"}
SECRET_FIELDS = {"password_hash", "api_key_encrypted"}
SKIPPED_FIELDS = {"updated_at"}
MAX_VALUE_CHARS = 500

# Set by CLI commands so their changes are attributed to "cli" (workers are not audited).
cli_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("cli_actor", default=None)


def _actor() -> tuple[int | None, str | None, str | None] | None:
    if has_request_context():
        ip = request.remote_addr
        if current_user and current_user.is_authenticated:
            # An API request is its token's person; the label also names the token used.
            via = g.get("api_token_label")
            label = f"{current_user} via API token {via}" if via else str(current_user)
            return current_user.id, label, ip
        return None, "anonymous", ip
    actor = cli_actor.get()
    return (None, actor, None) if actor else None


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, db.Model):
        return str(value)
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    return value


def changes_of(obj) -> dict:
    """Return {field: [before, after]} for the changed column attributes, secrets masked."""
    state = inspect(obj)
    changed = {}
    for attr in state.mapper.column_attrs:
        if attr.key in SKIPPED_FIELDS:
            continue
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before == after:
            continue
        if attr.key in SECRET_FIELDS:
            changed[attr.key] = ["(hidden)", "(changed)"]
        else:
            changed[attr.key] = [_plain(before), _plain(after)]
    return changed


def record(
    action: str,
    object_type: str | None = None,
    object_id=None,
    summary: str | None = None,
    changes: dict | None = None,
    *,
    person=None,
    commit: bool = True,
) -> None:
    """Write one audit entry attributed to ``person`` or the current actor."""
    db.session.add(AuditEntry(**entry(action, object_type, object_id, summary, changes, person)))
    if commit:
        db.session.commit()


def entry(
    action: str,
    object_type: str | None = None,
    object_id=None,
    summary: str | None = None,
    changes: dict | None = None,
    person=None,
) -> dict:
    """Return the column values of the audit entry ``record`` writes (for a bulk insert)."""
    if person is not None:
        via = g.get("api_token_label") if has_request_context() else None
        label = f"{person} via API token {via}" if via else str(person)
        actor = (person.id, label, request.remote_addr if has_request_context() else None)
    else:
        actor = _actor() or (None, "system", None)
    return {
        "person_id": actor[0],
        "person_label": (actor[1] or "")[:300],
        "ip": actor[2],
        "action": action[:60],
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id)[:200],
        "summary": summary,
        "changes": json.dumps(changes, ensure_ascii=False, default=str) if changes else None,
    }


def _summary(obj) -> str:
    return str(obj)[:300]


@event.listens_for(Session, "after_flush")
def _capture_orm_changes(session, flush_context) -> None:
    actor = _actor()
    if actor is None:
        return
    entries = []
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        kind = AUDITED.get(type(obj))
        if kind is None:
            continue
        if obj in session.new:
            action, changes = "create", changes_of(obj)
        elif obj in session.deleted:
            action, changes = "delete", None
        else:
            action, changes = "update", changes_of(obj)
            if not changes:
                continue
        entries.append(
            AuditEntry(
                person_id=actor[0],
                person_label=(actor[1] or "")[:300],
                ip=actor[2],
                action=action,
                object_type=kind,
                object_id=str(inspect(obj).identity[0]) if inspect(obj).identity else None,
                summary=_summary(obj),
                changes=json.dumps(changes, ensure_ascii=False, default=str) if changes else None,
            )
        )
    for entry in entries:
        session.add(entry)
