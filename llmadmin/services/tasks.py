"""Task operations shared by the admin, the CLI, the API and the jobs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from llmadmin import policy
from llmadmin.database import in_batches
from llmadmin.engine import dispatch
from llmadmin.errors import ItemsInvalid, NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Person, Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import (
    CANCELED,
    FAILURE,
    FINAL_STATUSES,
    PENDING,
    QUEUED,
    RUNNING,
    SUCCESS,
)
from llmadmin.services import audit, conversation
from llmadmin.services.jobs_control import stop_jobs_without_live_tasks
from llmadmin.services.task_params import PARAM_FIELDS, clean_param, clean_params
from llmadmin.texts import error_columns
from llmadmin.texts import say as _  # gettext that keeps msgid and values (texts.Said)

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a bulk operation did, for a flash message or a JSON answer."""

    changed: int = 0
    skipped: int = 0
    waiting: int = 0

    def describe(self, verb: str) -> str:
        """Return a human sentence such as '3 task(s) queued; 1 skipped.' in the person's language."""
        parts = [str(OUTCOME_VERBS.get(verb, OUTCOME_VERBS["queued"])) % {"count": self.changed}]
        if self.waiting:
            parts.append(
                _(
                    "%(count)s waiting for the queue (Redis unreachable, sent automatically later)",
                    count=self.waiting,
                )
            )
        if self.skipped:
            parts.append(_("%(count)s skipped (not in a state that allows it)", count=self.skipped))
        return _("%(clauses)s.", clauses=_("; ").join(parts))


OUTCOME_VERBS = {
    "queued": _l("%(count)s task(s) queued"),
    "queued again": _l("%(count)s task(s) queued again"),
    "canceled": _l("%(count)s task(s) canceled"),
    "deleted": _l("%(count)s task(s) deleted"),
    "duplicated and queued": _l("%(count)s task(s) duplicated and queued"),
}


def clean_text(
    value: str | None, field: str, *, required: bool, max_chars: int | None
) -> str | None:
    """Validate user text: reject NUL bytes and lone surrogates, enforce size."""
    if value is None or value.strip() == "":
        if required:
            raise ValidationError(_("%(field)s is required.", field=field))
        return None
    if "\x00" in value:
        raise ValidationError(
            _("%(field)s contains a NUL byte, which cannot be stored.", field=field)
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            _("%(field)s contains invalid characters (lone surrogates).", field=field)
        ) from exc
    if max_chars is not None and len(value) > max_chars:
        raise ValidationError(
            _(
                "%(field)s is too long: %(length)s characters (the maximum is %(limit)s).",
                field=field,
                length=f"{len(value):,}",
                limit=f"{max_chars:,}",
            )
        )
    return value


FIELD_LABELS = {"prompt": _l("Prompt"), "system_prompt": _l("System prompt"), "name": _l("Name")}


def validate_task_fields(
    name, prompt, system_prompt, turns: list[dict] | None = None
) -> tuple[str, str, str | None]:
    """Return cleaned (name, prompt, system_prompt) or raise ValidationError.

    ``turns`` (a conversation's earlier messages, already cleaned) are checked by the prompt
    policy with the prompt.
    """
    limit = current_app.config["MAX_PROMPT_CHARS"]
    # Lazy labels: rendered only for an error message (a gettext per field and row costs
    # half of validating a 100,000-line batch).
    prompt = clean_text(prompt, FIELD_LABELS["prompt"], required=True, max_chars=limit)
    system_prompt = clean_text(
        system_prompt, FIELD_LABELS["system_prompt"], required=False, max_chars=limit
    )
    name = clean_text(name, FIELD_LABELS["name"], required=False, max_chars=200)
    name = name or _default_name(prompt)
    policy.check_prompt(prompt, system_prompt, turns)  # PROMPT_BLOCKED_PATTERNS
    return name, prompt, system_prompt


def _default_name(prompt: str) -> str:
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else "Task"
    return first_line[:60] + ("…" if len(first_line) > 60 else "")


def find_submitted(submission_key: str | None) -> Task | None:
    """Return the task an earlier post of the same form created, if any."""
    if not submission_key:
        return None
    return db.session.execute(
        select(Task).where(Task.submission_key == submission_key)
    ).scalar_one_or_none()


def create_task(
    *,
    prompt: str,
    model_id: int,
    creator_id: int | None,
    name: str | None = None,
    system_prompt: str | None = None,
    run: bool = True,
    submission_key: str | None = None,
    params: dict | None = None,
) -> Task:
    """Create a task (and queue it unless ``run`` is False).

    ``params`` holds call parameters (``services.task_params.PARAM_FIELDS``); empty ones
    default from the model. With a ``submission_key`` (a form's one-time token) a second
    post of the same form returns the task the first one created instead of creating another.
    """
    earlier = find_submitted(submission_key)
    if earlier is not None:
        return earlier
    name, prompt, system_prompt = validate_task_fields(name, prompt, system_prompt)
    cleaned = clean_params(params or {})
    model = db.session.get(LLMModel, model_id) if model_id else None
    if model is None:
        raise ValidationError(_("Choose a model for the task."))
    if creator_id is not None and db.session.get(Person, creator_id) is None:
        raise ValidationError(_("The chosen creator does not exist."))
    task = Task(
        name=name,
        prompt=prompt,
        system_prompt=system_prompt,
        model_id=model.id,
        creator_id=creator_id,
        status=PENDING,
        run_requested_at=utcnow() if run else None,
        submission_key=_clean_key(submission_key),
        **cleaned,
    )
    db.session.add(task)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the same form, posted twice at once: the other post won
        earlier = find_submitted(submission_key)
        if earlier is None:
            raise
        return earlier
    if run:
        dispatch.dispatch([task.id])
    return task


# Per-task call parameters the API accepts (name -> accepted JSON types). Values are then
# checked and stored by services.task_params.clean_param, the same rules as the task form's.
TASK_PARAMETERS: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "max_tokens": (int,),
    "top_p": (int, float),
    "stop": (list, str),
    "seed": (int,),
    "response_format": (str, dict),
    "frequency_penalty": (int, float),
    "presence_penalty": (int, float),
}
assert set(TASK_PARAMETERS) == set(PARAM_FIELDS)
INSERT_BATCH = 1000
MAX_ITEM_ERRORS = 100


@dataclass
class Created:
    """What ``create_tasks`` made: the new ids in item order, and how many were queued."""

    ids: list[int]
    queued: int = 0
    waiting: int = 0


def create_tasks(items: list[dict], creator_id: int | None, *, run: bool = True) -> Created:
    """Create many tasks in one transaction and dispatch them once; all or nothing.

    Each item has ``prompt`` and ``model`` (a model name) or ``model_id``, optionally
    ``name``, ``system_prompt``, ``messages`` (earlier turns) and ``parameters``. Every item is validated first; if any
    is invalid nothing is created and ``ItemsInvalid`` lists each error with its index.
    """
    rows = validate_tasks(items, creator_id, run=run)
    ids: list[int] = []
    for batch in in_batches(rows, INSERT_BATCH):
        # One multi-row INSERT per batch. The ids come back in no promised order, but one
        # statement numbers its rows in VALUES order (SQLite rowids, a PostgreSQL sequence),
        # so sorted ids are the items' ids in order. (sort_by_parameter_order=True would make
        # SQLite insert row by row: 6x slower at 10,000 rows.)
        # A Core INSERT on the table: half the time of the ORM's bulk insert at this size.
        table = Task.__table__
        ids += sorted(db.session.execute(insert(table).returning(table.c.id), batch).scalars())
    if ids:
        audit.record(
            "create_tasks",
            "task",
            f"{ids[0]}-{ids[-1]}",
            f"{len(ids)} task(s) created at once",
            commit=False,
        )
    db.session.commit()
    queued, waiting = dispatch.dispatch(ids) if run and ids else (0, 0)
    return Created(ids=ids, queued=queued, waiting=waiting)


def validate_tasks(items: list[dict], creator_id: int | None = None, *, run: bool = True) -> list:
    """Return the task rows ``items`` would make, or raise ItemsInvalid listing every error."""
    models = _models_by_name_and_id(items)
    rows, errors = [], []
    for index, item in enumerate(items):
        try:
            rows.append(task_row(item, models, creator_id, run))
        except ValidationError as exc:
            errors.append({"index": index, "field": exc.field, "message": str(exc)})
            if len(errors) >= MAX_ITEM_ERRORS:
                break
    if errors:
        raise ItemsInvalid(
            f"{len(errors)}{'+' if len(errors) >= MAX_ITEM_ERRORS else ''} of {len(items)} "
            "task(s) are invalid; nothing was created.",
            errors,
        )
    return rows


def _models_by_name_and_id(items: list[dict]) -> dict:
    names = {i.get("model") for i in items if isinstance(i.get("model"), str)}
    ids = {i.get("model_id") for i in items if isinstance(i.get("model_id"), int)}
    ids = {i for i in ids if 0 < i < 2**31}  # ids are 32-bit columns; others match nothing
    found: dict = {}
    for model in db.session.execute(
        select(LLMModel).where(LLMModel.name.in_(names) | LLMModel.id.in_(ids))
    ).scalars():
        found[("name", model.name)] = found[("id", model.id)] = model
    return found


def task_row(item: dict, models: dict, creator_id: int | None, run: bool) -> dict:
    """Return the task row (column values) of one item, or raise ValidationError naming the field.

    ``models`` maps ``("name", name)`` / ``("id", id)`` to the models the items name.
    """
    turns = conversation.clean_turns(item.get("messages"))
    try:
        name, prompt, system_prompt = validate_task_fields(
            item.get("name"), item.get("prompt"), item.get("system_prompt"), turns
        )
    except ValidationError as exc:
        raise ValidationError(exc.message, field=exc.field or _field_of(str(exc))) from exc
    if item.get("model") is None and item.get("model_id") is None:
        raise ValidationError(
            _("Give the model: its name (model) or its id (model_id)."), field="model"
        )
    if item.get("model") is not None:
        model = models.get(("name", item["model"]))
        field = "model"
    else:
        model = models.get(("id", item.get("model_id")))
        field = "model_id"
    if model is None:
        raise ValidationError(_("There is no model %(name)r.", name=item.get(field)), field=field)
    if run and not model.enabled:
        raise ValidationError(
            _("The model %(name)s is disabled; enable it first.", name=model.name), field=field
        )
    now = utcnow()
    return {
        "name": name,
        "prompt": prompt,
        "system_prompt": system_prompt,
        "messages": turns,
        "model_id": model.id,
        "creator_id": creator_id,
        "status": PENDING,
        "created_at": now,
        "run_requested_at": now if run else None,
        **check_parameters(item.get("parameters")),
    }


def _field_of(message: str) -> str | None:
    """The field a validate_task_fields message is about (its first words name it)."""
    for label, field in (
        (_("System prompt"), "system_prompt"),
        (_("Prompt"), "prompt"),
        (_("An earlier message of the conversation"), "messages"),
    ):
        if message.startswith(label):
            return field
    return "name" if message.startswith(_("Name")) else "prompt"


def check_parameters(parameters: dict | None) -> dict:
    """Return the validated per-task parameters as column values (see TASK_PARAMETERS).

    Every row gets every parameter column (None when not given), so one multi-row INSERT
    takes them all; the values follow the task form's rules (services.task_params).
    """
    values: dict = dict.fromkeys(TASK_PARAMETERS)
    if not parameters:
        return values
    if not isinstance(parameters, dict):
        raise ValidationError(_("parameters must be an object."), field="parameters")
    for key, value in parameters.items():
        kinds = TASK_PARAMETERS.get(key)
        if kinds is None:
            raise ValidationError(
                _(
                    "Unknown parameter %(name)r; accepted: %(names)s.",
                    name=key,
                    names=", ".join(TASK_PARAMETERS),
                ),
                field=f"parameters.{key}",
            )
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise ValidationError(
                _("Parameter %(name)r has the wrong type.", name=key), field=f"parameters.{key}"
            )
        try:
            values[key] = clean_param(key, value)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=f"parameters.{key}") from exc
    return values


def run_tasks(task_ids: list[int], overrides: dict | None = None) -> Outcome:
    """Run or re-run tasks: anything not queued or running goes back to the queue.

    Earlier runs stay in the task's history (``task_run``). ``overrides`` sets call
    parameters on every task that is re-run (empty ones leave each task's own).
    """
    changes = {k: v for k, v in clean_params(overrides or {}).items() if v is not None}
    ids = _existing(task_ids)
    models_ok = _ids_with_enabled_model(ids)
    reset = transition(
        models_ok,
        PENDING,
        from_statuses=(PENDING, *FINAL_STATUSES),
        run_requested_at=utcnow(),
        result=None,
        error=None,
        error_kind=None,
        started_at=None,
        finished_at=None,
        latency_ms=None,
        prompt_tokens=None,
        completion_tokens=None,
        cost=None,
        output_is_json=None,
        result_outdated=False,
        finish_reason=None,
        calls=None,
        job_id=None,
        queue_note=None,
        not_before=None,
        breaker_waited=0.0,
        commit=False,
    )
    for batch in in_batches(reset) if changes else ():
        db.session.execute(
            update(Task)
            .where(Task.id.in_(batch))
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    queued, waiting = dispatch.dispatch(reset)
    return Outcome(changed=queued, waiting=waiting, skipped=len(ids) - len(reset))


def retry_failed(task_ids: list[int], overrides: dict | None = None) -> Outcome:
    """Re-run only the tasks that failed."""
    failed = (
        db.session.execute(select(Task.id).where(Task.id.in_(task_ids), Task.status == FAILURE))
        .scalars()
        .all()
    )
    outcome = run_tasks(list(failed), overrides)
    outcome.skipped += len(set(task_ids)) - len(failed)
    return outcome


def cancel_tasks(task_ids: list[int]) -> Outcome:
    """Cancel tasks that have not finished; queued jobs are removed, running ones stopped."""
    ids = _existing(task_ids)
    rows = db.session.execute(
        select(Task.id, Task.job_id).where(
            Task.id.in_(ids), Task.status.in_((PENDING, QUEUED, RUNNING))
        )
    ).all()
    job_ids = {job_id for _task_id, job_id in rows if job_id}
    changed = transition(
        [r[0] for r in rows],
        CANCELED,
        **error_columns("canceled_by_person"),
        error_kind="canceled",
        run_requested_at=None,
        queue_note=None,
    )

    stop_jobs_without_live_tasks(job_ids)
    return Outcome(changed=len(changed), skipped=len(ids) - len(changed))


def duplicate_tasks(
    task_ids: list[int],
    model_id: int,
    creator_id: int | None,
    submission_key: str | None = None,
    overrides: dict | None = None,
) -> Outcome:
    """Copy tasks onto another model (A/B comparison) and queue the copies.

    The copies keep their source's call parameters, except those in ``overrides``.

    With a ``submission_key``, each copy is keyed by it and its source: posting the same
    form again (double click, retried request, a bulk job delivered twice) copies nothing
    twice; the copies already made count as skipped.
    """
    changes = {k: v for k, v in clean_params(overrides or {}).items() if v is not None}
    model = db.session.get(LLMModel, model_id) if model_id else None
    if model is None:
        raise ValidationError(_("Choose the model to duplicate the tasks to."))
    if not model.enabled:
        raise ValidationError(
            _("The model %(name)s is disabled; enable it first.", name=model.name)
        )
    sources = db.session.execute(select(Task).where(Task.id.in_(task_ids))).scalars().all()
    key = _clean_key(submission_key)
    keys = {src.id: f"{key}:{src.id}" if key else None for src in sources}
    if key:
        done = set(
            db.session.execute(
                select(Task.submission_key).where(
                    Task.submission_key.in_([k for k in keys.values()])
                )
            ).scalars()
        )
        sources = [src for src in sources if keys[src.id] not in done]
    copies = [
        Task(
            name=f"{src.name} → {model.name}"[:200],
            prompt=src.prompt,
            system_prompt=src.system_prompt,
            messages=src.messages,
            model_id=model.id,
            source_task_id=src.id,
            creator_id=creator_id,
            status=PENDING,
            run_requested_at=utcnow(),
            submission_key=keys[src.id],
            **{**{name: getattr(src, name) for name in PARAM_FIELDS}, **changes},
        )
        for src in sources
    ]
    db.session.add_all(copies)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a simultaneous post of the same form made these copies
        return Outcome(changed=0, skipped=len(set(task_ids)))
    queued, waiting = dispatch.dispatch([c.id for c in copies])
    return Outcome(changed=queued, waiting=waiting, skipped=len(set(task_ids)) - len(sources))


# What a task's result was produced from: changing one of these makes the result outdated.
INPUT_FIELDS = ("prompt", "system_prompt", "messages", "model_id", "model", *PARAM_FIELDS)


def note_edit(task: Task) -> bool:
    """Mark a finished task's shown result as outdated when its inputs were just edited.

    Called with the edited, not yet committed row (the admin's edit form); return whether
    it is outdated now. The result is kept, and its runs keep what they were run with.
    """
    state = inspect(task)
    changed = [name for name in INPUT_FIELDS if state.attrs[name].history.has_changes()]
    shown = task.status in (SUCCESS, FAILURE) or task.result is not None
    if changed and shown:
        task.result_outdated = True
    return bool(task.result_outdated)


def _clean_key(submission_key: str | None) -> str | None:
    """A form token is ours to generate: anything odd is ignored rather than stored."""
    if submission_key and len(submission_key) <= 64 and submission_key.isalnum():
        return submission_key
    return None


def delete_tasks(task_ids: list[int]) -> Outcome:
    """Cancel, then delete tasks."""
    ids = _existing(task_ids)
    cancel_tasks(ids)
    db.session.execute(
        Task.__table__.update().where(Task.source_task_id.in_(ids)).values(source_task_id=None)
    )
    db.session.execute(
        delete(Task).where(Task.id.in_(ids)).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return Outcome(changed=len(ids), skipped=len(set(task_ids)) - len(ids))


def get_task(task_id: int) -> Task:
    """Load a task or raise NotFound."""
    task = db.session.get(Task, task_id)
    if task is None:
        raise NotFound(_("Task #%(id)s does not exist.", id=task_id))
    return task


def _existing(task_ids) -> list[int]:
    ids = [int(i) for i in task_ids]
    if not ids:
        return []
    found: list[int] = []
    for batch in in_batches(ids):
        found += db.session.execute(select(Task.id).where(Task.id.in_(batch))).scalars().all()
    return found


def _ids_with_enabled_model(ids: list[int]) -> list[int]:
    result: list[int] = []
    for batch in in_batches(ids):
        result += (
            db.session.execute(
                select(Task.id)
                .join(LLMModel, Task.model_id == LLMModel.id)
                .where(Task.id.in_(batch), LLMModel.enabled.is_(True))
            )
            .scalars()
            .all()
        )
    return result
