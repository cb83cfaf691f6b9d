"""Tasks: create one or many, get, list (filters + cursor), cancel, retry, re-run, runs."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from flask import current_app, request
from flask_babel import gettext as _
from sqlalchemy import select

from llmadmin.admin.formatters import status_label
from llmadmin.api import serialize
from llmadmin.api.blueprint import bp, current_person, json_body
from llmadmin.api.schema import parse
from llmadmin.api.shapes import TASK_FILTERS, TASK_INPUT, TASKS_INPUT
from llmadmin.errors import (
    Conflict,
    ItemsInvalid,
    MalformedRequest,
    NotFound,
    TooLarge,
    ValidationError,
)
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import ACTIVE_STATUSES, FAILURE, FINAL_STATUSES, RUNNING, STATUSES
from llmadmin.services import selections
from llmadmin.services import task_runs as task_run_service
from llmadmin.services import tasks as task_service
from llmadmin.services.selections import DATETIME_FORMAT, Selection

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
LIST_PARAMS = {*TASK_FILTERS.fields, "cursor", "limit"}


@bp.post("/tasks")
def create_tasks():
    """Create one task (201, the task) or many (201, their ids), all or nothing."""
    body = json_body()
    if isinstance(body, dict) and "tasks" in body:
        return _create_many(body)
    item = parse(body, TASK_INPUT)
    try:
        created = task_service.create_tasks([item], current_person().id)
    except ItemsInvalid as exc:  # one task: its error, without the list's index
        raise ValidationError(exc.errors[0]["message"], field=exc.errors[0]["field"]) from exc
    return serialize.task(db.session.get(Task, created.ids[0])), 201


def _create_many(body: dict):
    limit = current_app.config["API_MAX_TASKS_PER_REQUEST"]
    tasks = body.get("tasks")
    if isinstance(tasks, list) and len(tasks) > limit:
        raise TooLarge(
            _(
                "At most %(limit)s tasks in one request (%(sent)s sent).",
                limit=f"{limit:,}",
                sent=f"{len(tasks):,}",
            ),
            "tasks",
        )
    parse({**body, "tasks": []}, TASKS_INPUT)  # the envelope; items are checked one by one
    if not isinstance(tasks, list) or not tasks:
        raise ValidationError(_("tasks must be a non-empty array."), field="tasks")
    errors = []
    for index, item in enumerate(tasks):
        try:
            parse(item, TASK_INPUT, f"tasks[{index}]")
        except ValidationError as exc:
            errors.append({"index": index, "field": exc.field, "message": str(exc)})
    if errors:
        raise ItemsInvalid(
            _(
                "%(bad)s of %(all)s task(s) are invalid; nothing was created.",
                bad=len(errors),
                all=len(tasks),
            ),
            errors,
        )
    try:
        if body.get("dry_run"):
            task_service.validate_tasks(tasks)
            return {"created": 0, "valid": len(tasks), "ids": [], "queued": 0, "waiting": 0}
        created = task_service.create_tasks(tasks, current_person().id)
    except ItemsInvalid as exc:
        for error in exc.errors:
            error["field"] = f"tasks[{error['index']}].{error['field']}"
        exc.field = exc.errors[0]["field"]
        raise
    return {
        "created": len(created.ids),
        "valid": len(created.ids),
        "ids": created.ids,
        "queued": created.queued,
        "waiting": created.waiting,
    }, 201


def visible_task(task_id: int) -> Task:
    """Load a task the person may see; 404 for anyone else's, as if absent."""
    row = db.session.get(Task, task_id)
    person = current_person()
    if row is None or (not person.is_admin and row.creator_id != person.id):
        raise NotFound(_("Task #%(id)s does not exist.", id=task_id))
    return row


@bp.get("/tasks/<int:task_id>")
def get_task(task_id: int):
    """Return one task."""
    return serialize.task(visible_task(task_id))


@bp.get("/tasks")
def list_tasks():
    """List tasks, newest first, with the task list's filters and a cursor."""
    unknown = sorted(set(request.args) - LIST_PARAMS)
    if unknown:
        raise ValidationError(
            _("Unknown query parameter %(name)r.", name=unknown[0]), field=unknown[0]
        )
    selection = task_selection(request.args, current_person().id)
    limit = page_limit(request.args.get("limit"))
    stmt = selections.build_query(selection, ordered=False)
    cursor = request.args.get("cursor")
    if cursor:
        stmt = stmt.where(Task.id < decode_cursor(cursor))
    rows = db.session.execute(stmt.order_by(Task.id.desc()).limit(limit + 1)).scalars().all()
    page = rows[:limit]
    names = _model_names({r.model_id for r in page})
    return {
        "data": [serialize.task(r, names) for r in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    }


def task_selection(args, person_id: int, ids=None) -> Selection:
    """Turn the API's task filters into the list's stored Selection (one query builder for all)."""
    filters = []
    status = (args.get("status") or "").strip()
    if status:
        wanted = [s.strip().upper() for s in status.split(",") if s.strip()]
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise ValidationError(
                _(
                    "Unknown status %(value)r (one of %(allowed)s).",
                    value=bad[0],
                    allowed=", ".join(STATUSES),
                ),
                field="status",
            )
        filters.append(("status", "in_list", ",".join(wanted)))
    if args.get("model"):
        filters.append(("model", "equals", args["model"]))
    batch = (args.get("batch") or "").strip()
    if batch:
        if not batch.isdigit() or not 1 <= int(batch) < 2**31:
            raise ValidationError(_("batch must be a batch id (a whole number)."), field="batch")
        filters.append(("batch", "equals", str(int(batch))))
    creator = args.get("creator")
    if creator:
        filters.append(("creator_email" if "@" in creator else "creator", "equals", creator))
    for name, operation in (("created_after", "greater"), ("created_before", "smaller")):
        if args.get(name):
            filters.append(("created_at", operation, _time(args[name], name)))
    search = (args.get("search") or "").replace("\x00", "")
    return Selection(
        "task",
        person_id,
        ids=tuple(sorted(set(ids))) if ids is not None else None,
        search=search,
        filters=tuple(filters),
    )


def _time(value: str, field: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(
            _("%(field)s must be an ISO 8601 time, e.g. 2026-11-29T18:00:00Z.", field=field),
            field=field,
        ) from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime(DATETIME_FORMAT)


def page_limit(value: str | None) -> int:
    """Return a list's page size from its ``limit`` argument (default 50, at most 500)."""
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ValidationError(
            _("limit must be a whole number from 1 to %(max)s.", max=MAX_LIMIT), "limit"
        )
    return int(value)


def encode_cursor(last_id: int) -> str:
    """Return the opaque cursor that continues a list after ``last_id``."""
    return base64.urlsafe_b64encode(f"t{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the id a cursor continues after, or refuse one this API did not give out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text[:1] != "t" or not text[1:].isdigit() or len(text) > 12:
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise MalformedRequest(_("The cursor is not one this API gave out."), "cursor") from exc


def _model_names(ids: set) -> dict[int, str]:
    ids.discard(None)
    if not ids:
        return {}
    return dict(
        db.session.execute(select(LLMModel.id, LLMModel.name).where(LLMModel.id.in_(ids))).all()
    )


# --- actions on one task ---------------------------------------------------------------------


@bp.post("/tasks/<int:task_id>/cancel")
def cancel_task(task_id: int):
    """Cancel a task that has not finished (409 when it has)."""
    row = visible_task(task_id)
    if row.status in FINAL_STATUSES:
        raise Conflict(
            _(
                "Task #%(id)s is %(status)s; only unfinished tasks can be canceled.",
                id=task_id,
                status=status_label(row.status),
            )
        )
    outcome = task_service.cancel_tasks([task_id])
    if not outcome.changed:
        raise Conflict(_("Task #%(id)s finished before it could be canceled.", id=task_id))
    return _reloaded(task_id)


@bp.post("/tasks/<int:task_id>/retry")
def retry_task(task_id: int):
    """Run a failed task again (409 unless it failed)."""
    row = visible_task(task_id)
    if row.status != FAILURE:
        raise Conflict(
            _(
                "Task #%(id)s is %(status)s; only failed tasks can be retried.",
                id=task_id,
                status=status_label(row.status),
            )
        )
    _run(task_service.retry_failed([task_id]), task_id)
    return _reloaded(task_id)


@bp.post("/tasks/<int:task_id>/rerun")
def rerun_task(task_id: int):
    """Run a task again from the start, whatever its outcome (409 while it is queued or running)."""
    row = visible_task(task_id)
    if row.status in ACTIVE_STATUSES:
        raise Conflict(
            _(
                "Task #%(id)s is %(status)s; wait for it or cancel it first.",
                id=task_id,
                status=status_label(row.status),
            )
        )
    _run(task_service.run_tasks([task_id]), task_id)
    return _reloaded(task_id)


def _run(outcome, task_id: int) -> None:
    if outcome.skipped and not (outcome.changed or outcome.waiting):
        raise Conflict(
            _("Task #%(id)s cannot run now (its model is missing or disabled).", id=task_id)
        )


def _reloaded(task_id: int):
    db.session.expire_all()
    return serialize.task(visible_task(task_id))


@bp.get("/tasks/<int:task_id>/runs")
def task_runs(task_id: int):
    """The task's runs, newest first: the run under way (if any), then every stored run."""
    row = visible_task(task_id)
    stored = task_run_service.history(task_id)
    runs = [serialize.run(e.run, e.number, e.params) for e in stored]
    under_way = row.status == RUNNING or (
        row.status in ACTIVE_STATUSES and row.started_at is not None
    )
    # A finished task without a stored run was finished outside the engine (no run row).
    unrecorded = not stored and row.status in FINAL_STATUSES
    if under_way or unrecorded:
        runs.insert(0, serialize.run(row, len(stored) + 1))
    return {"data": runs}
