"""Bulk actions: which service applies action X to rows of list Y, on ticked or all matching rows.

The request stores the list's selection (``services.selections``) and enqueues one job;
the job turns the stored selection back into a query, with the requester's own scope,
and applies the action's service in chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.services import download_cleanup, selections
from llmadmin.services import llm_models as model_service
from llmadmin.services import people as people_service
from llmadmin.services import tasks as task_service
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


def _duplicate(ids, person_id, model_id=None, submission_key=None, **kw):
    return task_service.duplicate_tasks(ids, model_id, person_id, submission_key=submission_key)


ACTIONS: dict[str, dict[str, BulkAction]] = {
    "task": {
        "run": BulkAction(lambda ids, person_id, **kw: task_service.run_tasks(ids), _outcome),
        "retry": BulkAction(lambda ids, person_id, **kw: task_service.retry_failed(ids), _outcome),
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
        raise ValidationError("This action cannot be applied to all matching rows.")
    return found


def supports(list_name: str, action: str) -> bool:
    """Tell whether ``action`` can run on all matching rows of ``list_name``."""
    return action in ACTIONS.get(list_name, {})


def queue_bulk_action(selection: Selection, action: str, extra: dict) -> int:
    """Count the matching rows and enqueue the job that applies ``action`` to them."""
    from llmadmin.queues import enqueue

    find_action(selection.list_name, action)
    count = selections.count_matching(selection)
    db.session.commit()
    if count == 0:
        raise ValidationError("No rows match the current search and filters.")
    enqueue(
        "llm",
        "llmadmin.jobs.bulk.apply_bulk_action",
        selection.to_dict(),
        action,
        extra,
        job_timeout=3600,
        description=f"{action} on all {count} matching {selection.list_name} rows",
    )
    return count


def apply_bulk_action(selection_data: dict, action: str, extra: dict) -> int:
    """Expand the stored selection in chunks of ids and apply the action's service to each."""
    selection = Selection.from_dict(selection_data)
    bulk_action = find_action(selection.list_name, action)
    done, last_id = 0, 0
    while True:
        chunk = selections.matching_ids(selection, after=last_id, limit=BULK_CHUNK)
        db.session.commit()
        if not chunk:
            break
        bulk_action.apply(chunk, selection.person_id, **extra)
        done += len(chunk)
        last_id = chunk[-1]
    logger.info("bulk %s applied to %d %s rows", action, done, selection.list_name)
    return done
