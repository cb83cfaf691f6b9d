"""Making a batch's tasks: the request stores a VALIDATING row, a job creates the tasks.

``accept_file`` (the admin's confirm, and ``/v1/batches`` through
``create_batch_from_file``) stores one Batch row naming the file, commits, and enqueues
``llmadmin.jobs.batches.create_batch_tasks``; the request answers at once.

The job (``run_creation``) is safe to run twice and after a crash: it owns the row through
``Batch.job_id``, and each chunk of tasks (``INSERT_BATCH`` lines) is committed together
with the row's ``last_line`` by a conditional update (``WHERE job_id = this job AND
last_line = where this run started the chunk``), so a second delivery of the same job, or a
run re-sent by the housekeeping pass, resumes after the last committed line and never
inserts a line twice. With ``all_or_nothing`` (OpenAI's batches) the whole file is checked
first; a refused file leaves one FAILED batch holding its errors and no task.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from datetime import timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import insert, select, update

from llmadmin import queues
from llmadmin.engine import dispatch
from llmadmin.errors import LLMAdminError, QueueUnavailable, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import BATCHES, transition
from llmadmin.models import Batch, Task
from llmadmin.models.base import utcnow
from llmadmin.models.batch import BatchStatus
from llmadmin.models.task import CANCELED, PENDING, QUEUED, RUNNING
from llmadmin.services import audit, batch_files, downloads
from llmadmin.services import tasks as task_service
from llmadmin.services.batch_checks import MAX_STORED_ERRORS, check_lines, refuse_invalid_lines
from llmadmin.services.batch_uploads import discard_upload
from llmadmin.services.jobs_control import stop_jobs_without_live_tasks
from llmadmin.texts import error_columns, said_frame

logger = logging.getLogger(__name__)

JOB = "llmadmin.jobs.batches.create_batch_tasks"
INSERT_BATCH = task_service.INSERT_BATCH
PROGRESS_EVERY = 10_000  # lines checked between progress stamps while validating a file
WINDOW = re.compile(r"^(\d{1,3})h$")
ACTIVE = (PENDING, QUEUED, RUNNING)


class LostOwnership(Exception):
    """Another run took the batch over, or someone canceled it: this run stops."""


def window_hours(completion_window: str) -> int:
    """Return the hours of a completion window ("24h"), or refuse it."""
    found = WINDOW.match(str(completion_window or ""))
    if not found or not 1 <= int(found.group(1)) <= 168:
        raise ValidationError(
            _("The completion window must be a number of hours such as 24h (1h to 168h)."),
            field="completion_window",
        )
    return int(found.group(1))


# --- the request side --------------------------------------------------------------------


def accept_file(
    path: str,
    fmt: str,
    creator_id: int,
    label: str,
    *,
    source_name: str | None = None,
    all_or_nothing: bool = False,
    upload_id: str | None = None,
    line_count: int | None = None,
    completion_window: str = "24h",
) -> tuple[Batch, bool]:
    """Store a VALIDATING batch for ``path``, commit, then enqueue its creation job.

    Return the row and whether the job was queued (when Redis is down the row waits and
    the housekeeping pass sends it later).
    """
    hours = window_hours(completion_window)
    now = utcnow()
    batch = Batch(
        name=label,
        creator_id=creator_id,
        source_name=source_name,
        source_format=fmt,
        status=BatchStatus.VALIDATING,
        created_at=now,
        progress_at=now,
        completion_window=completion_window,
        expires_at=now + timedelta(hours=hours),
        source_path=os.path.abspath(path),
        upload_id=upload_id,
        all_or_nothing=all_or_nothing,
        line_count=line_count,
        job_id=new_job_id(),
    )
    db.session.add(batch)
    db.session.flush()
    audit.record(
        "create_batch", "batch", str(batch.id), f"batch {label!r} from {fmt}", commit=False
    )
    db.session.commit()
    return batch, enqueue_creation(batch.id, batch.job_id)


def new_job_id() -> str:
    """Return a fresh id for a batch's creation job."""
    return f"batch-{uuid.uuid4().hex}"


def enqueue_creation(batch_id: int, job_id: str) -> bool:
    """Enqueue the batch's creation job by its dotted name; False when Redis is down."""
    try:
        queues.enqueue(JOB, batch_id, job_id, job_id=job_id, description=f"batch #{batch_id}")
    except QueueUnavailable:
        logger.warning("batch %s waits for the queue: Redis is unreachable", batch_id)
        return False
    return True


# --- the worker side ---------------------------------------------------------------------


def run_creation(batch_id: int, job_id: str) -> str:
    """Create the batch's tasks after its last committed line; a stale delivery does nothing."""
    claimed = db.session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == BatchStatus.VALIDATING)
        .where(Batch.job_id == job_id)
        .values(creation_attempts=Batch.creation_attempts + 1, progress_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        logger.info("batch %s: job %s no longer owns it; nothing to do", batch_id, job_id)
        return "skipped"
    batch = db.session.get(Batch, batch_id)
    locale = downloads.requester_settings(batch.creator_id)[0]
    with force_locale(locale):
        try:
            return _create(batch, job_id)
        except LostOwnership:
            db.session.rollback()
            logger.info("batch %s changed hands or was canceled; job %s stops", batch_id, job_id)
            _discard_if_done(batch_id)
            return "stopped"
        except ValidationError as exc:
            db.session.rollback()
            fail_creation(batch_id, job_id, str(exc), getattr(exc, "errors", None))
            return BatchStatus.FAILED
        except Exception as exc:  # recorded on the row; the log keeps the detail
            db.session.rollback()
            logger.exception("creating the tasks of batch %s failed", batch_id)
            fail_creation(batch_id, job_id, _describe(exc))
            return BatchStatus.FAILED


def _create(batch: Batch, job_id: str) -> str:
    batch_id, path, fmt = batch.id, batch.source_path, batch.source_format
    creator_id, start = batch.creator_id, batch.last_line
    if not path or not os.path.isfile(path):
        raise ValidationError(_("The batch's file is missing; upload it again."), field="file")
    if fmt != "xlsx":
        batch_files.sniff_text(path)  # another encoding, a binary file: one clear message
    if batch.all_or_nothing and start == 0:
        _validate_all(batch_id, job_id, path, fmt, creator_id)
    chunk = _Chunk(batch_id, job_id, start)
    for checked in check_lines(path, fmt, creator_id):
        if checked.number <= start:
            continue  # committed by an earlier run
        chunk.add(checked)
        if chunk.full():
            chunk.commit()
    chunk.commit()
    return _finish(batch_id, job_id)


def _validate_all(batch_id: int, job_id: str, path: str, fmt: str, creator_id) -> None:
    """Check the whole file before any task exists (OpenAI's batches: all or nothing)."""

    def progress(lines: int) -> None:
        if lines % PROGRESS_EVERY == 0:
            _own(batch_id, job_id, progress_at=utcnow())

    lines = refuse_invalid_lines(path, fmt, creator_id, progress)
    _own(batch_id, job_id, line_count=lines, progress_at=utcnow())


def _own(batch_id: int, job_id: str, *conditions, **values) -> None:
    """Write ``values`` on the row (and commit) only while this run owns it; else stop."""
    moved = db.session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == BatchStatus.VALIDATING)
        .where(Batch.job_id == job_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise LostOwnership()
    db.session.commit()


class _Chunk:
    """Lines read since the last commit: their task rows, errors and counts."""

    def __init__(self, batch_id: int, job_id: str, last_line: int) -> None:
        self.batch_id, self.job_id, self.last_line = batch_id, job_id, last_line
        self.rows: list[dict] = []
        self.errors: list[dict] = []
        self.lines = 0
        self.upto = last_line

    def add(self, checked) -> None:
        self.lines += 1
        self.upto = checked.number
        if checked.row is None:
            self.errors.append(
                {
                    "line": checked.number,
                    "custom_id": checked.custom_id,
                    "field": checked.field,
                    "message": checked.message,  # in the requester's language (API, files)
                    "text": said_frame(checked.message),  # said again in each reader's
                }
            )
            return
        checked.row.update(
            batch_id=self.batch_id, batch_line=checked.number, custom_id=checked.custom_id
        )
        self.rows.append(checked.row)

    def full(self) -> bool:
        return self.lines >= INSERT_BATCH

    def commit(self) -> None:
        """Insert the rows and move ``last_line`` in one transaction; then send the tasks."""
        if not self.lines:
            return
        table = Task.__table__
        ids = []
        if self.rows:
            ids = sorted(
                db.session.execute(insert(table).returning(table.c.id), self.rows).scalars()
            )
        values = {
            "last_line": self.upto,
            "lines": Batch.lines + self.lines,
            "total": Batch.total + len(ids),
            "progress_at": utcnow(),
        }
        if self.errors:
            values["invalid_lines"] = Batch.invalid_lines + len(self.errors)
            values["line_errors"] = self._merged_errors()
        _own(self.batch_id, self.job_id, Batch.last_line == self.last_line, **values)
        self.last_line = self.upto
        self.rows, self.errors, self.lines = [], [], 0
        if ids:
            dispatch.dispatch(
                ids
            )  # a crash before this: housekeeping sends them (run_requested_at)

    def _merged_errors(self) -> str | None:
        stored = db.session.execute(
            select(Batch.line_errors).where(Batch.id == self.batch_id)
        ).scalar_one_or_none()
        kept = json.loads(stored) if stored else []
        kept += self.errors[: max(0, MAX_STORED_ERRORS - len(kept))]
        return json.dumps(kept, ensure_ascii=False) if kept else None


def _finish(batch_id: int, job_id: str) -> str:
    """Every line is read: the batch is in progress (or failed when no line made a task)."""
    db.session.expire_all()
    batch = db.session.get(Batch, batch_id)
    if batch.lines == 0 or batch.total == 0:
        message = (
            _("The file has no lines to run.")
            if batch.lines == 0
            else _(
                "%(invalid)s of %(lines)s line(s) are invalid; nothing was created.",
                invalid=f"{batch.invalid_lines:,}",
                lines=f"{batch.lines:,}",
            )
        )
        fail_creation(batch_id, job_id, message)
        return BatchStatus.FAILED
    moved = BATCHES.transition(
        [batch_id],
        BatchStatus.IN_PROGRESS,
        from_statuses=(BatchStatus.VALIDATING,),
        where=Batch.job_id == job_id,
        commit=False,
        line_count=batch.lines,
        source_path=None,
    )
    if not moved:
        db.session.rollback()
        raise LostOwnership()
    audit.record(
        "create_batch_tasks",
        "batch",
        str(batch_id),
        f"batch #{batch_id}: {batch.total} task(s), {batch.invalid_lines} invalid line(s)",
        commit=False,
    )
    db.session.commit()
    waiting = list(
        db.session.execute(
            select(Task.id).where(Task.batch_id == batch_id, Task.status == PENDING)
        ).scalars()
    )
    if waiting:  # chunks whose dispatch a crash cut short
        dispatch.dispatch(waiting)
    _discard_if_done(batch_id)
    return BatchStatus.IN_PROGRESS


def fail_creation(
    batch_id: int, job_id: str | None, message: str, errors: list[dict] | None = None
) -> bool:
    """Fail a batch still being created: why, its rejected lines; its tasks are canceled."""
    values = {"error": message[:2000], "source_path": None}
    if errors is not None:
        stored = [
            {
                "line": e["index"],
                "custom_id": None,
                "field": e["field"],
                "message": e["message"],
                "text": said_frame(e["message"]),
            }
            for e in errors[:MAX_STORED_ERRORS]
        ]
        values.update(
            invalid_lines=len(errors),
            line_errors=json.dumps(stored, ensure_ascii=False) if stored else None,
        )
    same_job = Batch.job_id.is_(None) if job_id is None else Batch.job_id == job_id
    moved = BATCHES.transition(
        [batch_id],
        BatchStatus.FAILED,
        from_statuses=(BatchStatus.VALIDATING,),
        where=same_job,
        **values,
    )
    if moved:
        cancel_unfinished(batch_id, "batch_failed")
        _discard_if_done(batch_id)
    return bool(moved)


def cancel_unfinished(batch_id: int, kind: str, **values) -> int:
    """Cancel the batch's unfinished tasks; return how many.

    ``kind`` is their error class and the key of their text in ``texts.TASK_TEXTS``.
    """
    rows = db.session.execute(
        select(Task.id, Task.job_id).where(Task.batch_id == batch_id, Task.status.in_(ACTIVE))
    ).all()
    changed = transition(
        [task_id for task_id, _job in rows],
        CANCELED,
        **error_columns(kind, **values),
        error_kind=kind,
        run_requested_at=None,
        queue_note=None,
    )
    stop_jobs_without_live_tasks({job for _id, job in rows if job})
    return len(changed)


def _discard_if_done(batch_id: int) -> None:
    """Remove an admin upload once its batch no longer needs the file."""
    db.session.expire_all()
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.status == BatchStatus.VALIDATING or not batch.upload_id:
        return
    discard_upload(batch.upload_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LLMAdminError):
        return str(exc)
    return _(
        "Creating the tasks stopped unexpectedly (%(error)s); the tasks created so far were "
        "canceled. Correct the problem and upload the file again.",
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
