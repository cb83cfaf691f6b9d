"""Deleting Download rows removes their files, asynchronously and only after the commit.

The equivalent of a post-delete signal: the session collects the storage paths of
deleted rows at flush, enqueues one removal job after the commit and forgets them on a
rollback, so a rolled-back delete keeps its file. The worker's job only removes paths
under the storage root.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy import delete, event, select

from llmadmin import queues
from llmadmin.database import in_batches
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.services.download_files import remove_quietly, resolve_storage_path

logger = logging.getLogger(__name__)


# --- deleting rows removes their files, but only once the delete is committed ------------

_PATHS_KEY = "llmadmin.download_files_to_remove"


def _collect_deleted_files(session, flush_context, instances) -> None:
    for obj in session.deleted:
        if isinstance(obj, Download) and obj.storage_path:
            session.info.setdefault(_PATHS_KEY, set()).add(obj.storage_path)


def _enqueue_removal_after_commit(session) -> None:
    paths = session.info.pop(_PATHS_KEY, None)
    if paths:
        enqueue_file_removal(sorted(paths))


def _forget_after_rollback(session) -> None:
    session.info.pop(_PATHS_KEY, None)  # the rows are back, so their files stay


def register_session_events() -> None:
    """Hook the session so committed Download deletes enqueue their file removal."""
    hooks = (
        ("before_flush", _collect_deleted_files),
        ("after_commit", _enqueue_removal_after_commit),
        ("after_rollback", _forget_after_rollback),
    )
    for name, hook in hooks:
        if not event.contains(db.session, name, hook):
            event.listen(db.session, name, hook)


def enqueue_file_removal(paths: list[str]) -> bool:
    """Enqueue the removal of stored files; when Redis is down the orphan sweep does it."""
    try:
        queues.enqueue(
            "llmadmin.jobs.exports.remove_download_files",
            paths,
            description=f"remove {len(paths)} download file(s)",
        )
    except QueueUnavailable:
        logger.warning("file removal not queued (Redis down); the sweep removes them later")
        return False
    return True


def delete_downloads(download_ids: list[int]) -> int:
    """Delete download rows; their files are removed after the commit. Return the count."""
    ids = sorted({int(i) for i in download_ids})
    deleted = 0
    for part in in_batches(ids):
        result = db.session.execute(
            delete(Download)
            .where(Download.id.in_(part))
            .returning(Download.storage_path)
            .execution_options(synchronize_session=False)
        ).all()
        deleted += len(result)
        paths = {path for (path,) in result if path}
        db.session.info.setdefault(_PATHS_KEY, set()).update(paths)
    db.session.commit()
    return deleted


def remove_files(paths: list[str]) -> int:
    """Remove stored files that no download row points at any more; return how many."""
    removed = 0
    for relative in paths:
        path = resolve_storage_path(relative)
        if path is None or not os.path.isfile(path):
            continue
        in_use = db.session.execute(
            select(Download.id).where(Download.storage_path == relative).limit(1)
        ).first()
        if in_use is not None:
            continue
        remove_quietly(path)
        removed += 1
    db.session.commit()
    return removed
