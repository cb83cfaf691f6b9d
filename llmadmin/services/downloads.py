"""Download Center: queue exports, write them in the worker, delete and sweep their files.

The request only records *what* to export (ticked ids, or the list URL's query string)
and enqueues ``jobs.exports.export_download(id)`` after the commit. The worker rebuilds
the query with the requester's own permissions, streams it into a temporary file and
moves the finished file into place, so a row never points at a partial file.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import current_app, g
from flask_login import login_user
from sqlalchemy import delete, event, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased

from llmadmin import crypto
from llmadmin.errors import LLMAdminError, QueueUnavailable, ValidationError
from llmadmin.extensions import db
from llmadmin.models import Download, LLMModel, Person, Task
from llmadmin.models.base import utcnow
from llmadmin.models.download import FAILURE, PENDING, RUNNING, SUCCESS

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5000  # rows between progress updates (each its own short transaction)
YIELD_PER = 2000  # rows fetched per round trip from the server-side cursor
MAX_TICKED_IDS = 10_000
ORPHAN_GRACE = timedelta(hours=1)  # never touch a young file: an export may be writing it
PENDING_GRACE = timedelta(minutes=2)
PENDING_GIVE_UP = timedelta(days=1)  # stop re-sending a job that keeps dying before its claim
RUNNING_GRACE = timedelta(minutes=1)
SWEEP_EVERY_SECONDS = 60

# target status -> statuses it may be reached from (see ``transition``)
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    RUNNING: (PENDING,),
    SUCCESS: (RUNNING,),
    FAILURE: (PENDING, RUNNING),
}


class ExportDenied(LLMAdminError):
    """The requester may no longer read the rows of this export."""


class ExportCanceled(LLMAdminError):
    """The download row was deleted while its file was being written."""


# --- what each list exports (never a secret) ---------------------------------------------

@dataclass(frozen=True)
class Column:
    header: str
    expr: Any  # a column of the list's model or of an aliased related model
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Source:
    label: str
    endpoint: str  # the admin view whose query (and per-person scope) selects the rows
    formats: tuple[str, ...]
    columns: Callable[[], tuple[list[Column], list[tuple]]]  # -> columns, outer joins


def _task_columns():
    model, creator = aliased(LLMModel), aliased(Person)
    columns = [
        Column("ID", Task.id), Column("Name", Task.name), Column("Status", Task.status),
        Column("Model", model.name), Column("Creator", creator.name),
        Column("Attempts", Task.attempts), Column("Latency (ms)", Task.latency_ms),
        Column("Prompt tokens", Task.prompt_tokens), Column("Output tokens", Task.completion_tokens),
        Column("Cost", Task.cost), Column("Error class", Task.error_kind), Column("Error", Task.error),
        Column("Created at", Task.created_at), Column("Started at", Task.started_at),
        Column("Finished at", Task.finished_at), Column("System prompt", Task.system_prompt),
        Column("Prompt", Task.prompt), Column("Output", Task.result),
    ]
    return columns, [(model, Task.model_id == model.id), (creator, Task.creator_id == creator.id)]


def _masked_key(token: str | None) -> str:
    if not token:
        return ""
    try:
        return crypto.mask(crypto.decrypt(token))
    except crypto.SecretUnreadable:
        return "(unreadable)"


def _model_columns():
    maintainer = aliased(Person)
    columns = [
        Column("ID", LLMModel.id), Column("Name", LLMModel.name),
        Column("Model name", LLMModel.model_name), Column("Base URL", LLMModel.base_url),
        Column("API key (masked)", LLMModel.api_key_encrypted, _masked_key),
        Column("Enabled", LLMModel.enabled), Column("Simulated", LLMModel.simulated),
        Column("Stream", LLMModel.stream), Column("Temperature", LLMModel.temperature),
        Column("Max tokens", LLMModel.max_tokens), Column("Timeout (s)", LLMModel.timeout_seconds),
        Column("Max concurrent", LLMModel.max_concurrency), Column("Requests/min", LLMModel.rpm_limit),
        Column("Max attempts", LLMModel.max_attempts), Column("Maintainer", maintainer.name),
        Column("Price per 1K input", LLMModel.price_input_per_1k),
        Column("Price per 1K output", LLMModel.price_output_per_1k),
        Column("Created at", LLMModel.created_at), Column("Updated at", LLMModel.updated_at),
    ]
    return columns, [(maintainer, LLMModel.maintainer_id == maintainer.id)]


def _person_columns():  # password_hash is never exported
    columns = [
        Column("ID", Person.id), Column("Name", Person.name), Column("Email", Person.email),
        Column("Phone", Person.phone), Column("Role", Person.role), Column("Active", Person.active),
        Column("Created at", Person.created_at),
    ]
    return columns, []


SOURCES: dict[str, Source] = {
    "tasks": Source("Tasks", "task", ("csv", "xlsx", "zip"), _task_columns),
    "llm_models": Source("LLM Models", "llmmodel", ("csv", "xlsx"), _model_columns),
    "people": Source("People", "person", ("csv", "xlsx"), _person_columns),
}


def source_for_endpoint(endpoint: str) -> str:
    """Return the SOURCES key of the admin list ``endpoint`` ("" when it has none)."""
    return next((key for key, source in SOURCES.items() if source.endpoint == endpoint), "")


# The ZIP bundle keeps these long texts as one file per task instead of CSV cells.
BUNDLE_TEXTS = {"tasks": (("Prompt", "prompts"), ("Output", "outputs"))}


# --- state changes -----------------------------------------------------------------------

def transition(download_id: int, to_status: str, *, where=None, **values) -> bool:
    """Move a download to ``to_status`` if its current status allows it; tell if it moved."""
    stmt = update(Download).where(
        Download.id == download_id, Download.status.in_(ALLOWED_FROM[to_status])
    )
    if where is not None:
        stmt = stmt.where(where)
    result = db.session.execute(
        stmt.values(status=to_status, **values).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


# --- the request side --------------------------------------------------------------------

def export_file_name(label: str, fmt: str, when: datetime) -> str:
    """Return the generated, timestamped file name the person downloads."""
    from llmadmin.exports import sanitize_filename

    stem = "-".join(label.split())
    return sanitize_filename(f"{stem}-export-{when:%Y%m%d-%H%M%S}.{fmt}")


def create_export(source_key: str, fmt: str, person_id: int, *, ids: list[int] | None = None,
                  list_args: str | None = None, description: str = "") -> tuple[Download, bool]:
    """Record a PENDING download and enqueue its job; return it and whether it was queued.

    Never counts or reads the rows: that is the worker's job, so this is fast at any size.
    """
    source = SOURCES.get(source_key)
    if source is None or fmt not in source.formats:
        raise ValidationError(f"{fmt.upper()} exports are not available for this list.")
    if (ids is None) == (list_args is None):
        raise ValidationError("Choose either the ticked rows or all matching rows.")
    selection: dict[str, Any] = {"endpoint": source.endpoint}
    if ids is not None:
        selection["ids"] = sorted({int(i) for i in ids})
        if not selection["ids"]:
            raise ValidationError("Tick at least one row to export.")
        if len(selection["ids"]) > MAX_TICKED_IDS:
            raise ValidationError("Too many ticked rows; use “all matching rows” instead.")
    else:
        selection["list_args"] = list_args
    now = utcnow()
    name = f"{source.label} export — {description or 'all rows'}"
    row = Download(name=name[:300], file_name=export_file_name(source.label, fmt, now),
                   file_format=fmt, source=source_key, selection=json.dumps(selection),
                   status=PENDING, creator_id=person_id, created_at=now, job_id=uuid.uuid4().hex)
    db.session.add(row)
    db.session.commit()
    return row, enqueue_export(row.id, row.job_id)


def enqueue_export(download_id: int, job_id: str) -> bool:
    """Enqueue the export job; False when Redis is down (the sweep re-sends it later)."""
    from llmadmin.jobs.exports import export_download
    from llmadmin.queues import enqueue

    try:
        enqueue("reports", export_download, download_id, job_id=job_id,
                job_timeout=current_app.config["JOB_TIMEOUT"],
                description=f"export download #{download_id}")
    except QueueUnavailable:
        logger.warning("download %s stays PENDING: the queue is unreachable", download_id)
        return False
    return True


# --- the worker side ---------------------------------------------------------------------

def run_export(download_id: int) -> str:
    """Claim a PENDING download, write its file and record the outcome; return the status."""
    now = utcnow()
    if not transition(download_id, RUNNING, started_at=now, attempts=Download.attempts + 1,
                      progress_rows=0, error=None):
        logger.info("download %s not PENDING any more: duplicate delivery ignored", download_id)
        return "skipped"
    row = db.session.get(Download, download_id)
    if row is None:
        return "skipped"  # deleted right after the claim
    relative = f"{row.created_at:%Y}/{row.created_at:%m}/{row.id}-{row.file_name}"
    target = os.path.join(_storage_root(), relative)
    started = time.monotonic()
    try:
        count, size, md5 = _write_export(row, target)
    except ExportCanceled:
        db.session.rollback()
        logger.info("download %s deleted while running: nothing kept", download_id)
        return "canceled"
    except Exception as exc:  # every failure is recorded on the row; the log keeps the detail
        db.session.rollback()
        _remove_quietly(target)
        logger.exception("download %s failed", download_id)
        transition(download_id, FAILURE, error=describe_failure(exc), finished_at=utcnow())
        return FAILURE
    if not _record_success(download_id, relative, target, count, size, md5, started):
        return "discarded"
    logger.info("download %s written: %d rows, %d bytes", download_id, count, size)
    return SUCCESS


def _record_success(download_id: int, relative: str, target: str, count: int, size: int,
                    md5: str, started: float) -> bool:
    """Mark the download SUCCESS; if that is impossible, drop the file so none is orphaned."""
    finished = utcnow()
    days = current_app.config.get("DOWNLOAD_RETENTION_DAYS", 7)
    try:
        moved = transition(download_id, SUCCESS, storage_path=relative, size_bytes=size, md5=md5,
                           row_count=count, progress_rows=count, finished_at=finished,
                           duration_ms=(time.monotonic() - started) * 1000,
                           expires_at=finished + timedelta(days=days))
    except SQLAlchemyError:
        db.session.rollback()
        _remove_quietly(target)  # the row stays RUNNING: the sweep fails it later
        raise
    if not moved:
        _remove_quietly(target)  # the row was deleted (or failed by the sweep) meanwhile
    return moved


def describe_failure(exc: BaseException) -> str:
    """Turn an exception into the message the person reads on the download row."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("The server ran out of disk space while writing the file; nothing was kept. "
                "Free some space (or ask an administrator to), then export again.")
    if isinstance(exc, OSError):
        return f"The file could not be written ({exc.strerror or exc}); nothing was kept."
    if isinstance(exc, LLMAdminError):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        detail = str(exc).splitlines()[0][:300]
        return f"Reading the rows from the database failed ({detail}); nothing was kept."
    return f"The export failed unexpectedly ({type(exc).__name__}: {exc}); nothing was kept."[:2000]


def _storage_root() -> str:
    from llmadmin.downloads_web import storage_root

    return storage_root()


def _remove_quietly(path: str | None) -> None:
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove %s: %s", path, exc)


@contextmanager
def acting_as(person: Person, query_string: str = ""):
    """Run code as ``person`` inside a fake request for the list URL ``query_string``."""
    missing = object()
    previous = g.pop("_login_user", missing)
    with current_app.test_request_context(f"/?{query_string}"):
        login_user(person)
        try:
            yield
        finally:
            g.pop("_login_user", None)  # the app context outlives the fake request
            if previous is not missing:
                g._login_user = previous


def export_query(row: Download):
    """Build (not run) the query of exactly the rows this download may contain."""
    from llmadmin.services.bulk import find_view

    selection = json.loads(row.selection or "{}")
    person = db.session.get(Person, row.creator_id) if row.creator_id else None
    if person is None or not person.active:
        raise ExportDenied("The person who asked for this export was deleted or deactivated.")
    columns, joins = SOURCES[row.source].columns()
    with acting_as(person, selection.get("list_args") or ""):
        view = find_view(selection["endpoint"])
        if not view.is_accessible():
            raise ExportDenied("You no longer have access to this list.")
        if "list_args" in selection:
            query = view.matching_query()
        else:
            query = view.get_query().filter(view.model.id.in_(selection.get("ids") or []))
    query = query.with_entities(*(c.expr for c in columns))
    for target, onclause in joins:
        query = query.outerjoin(target, onclause)
    return query.order_by(view.model.id), columns


def iter_rows(query, columns: list[Column]) -> Iterator[tuple]:
    """Stream the query's rows through a server-side cursor, converting masked columns.

    Executed on the session's connection (Core): the rows are plain column tuples, and
    skipping the ORM's result processing makes the export about 15% faster.
    """
    converters = [(i, c.convert) for i, c in enumerate(columns) if c.convert]
    connection = db.session.connection()
    result = connection.execution_options(yield_per=YIELD_PER).execute(query.statement)
    try:
        if not converters:
            yield from result  # Row objects are tuples already
            return
        for row in result:
            values = list(row)
            for i, convert in converters:
                values[i] = convert(values[i])
            yield tuple(values)
    finally:
        result.close()


def report_progress(download_id: int, rows: int) -> None:
    """Store rows written so far in a separate short transaction (the read keeps going)."""
    with db.engine.begin() as conn:
        changed = conn.execute(
            update(Download.__table__).where(Download.id == download_id, Download.status == RUNNING)
            .values(progress_rows=rows)
        ).rowcount
    if not changed:
        raise ExportCanceled("The download was deleted or stopped while its file was written.")


def _write_export(row: Download, target: str) -> tuple[int, int, str]:
    query, columns = export_query(row)
    headers = [c.header for c in columns]
    os.makedirs(os.path.dirname(target), exist_ok=True)
    download_id = row.id
    outcome = write_file(row.file_format, target, headers, iter_rows(query, columns),
                         progress=lambda n: report_progress(download_id, n),
                         texts=BUNDLE_TEXTS.get(row.source))
    db.session.rollback()  # end the long read transaction before the final update
    return outcome


class BundleRow(tuple):
    """A CSV row of the ZIP bundle that also carries its text files."""

    texts: list[tuple[str, str]]


def bundle_rows(headers: list[str], rows, texts) -> tuple[list[str], Iterator[BundleRow]]:
    """Move the ``texts`` columns (header -> folder) out of the rows into text files."""
    moved = [(headers.index(header), folder) for header, folder in texts]
    keep = [i for i in range(len(headers)) if i not in {i for i, _ in moved}]

    def generate():
        for row in rows:
            files, refs = [], []
            for index, folder in moved:
                name = None if row[index] is None else f"{folder}/{row[0]}.txt"
                if name:
                    files.append((name, row[index]))
                refs.append(name)
            out = BundleRow(tuple(row[i] for i in keep) + tuple(refs))
            out.texts = files
            yield out

    return [headers[i] for i in keep] + [f"{h} file" for h, _ in texts], generate()


def write_file(fmt: str, target: str, headers: list[str], rows, *, progress=None,
               texts=None) -> tuple[int, int, str]:
    """Write rows to ``target`` atomically as csv, xlsx or zip; return rows, size and md5."""
    from llmadmin.exports import atomic_write, write_csv, write_xlsx, write_zip_bundle

    options = {"progress": progress, "progress_every": PROGRESS_EVERY}
    if fmt == "zip":
        headers, rows = bundle_rows(headers, rows, texts or ())
    writers = {
        "csv": lambda path: write_csv(path, headers, rows, bom=True, **options),
        "xlsx": lambda path: write_xlsx(path, headers, rows, tmpdir=os.path.dirname(target),
                                        **options),
        "zip": lambda path: write_zip_bundle(path, headers, rows, text_files=lambda r: r.texts,
                                             csv_name="tasks.csv", bom=True, **options),
    }
    outcome = {}
    size, md5 = atomic_write(target, lambda path: outcome.update(result=writers[fmt](path)))
    return outcome["result"].rows, size, md5


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
    hooks = (("before_flush", _collect_deleted_files),
             ("after_commit", _enqueue_removal_after_commit),
             ("after_rollback", _forget_after_rollback))
    for name, hook in hooks:
        if not event.contains(db.session, name, hook):
            event.listen(db.session, name, hook)


def enqueue_file_removal(paths: list[str]) -> bool:
    """Enqueue the removal of stored files; when Redis is down the orphan sweep does it."""
    from llmadmin.jobs.exports import remove_download_files
    from llmadmin.queues import enqueue

    try:
        enqueue("reports", remove_download_files, paths, description="remove download files")
    except QueueUnavailable:
        logger.warning("file removal not queued (Redis down); the sweep removes them later")
        return False
    return True


def delete_downloads(download_ids: list[int]) -> int:
    """Delete download rows; their files are removed after the commit. Return the count."""
    ids = sorted({int(i) for i in download_ids})
    deleted = 0
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        result = db.session.execute(
            delete(Download).where(Download.id.in_(part)).returning(Download.storage_path)
            .execution_options(synchronize_session=False)
        ).all()
        deleted += len(result)
        paths = {path for (path,) in result if path}
        db.session.info.setdefault(_PATHS_KEY, set()).update(paths)
    db.session.commit()
    return deleted


def remove_files(paths: list[str]) -> int:
    """Remove stored files that no download row points at any more; return how many."""
    from llmadmin.downloads_web import resolve_storage_path

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
        _remove_quietly(path)
        removed += 1
    db.session.commit()
    return removed


# --- the sweep: expired downloads, orphan files, jobs that never ran or died -------------

def sweep(now: datetime | None = None, orphan_grace: timedelta = ORPHAN_GRACE) -> dict[str, int]:
    """Remove expired downloads and orphan files, and recover stuck rows; return counts."""
    now = now or utcnow()
    done = {"expired": remove_expired(now), "orphans": remove_orphans(now, orphan_grace)}
    done.update(recover_stuck(now))
    return done


_last_sweep = 0.0


def sweep_downloads() -> dict[str, int] | None:
    """Run ``sweep`` at most once a minute per process and across machines (housekeeping)."""
    global _last_sweep
    if time.monotonic() - _last_sweep < SWEEP_EVERY_SECONDS:
        return None
    _last_sweep = time.monotonic()
    try:
        from llmadmin.queues import get_redis

        key = f"{current_app.config['QUEUE_PREFIX']}:downloads:sweep"
        if not get_redis().set(key, "1", nx=True, ex=SWEEP_EVERY_SECONDS):
            return None
    except (redis.RedisError, OSError, RuntimeError):
        pass  # no lock without Redis; every step below is safe to run twice
    return sweep()


def remove_expired(now: datetime, batch: int = 500) -> int:
    """Delete downloads past their expiry, then their files; return how many."""
    ids = db.session.execute(
        select(Download.id).where(Download.expires_at < now).limit(batch)
    ).scalars().all()
    if not ids:
        db.session.commit()
        return 0
    rows = db.session.execute(
        delete(Download).where(Download.id.in_(ids), Download.expires_at < now)
        .returning(Download.storage_path).execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    remove_files([path for (path,) in rows if path])
    return len(rows)


def remove_orphans(now: datetime, grace: timedelta = ORPHAN_GRACE) -> int:
    """Remove files (and leftover temp files) that no row points at and are older than grace."""
    root = _storage_root()
    if not os.path.isdir(root):
        return 0
    known = set(db.session.execute(
        select(Download.storage_path).where(Download.storage_path.is_not(None))
    ).scalars())
    db.session.commit()
    cutoff = (now - grace).timestamp() if now.tzinfo else _epoch(now - grace)
    removed = 0
    for folder, _subfolders, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            if relative not in known and _older_than(path, cutoff):
                _remove_quietly(path)
                removed += 1
        if folder != root and not os.listdir(folder) and _older_than(folder, cutoff):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # an export just created a file in it
    return removed


def _epoch(naive_utc: datetime) -> float:
    from datetime import UTC

    return naive_utc.replace(tzinfo=UTC).timestamp()


def _older_than(path: str, cutoff: float) -> bool:
    try:
        return os.path.getmtime(path) < cutoff
    except OSError:
        return False


def recover_stuck(now: datetime) -> dict[str, int]:
    """Re-send PENDING rows whose job never ran; fail RUNNING rows whose worker died."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from llmadmin.queues import get_redis

    try:
        connection = get_redis()
        connection.ping()
    except (redis.RedisError, OSError, RuntimeError):
        return {}

    def state(job_id: str | None) -> str | None:
        try:
            return Job.fetch(job_id, connection=connection).get_status(refresh=False) if job_id else None
        except NoSuchJobError:
            return None

    never_started = db.session.execute(
        select(Download.id).where(Download.status == PENDING,
                                  Download.created_at < now - PENDING_GIVE_UP).limit(200)
    ).scalars().all()
    pending = db.session.execute(
        select(Download.id, Download.job_id)
        .where(Download.status == PENDING, Download.created_at < now - PENDING_GRACE,
               Download.created_at >= now - PENDING_GIVE_UP).limit(200)
    ).all()
    running = db.session.execute(
        select(Download.id, Download.job_id, Download.started_at)
        .where(Download.status == RUNNING, Download.started_at < now - RUNNING_GRACE).limit(200)
    ).all()
    db.session.commit()
    resent = sum(_resend(i, job_id) for i, job_id in pending
                 if state(job_id) not in ("queued", "deferred", "scheduled", "started"))
    deadline = now - timedelta(seconds=current_app.config["JOB_TIMEOUT"]) - RUNNING_GRACE
    lost = [(i, job_id) for i, job_id, started in running
            if state(job_id) != "started" or started < deadline]
    failed = sum(transition(
        i, FAILURE, where=Download.job_id == job_id, finished_at=now,
        error="The worker writing this file stopped or timed out; nothing was kept. Export again.",
    ) for i, job_id in lost)
    failed += sum(transition(
        i, FAILURE, finished_at=now,
        error="The export never started (no worker or queue for a day); nothing was kept. Export again.",
    ) for i in never_started)
    return {"resent": resent, "lost": failed}


def _resend(download_id: int, old_job_id: str | None) -> bool:
    new_job_id = uuid.uuid4().hex
    moved = db.session.execute(
        update(Download).where(Download.id == download_id, Download.status == PENDING,
                               Download.job_id.is_(None) if old_job_id is None
                               else Download.job_id == old_job_id)
        .values(job_id=new_job_id).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(moved) and enqueue_export(download_id, new_job_id)


# --- "your download is ready" ------------------------------------------------------------

def claim_notices(person_id: int, limit: int = 5) -> list[Download]:
    """Return the person's finished, not yet announced downloads, marking them announced."""
    rows = db.session.execute(
        select(Download).where(Download.creator_id == person_id, Download.notified.is_(False),
                               Download.status.in_((SUCCESS, FAILURE)))
        .order_by(Download.id).limit(limit)
    ).scalars().all()
    if not rows:
        return []
    claimed = [row for row in rows if db.session.execute(
        update(Download).where(Download.id == row.id, Download.notified.is_(False))
        .values(notified=True).execution_options(synchronize_session=False)
    ).rowcount]
    db.session.commit()
    return claimed
