"""Batches: an uploaded file of prompts checked line by line, then turned into tasks.

The flow (admin upload, and later ``/v1/batches``): ``store_upload`` keeps the file under
the instance folder (``services.batch_uploads``); ``validate_upload``
(``services.batch_checks``) streams it and returns a ``Summary`` (counts per
model, the first rows, every line's error up to a cap) without creating anything;
``create_batch`` stores one VALIDATING Batch row and enqueues a job that streams the file
again and inserts the valid lines' tasks in chunks (``services.batch_creation``), sending
each chunk through the usual path; the request answers at once.

A batch's counts are read from its tasks (one GROUP BY), and its status is derived from
them (``refresh``) when someone looks and by the housekeeping pass
(``services.batch_sweep``): IN_PROGRESS becomes COMPLETED and CANCELLING becomes CANCELLED
once no task is left waiting or running; past its completion window it is EXPIRED.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from llmadmin.errors import Conflict, ItemsInvalid, NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import BATCHES
from llmadmin.models import Batch, Person, Task
from llmadmin.models.base import utcnow
from llmadmin.models.batch import OPEN_BATCH_STATUSES, BatchStatus
from llmadmin.models.task import CANCELED, FAILURE, PENDING, QUEUED, RUNNING, SUCCESS
from llmadmin.services import batch_creation, downloads
from llmadmin.services import tasks as task_service
from llmadmin.services.batch_checks import (  # noqa: F401  (validate_* for callers)
    Summary,
    check_lines,
    validate_file,
    validate_upload,
)
from llmadmin.services.batch_files import FORMATS
from llmadmin.services.batch_uploads import (  # noqa: F401  (the upload steps, for callers)
    claim,
    discard_upload,
    store_upload,
    upload_info,
)
from llmadmin.services.selections import Selection
from llmadmin.services.tasks import Outcome

logger = logging.getLogger(__name__)


# --- counts and status -------------------------------------------------------------------


@dataclass
class Counts:
    """How many of a batch's tasks are in each state."""

    pending: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    last_finished_at: datetime | None = None  # when its last task finished

    @property
    def total(self) -> int:
        return self.pending + self.queued + self.running + self.done

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.canceled

    @property
    def active(self) -> int:
        return self.pending + self.queued + self.running

    def as_dict(self) -> dict[str, int]:
        """Return the counts, total first (queued includes tasks waiting to be sent)."""
        return {
            "total": self.total,
            "queued": self.pending + self.queued,
            "running": self.running,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "canceled": self.canceled,
        }


_COUNT_FIELD = {
    PENDING: "pending",
    QUEUED: "queued",
    RUNNING: "running",
    SUCCESS: "succeeded",
    FAILURE: "failed",
    CANCELED: "canceled",
}


def counts(batch_ids) -> dict[int, Counts]:
    """Return the counts of every given batch in one GROUP BY query."""
    ids = sorted({int(i) for i in batch_ids})
    found = {batch_id: Counts() for batch_id in ids}
    if not ids:
        return found
    rows = db.session.execute(
        select(Task.batch_id, Task.status, func.count(), func.max(Task.finished_at))
        .where(Task.batch_id.in_(ids))
        .group_by(Task.batch_id, Task.status)
    ).all()
    for batch_id, status, number, last in rows:
        row = found[batch_id]
        name = _COUNT_FIELD.get(status)
        if name:
            setattr(row, name, number)
        if last is not None and (row.last_finished_at is None or last > row.last_finished_at):
            row.last_finished_at = last
    return found


def refresh(batches: list[Batch]) -> dict[int, Counts]:
    """Return the batches' counts, finishing those with no task left to run (one commit)."""
    found = counts(b.id for b in batches)
    finished = {BatchStatus.IN_PROGRESS: [], BatchStatus.FINALIZING: [], BatchStatus.CANCELLING: []}
    for batch in batches:
        if batch.status in finished and found[batch.id].active == 0:
            finished[batch.status].append(batch.id)
    targets = {
        BatchStatus.IN_PROGRESS: (BatchStatus.COMPLETED, "completed_at"),
        BatchStatus.FINALIZING: (BatchStatus.COMPLETED, "completed_at"),
        BatchStatus.CANCELLING: (BatchStatus.CANCELLED, "cancelled_at"),
    }
    moved = False
    for status, ids in finished.items():
        target, stamp = targets[status]
        for batch_id in ids:  # stamped with when its last task finished, not when seen
            last = found[batch_id].last_finished_at
            when = {stamp: last} if last is not None else {}
            moved |= bool(
                BATCHES.transition(
                    [batch_id], target, from_statuses=(status,), commit=False, **when
                )
            )
    if moved:
        db.session.commit()  # expires the loaded rows: they show the new status
    return found


def get_batch(batch_id: int, person: Person) -> Batch:
    """Load a batch the person may see (their own; an admin: any), or raise NotFound."""
    row = db.session.get(Batch, batch_id)
    if row is None or (not person.is_admin and row.creator_id != person.id):
        raise NotFound(_("Batch #%(id)s does not exist.", id=batch_id))
    return row


# --- making the batch --------------------------------------------------------------------


def create_batch(
    upload_id: str,
    creator_id: int,
    name: str | None = None,
    *,
    all_or_nothing: bool = False,
) -> Batch:
    """Accept the batch of an upload: a VALIDATING row now, its tasks made by a job.

    An upload whose preview found no valid line is refused at once (``ItemsInvalid``) and
    stays usable; otherwise the upload is claimed (the same form posted twice makes one
    batch) and its file is discarded once the job is done with it.
    """
    path, meta = upload_info(upload_id, creator_id)
    summary = meta.get("summary") or {}
    if summary.get("lines") == 0:
        raise ValidationError(_("The file has no lines to run."), field="file")
    if summary and (summary["valid"] == 0 or (all_or_nothing and summary["invalid"])):
        raise ItemsInvalid(
            _(
                "%(invalid)s of %(lines)s line(s) are invalid; nothing was created.",
                invalid=f"{summary['invalid']:,}",
                lines=f"{summary['lines']:,}",
            ),
            [],
        )
    claimed = claim(upload_id)
    try:
        return create_batch_from_file(
            path,
            meta["format"],
            creator_id,
            name=name,
            source_name=meta.get("source_name"),
            all_or_nothing=all_or_nothing,
            upload_id=upload_id,
            line_count=summary.get("lines"),
        )
    except BaseException:
        os.replace(claimed, claimed.removesuffix(".taken"))
        raise


def batch_of_upload(upload_id: str, creator_id: int) -> Batch | None:
    """The person's batch already made from this upload (its confirm form posted again)."""
    if not isinstance(upload_id, str) or len(upload_id) > 32:
        return None
    return db.session.execute(
        select(Batch).where(Batch.upload_id == upload_id, Batch.creator_id == creator_id)
    ).scalar_one_or_none()


def create_batch_from_file(
    path: str,
    fmt: str,
    creator_id: int,
    *,
    name: str | None = None,
    source_name: str | None = None,
    all_or_nothing: bool = False,
    keep_failed: bool = True,
    upload_id: str | None = None,
    line_count: int | None = None,
    completion_window: str = "24h",
) -> Batch:
    """Accept ``path`` as one batch: the row is VALIDATING at once, a job makes its tasks.

    The answer does not wait for the file to be read (OpenAI's ``POST /v1/batches``); the
    job validates and creates in chunks (``services.batch_creation``). A refused file
    (with ``all_or_nothing``, any invalid line; otherwise no valid line) leaves one FAILED
    batch holding the errors and no task, as OpenAI's failed validation does: that is the
    only way an answer already given can report it, so ``keep_failed`` must stay True.
    ``batch.queued`` tells whether the job reached the queue (else housekeeping sends it).
    """
    if not keep_failed:
        raise ValueError("A batch is checked after the answer: a refused file keeps its row.")
    label = task_service.clean_text(name, _("Name"), required=False, max_chars=200)
    label = label or (source_name or _("Batch"))[:200]
    if fmt not in FORMATS:
        raise ValidationError(_("Upload a .csv, .xlsx or .jsonl file."), field="file")
    if not os.path.isfile(path):
        raise ValidationError(_("The batch's file is missing; upload it again."), field="file")
    batch, queued = batch_creation.accept_file(
        path,
        fmt,
        creator_id,
        label,
        source_name=source_name,
        all_or_nothing=all_or_nothing,
        upload_id=upload_id,
        line_count=line_count,
        completion_window=completion_window,
    )
    batch.queued = queued
    return batch


# --- acting on a batch -------------------------------------------------------------------


def cancel_batch(batch_id: int) -> Outcome:
    """Cancel a batch: its unfinished tasks are canceled; finished results are kept."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(_("Batch #%(id)s does not exist.", id=batch_id))
    if not BATCHES.transition([batch_id], BatchStatus.CANCELLING, commit=False):
        status = batch.status
        db.session.rollback()
        raise Conflict(
            _(
                "Batch #%(id)s is %(status)s; only a batch in progress can be canceled.",
                id=batch_id,
                status=status_label(status),
            )
        )
    db.session.commit()
    outcome = task_service.cancel_tasks(_task_ids(batch_id, (PENDING, QUEUED, RUNNING)))
    db.session.expire_all()
    refresh([db.session.get(Batch, batch_id)])
    return outcome


def retry_failed_lines(batch_id: int) -> Outcome:
    """Run the batch's failed tasks again; a finished batch is in progress again."""
    failed = _task_ids(batch_id, (FAILURE,))
    if not failed:
        return Outcome()
    reopen = (
        BatchStatus.COMPLETED,
        BatchStatus.CANCELLED,
        BatchStatus.EXPIRED,
        BatchStatus.FINALIZING,
    )
    batch = db.session.get(Batch, batch_id)
    hours = batch_creation.window_hours(batch.completion_window) if batch else 24
    BATCHES.transition(  # a new window: an expired batch retried is not expired at once again
        [batch_id],
        BatchStatus.IN_PROGRESS,
        from_statuses=reopen,
        commit=False,
        expires_at=utcnow() + timedelta(hours=hours),
    )
    return task_service.run_tasks(failed)  # commits the batch's move with the tasks'


def _task_ids(batch_id: int, statuses) -> list[int]:
    return list(
        db.session.execute(
            select(Task.id).where(Task.batch_id == batch_id, Task.status.in_(statuses))
        ).scalars()
    )


def export_results(batch_id: int, person: Person, fmt: str):
    """Queue the batch's results file (one row per input line) in the Download Center."""
    batch = get_batch(batch_id, person)
    selection = Selection(  # in line order: a batch's ids follow its lines
        "task", person.id, filters=(("batch", "equals", str(batch.id)),), sort="id"
    )
    return downloads.create_export(
        "batch_results",
        fmt,
        selection,
        batch={"id": batch.id, "name": batch.name},
    )


def is_open(batch: Batch) -> bool:
    """Whether the batch's tasks may still change."""
    return batch.status in OPEN_BATCH_STATUSES


STATUS_LABELS = {
    BatchStatus.VALIDATING: _l("Validating"),
    BatchStatus.IN_PROGRESS: _l("In progress"),
    BatchStatus.FINALIZING: _l("Finalizing"),
    BatchStatus.COMPLETED: _l("Completed"),
    BatchStatus.FAILED: _l("Failed"),
    BatchStatus.EXPIRED: _l("Expired"),
    BatchStatus.CANCELLING: _l("Cancelling"),
    BatchStatus.CANCELLED: _l("Cancelled"),
}


def status_label(status: str) -> str:
    """Return a batch status as people read it, in their language."""
    label = STATUS_LABELS.get(status)
    return str(label) if label is not None else status
