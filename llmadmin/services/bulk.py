"""Bulk actions on "all rows matching the current search and filters".

Flask-Admin only posts the ticked ids of the visible page. For everything that
matches, the request stores the list URL's query string and enqueues one job; the job
rebuilds the very same query (same view, same filters, same per-person scope) in the
worker and applies the action's service in chunks.
"""

from __future__ import annotations

import logging

from flask import current_app
from flask_login import login_user

from llmadmin import queues
from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import Person

logger = logging.getLogger(__name__)

BULK_CHUNK = 1000


def find_view(endpoint: str):
    """Return the admin view registered under ``endpoint``."""
    admin = current_app.extensions["llmadmin.admin"]
    for view in admin._views:
        if getattr(view, "endpoint", None) == endpoint:
            return view
    raise ValidationError(f"Unknown list {endpoint!r}.")


def queue_bulk_action(
    endpoint: str, action: str, list_args: str, person_id: int, extra: dict
) -> int:
    """Count the matching rows and enqueue the job that applies ``action`` to them."""

    with current_app.test_request_context(f"/?{list_args}"):
        login_user(db.session.get(Person, person_id))
        count = find_view(endpoint).matching_query().count()
    if count == 0:
        raise ValidationError("No rows match the current search and filters.")
    queues.enqueue(
        "llmadmin.jobs.bulk.apply_bulk_action",
        endpoint,
        action,
        list_args,
        person_id,
        extra,
        # Shown in the RQ dashboard: numbers only, never the (posted) action or list name.
        description=f"bulk action on {count} matching row(s) for person #{person_id}",
    )
    return count


def apply_bulk_action(
    endpoint: str, action: str, list_args: str, person_id: int, extra: dict
) -> int:
    """Expand the stored selection in chunks and apply the action's service to each."""
    person = db.session.get(Person, person_id)
    if person is None or not person.active:
        logger.warning("bulk %s skipped: person %s is gone or inactive", action, person_id)
        return 0
    done = 0
    with current_app.test_request_context(f"/?{list_args}"):
        login_user(person)
        view = find_view(endpoint)
        service = view.bulk_services[action]
        ids = [row_id for (row_id,) in view.matching_query().with_entities(view.model.id).all()]
        db.session.commit()
        for start in range(0, len(ids), BULK_CHUNK):
            chunk = ids[start : start + BULK_CHUNK]
            service(chunk, person_id, **extra)
            done += len(chunk)
    logger.info("bulk %s applied to %d %s rows", action, done, endpoint)
    return done
