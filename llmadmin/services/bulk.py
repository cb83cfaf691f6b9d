"""Bulk actions: which service applies action X to rows of list Y, recorded as BulkOperation rows.

Ticked rows are changed in the request; "all matching rows" are stored as a PENDING row
(the list's ``Selection``, the action, its arguments), committed, then one job is
enqueued with the row's id. The job claims the row, turns the selection back into a
query with the requester's own scope and applies the action's service in chunks of ids,
committing counts and ``last_id`` after each chunk. Redis holds only the job.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import update

from llmadmin import queues
from llmadmin.errors import LLMAdminError, QueueUnavailable, ValidationError
from llmadmin.extensions import db
from llmadmin.models import BulkOperation
from llmadmin.models.base import utcnow
from llmadmin.services import download_cleanup, selections, sessions
from llmadmin.services import llm_models as model_service
from llmadmin.services import people as people_service
from llmadmin.services import tasks as task_service
from llmadmin.services.bulk_state import FAILURE, PENDING, RUNNING, SUCCESS, transition
from llmadmin.services.selections import Selection

logger = logging.getLogger(__name__)

BULK_CHUNK = 1000


@dataclass(frozen=True)
class BulkAction:
    """A service applied to a chunk of ids: ``apply(ids, person_id, **extra)``.

    ``counts(result, ids)`` turns the service's answer into (changed, skipped).
    """

    apply: Callable[..., Any]
    counts: Callable[[Any, list[int]], tuple[int, int]]


def _outcome(result, ids) -> tuple[int, int]:
    return result.changed + result.waiting, result.skipped


def _number(result, ids) -> tuple[int, int]:
    return result, len(ids) - result


def _first(result, ids) -> tuple[int, int]:
    return result[0], len(ids) - result[0]


def _duplicate(
    ids, person_id, model_id=None, operation_key=None, submission_key=None, params=None, **kw
):
    """Copy tasks; the form's token (or the operation's) makes a repeat copy nothing twice."""
    key = submission_key or operation_key
    return task_service.duplicate_tasks(
        ids, model_id, person_id, submission_key=key, overrides=params
    )


def _run(ids, person_id, params=None, **kw):
    """Run or re-run tasks, with the stored parameter overrides (if any) for all of them."""
    return task_service.run_tasks(ids, overrides=params)


def _retry(ids, person_id, params=None, **kw):
    return task_service.retry_failed(ids, overrides=params)


ACTIONS: dict[str, dict[str, BulkAction]] = {
    "task": {
        "run": BulkAction(_run, _outcome),
        "retry": BulkAction(_retry, _outcome),
        "cancel": BulkAction(lambda ids, person_id, **kw: task_service.cancel_tasks(ids), _outcome),
        "delete": BulkAction(lambda ids, person_id, **kw: task_service.delete_tasks(ids), _outcome),
        "duplicate": BulkAction(_duplicate, _outcome),
    },
    "llmmodel": {
        "delete": BulkAction(lambda ids, person_id, **kw: model_service.delete_models(ids), _first),
        "test": BulkAction(
            lambda ids, person_id, **kw: model_service.request_connection_test(ids), _number
        ),
        "enable": BulkAction(
            lambda ids, person_id, **kw: model_service.set_enabled(ids, True), _number
        ),
        "disable": BulkAction(
            lambda ids, person_id, **kw: model_service.set_enabled(ids, False), _number
        ),
    },
    "person": {
        "delete": BulkAction(
            lambda ids, person_id, **kw: people_service.delete_people(ids, keep=person_id),
            _first,
        ),
        "sign_out": BulkAction(
            lambda ids, person_id, **kw: sessions.end_all_for(ids),
            lambda result, ids: (len(ids), 0),
        ),
    },
    "download": {
        "delete": BulkAction(
            lambda ids, person_id, **kw: download_cleanup.delete_downloads(ids), _number
        ),
    },
}


def find_action(list_name: str, action: str) -> BulkAction:
    """Return the registered bulk action or refuse it."""
    found = ACTIONS.get(list_name, {}).get(action)
    if found is None:
        raise ValidationError(_("This action cannot be applied to all matching rows."))
    return found


def supports(list_name: str, action: str) -> bool:
    """Tell whether ``action`` can run on all matching rows of ``list_name``."""
    return action in ACTIONS.get(list_name, {})


# --- the request side --------------------------------------------------------------------


def start_operation(
    selection: Selection, action: str, arguments: dict | None = None
) -> tuple[BulkOperation, bool]:
    """Store a PENDING operation on all matching rows, commit, then enqueue its job.

    Return the row and whether the job was queued (when Redis is down it stays PENDING
    and the sweep sends it later).
    """
    find_action(selection.list_name, action)
    selections.validate(selection)
    selections.check_access(selection, acting=True)
    matched = selections.count_matching(selection)
    if matched == 0:
        db.session.rollback()
        raise ValidationError(_("No rows match the current search and filters."))
    row = _new_row(selection, action, arguments, PENDING, matched=matched)
    row.job_id = uuid.uuid4().hex
    db.session.add(row)
    db.session.commit()
    return row, enqueue_operation(row.id, row.job_id)


def enqueue_operation(operation_id: int, job_id: str) -> bool:
    """Enqueue the operation's job by its dotted name; False when Redis is down."""
    try:
        queues.enqueue(
            "llmadmin.jobs.bulk.apply_bulk_operation",
            operation_id,
            job_id=job_id,
            description=f"bulk operation #{operation_id}",
        )
    except QueueUnavailable:
        logger.warning("bulk operation %s stays PENDING: the queue is unreachable", operation_id)
        return False
    return True


def run_ticked(
    list_name: str, action: str, ids: list[int], person_id: int, arguments: dict | None = None
) -> tuple[BulkOperation, Any]:
    """Apply ``action`` to ticked (already visible) ids now, recording it as an operation.

    Return the row and the service's own answer (for the flash message).
    """
    bulk_action = find_action(list_name, action)
    ids = sorted({int(i) for i in ids})
    selection = Selection(list_name, person_id, ids=tuple(ids))
    row = _new_row(selection, action, arguments, RUNNING, matched=len(ids))
    row.started_at = row.updated_at = utcnow()
    db.session.add(row)
    db.session.commit()
    operation_id = row.id
    try:
        result = bulk_action.apply(ids, person_id, **_arguments(row))
    except Exception as exc:
        db.session.rollback()
        transition([operation_id], FAILURE, error=describe_failure(exc))
        raise
    changed, skipped = bulk_action.counts(result, ids)
    last_id = ids[-1] if ids else 0
    transition(
        [operation_id],
        SUCCESS,
        processed=len(ids),
        changed=changed,
        skipped=skipped,
        last_id=last_id,
    )
    return db.session.get(BulkOperation, operation_id), result


def _new_row(
    selection: Selection, action: str, arguments: dict | None, status: str, matched=None
) -> BulkOperation:
    return BulkOperation(
        creator_id=selection.person_id,
        list_name=selection.list_name,
        action=action,
        selection=json.dumps(selection.to_dict()),
        arguments=json.dumps(arguments or {}),
        description=selections.describe(selection)[:300],
        status=status,
        matched=matched,
    )


def _arguments(row: BulkOperation) -> dict:
    """The stored arguments, plus a key that makes a re-applied duplicate copy nothing twice."""
    return {**json.loads(row.arguments or "{}"), "operation_key": f"bulk{row.id}"}


# --- the worker side ---------------------------------------------------------------------


def run_operation(operation_id: int) -> str:
    """Claim a PENDING operation and apply it chunk by chunk after its ``last_id``.

    A duplicate delivery finds the row no longer PENDING and does nothing; a job re-sent
    after a worker died resumes after the last committed chunk.
    """
    if not transition([operation_id], RUNNING, error=None):
        logger.info("bulk operation %s not PENDING: duplicate delivery ignored", operation_id)
        return "skipped"
    row = db.session.get(BulkOperation, operation_id)
    last_id = row.last_id
    try:
        selection = Selection.from_dict(json.loads(row.selection))
        bulk_action = find_action(selection.list_name, row.action)
        arguments = _arguments(row)
        if last_id == 0:
            row.matched = selections.count_matching(selection)
        db.session.commit()
        while True:
            chunk = selections.matching_ids(selection, after=last_id, limit=BULK_CHUNK)
            db.session.commit()  # short transactions: never hold the read across a chunk
            if not chunk:
                break
            result = bulk_action.apply(chunk, selection.person_id, **arguments)
            if not _record_chunk(operation_id, last_id, chunk, bulk_action.counts(result, chunk)):
                logger.warning("bulk operation %s changed hands; this run stops", operation_id)
                return "stopped"
            last_id = chunk[-1]
    except Exception as exc:  # recorded on the row; the log keeps the detail
        db.session.rollback()
        logger.exception("bulk operation %s failed", operation_id)
        transition([operation_id], FAILURE, error=describe_failure(exc))
        return FAILURE
    transition([operation_id], SUCCESS)
    return SUCCESS


def _record_chunk(operation_id: int, after: int, chunk: list[int], counts) -> bool:
    """Add a chunk's counts and move ``last_id``, only if this run still owns the row."""
    changed, skipped = counts
    moved = db.session.execute(
        update(BulkOperation)
        .where(
            BulkOperation.id == operation_id,
            BulkOperation.status == RUNNING,
            BulkOperation.last_id == after,
        )
        .values(
            last_id=chunk[-1],
            processed=BulkOperation.processed + len(chunk),
            changed=BulkOperation.changed + changed,
            skipped=BulkOperation.skipped + skipped,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return moved == 1


def describe_failure(exc: BaseException) -> str:
    """Turn an exception into the message the person reads on the operation row."""
    if isinstance(exc, LLMAdminError):
        return str(exc)
    return f"The operation stopped unexpectedly ({type(exc).__name__}: {exc})."[:2000]
