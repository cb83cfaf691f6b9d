"""Task operations shared by the admin, the CLI, the API and the jobs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from llmadmin import policy
from llmadmin.database import in_batches
from llmadmin.engine import dispatch
from llmadmin.errors import NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Person, Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import CANCELED, FAILURE, FINAL_STATUSES, PENDING, QUEUED, RUNNING
from llmadmin.services.jobs_control import stop_jobs_without_live_tasks

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a bulk operation did, for a flash message or a JSON answer."""

    changed: int = 0
    skipped: int = 0
    waiting: int = 0

    def describe(self, verb: str) -> str:
        """Return a human sentence such as '3 task(s) queued; 1 skipped'."""
        text = f"{self.changed} task(s) {verb}"
        if self.waiting:
            text += f"; {self.waiting} waiting for the queue (Redis unreachable, sent automatically later)"
        if self.skipped:
            text += f"; {self.skipped} skipped (not in a state that allows it)"
        return text + "."


def clean_text(
    value: str | None, field: str, *, required: bool, max_chars: int | None
) -> str | None:
    """Validate user text: reject NUL bytes and lone surrogates, enforce size."""
    if value is None or value.strip() == "":
        if required:
            raise ValidationError(f"{field} is required.")
        return None
    if "\x00" in value:
        raise ValidationError(f"{field} contains a NUL byte, which cannot be stored.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{field} contains invalid characters (lone surrogates).") from exc
    if max_chars is not None and len(value) > max_chars:
        raise ValidationError(
            f"{field} is too long: {len(value):,} characters (the maximum is {max_chars:,})."
        )
    return value


def validate_task_fields(name, prompt, system_prompt) -> tuple[str, str, str | None]:
    """Return cleaned (name, prompt, system_prompt) or raise ValidationError."""
    limit = current_app.config["MAX_PROMPT_CHARS"]
    prompt = clean_text(prompt, "Prompt", required=True, max_chars=limit)
    system_prompt = clean_text(system_prompt, "System prompt", required=False, max_chars=limit)
    name = clean_text(name, "Name", required=False, max_chars=200) or _default_name(prompt)
    policy.check_prompt(prompt, system_prompt)  # PROMPT_BLOCKED_PATTERNS
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
) -> Task:
    """Create a task (and queue it unless ``run`` is False).

    With a ``submission_key`` (a form's one-time token) a second post of the same form
    returns the task the first one created instead of creating another.
    """
    earlier = find_submitted(submission_key)
    if earlier is not None:
        return earlier
    name, prompt, system_prompt = validate_task_fields(name, prompt, system_prompt)
    model = db.session.get(LLMModel, model_id) if model_id else None
    if model is None:
        raise ValidationError("Choose a model for the task.")
    if creator_id is not None and db.session.get(Person, creator_id) is None:
        raise ValidationError("The chosen creator does not exist.")
    task = Task(
        name=name,
        prompt=prompt,
        system_prompt=system_prompt,
        model_id=model.id,
        creator_id=creator_id,
        status=PENDING,
        run_requested_at=utcnow() if run else None,
        submission_key=_clean_key(submission_key),
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


def run_tasks(task_ids: list[int]) -> Outcome:
    """Run or re-run tasks: anything not queued or running goes back to the queue."""
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
        job_id=None,
        queue_note=None,
        not_before=None,
        call_attempts=0,
        breaker_waited=0.0,
    )
    queued, waiting = dispatch.dispatch(reset)
    return Outcome(changed=queued, waiting=waiting, skipped=len(ids) - len(reset))


def retry_failed(task_ids: list[int]) -> Outcome:
    """Re-run only the tasks that failed."""
    failed = (
        db.session.execute(select(Task.id).where(Task.id.in_(task_ids), Task.status == FAILURE))
        .scalars()
        .all()
    )
    outcome = run_tasks(list(failed))
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
    job_ids = {job_id for _, job_id in rows if job_id}
    changed = transition(
        [r[0] for r in rows],
        CANCELED,
        error="Canceled by a person.",
        error_kind="canceled",
        run_requested_at=None,
        queue_note=None,
    )

    stop_jobs_without_live_tasks(job_ids)
    return Outcome(changed=len(changed), skipped=len(ids) - len(changed))


def duplicate_tasks(
    task_ids: list[int], model_id: int, creator_id: int | None, submission_key: str | None = None
) -> Outcome:
    """Copy tasks onto another model (A/B comparison) and queue the copies.

    With a ``submission_key``, each copy is keyed by it and its source: posting the same
    form again (double click, retried request, a bulk job delivered twice) copies nothing
    twice; the copies already made count as skipped.
    """
    model = db.session.get(LLMModel, model_id) if model_id else None
    if model is None:
        raise ValidationError("Choose the model to duplicate the tasks to.")
    if not model.enabled:
        raise ValidationError(f"The model {model.name} is disabled; enable it first.")
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
            model_id=model.id,
            source_task_id=src.id,
            creator_id=creator_id,
            status=PENDING,
            run_requested_at=utcnow(),
            submission_key=keys[src.id],
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
        raise NotFound(f"Task #{task_id} does not exist.")
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
