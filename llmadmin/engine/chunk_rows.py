"""The database side of a chunk: check it before it runs, claim, notice cancels, hand back, fail.

Every function is one short transaction of conditional updates (via
``lifecycle.TASKS``), run in the chunk's database lane thread or by
``run_chunk`` before the loop starts; none of them is ever called from the event loop.
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy import String, bindparam, select

from llmadmin import crypto, policy
from llmadmin.engine.dispatch import dispatch
from llmadmin.engine.model_settings import ModelSettings
from llmadmin.engine.params import PARAM_COLUMNS
from llmadmin.engine.runs import record_runs
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import LLMModel, Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import FAILURE, PENDING, QUEUED, RUNNING
from llmadmin.texts import error_columns, task_text

logger = logging.getLogger(__name__)

# What a run carries across parks (engine.parking writes them): the calls made so far, the
# last real failure (its words and kind) and the seconds waited for an open breaker.
CARRIED = (Task.calls, Task.error, Task.error_kind, Task.breaker_waited)
# What a claim reads of each claimed row (besides its id).
COLUMNS = (
    Task.prompt,
    Task.system_prompt,
    Task.messages,
    Task.submission_key,
    *PARAM_COLUMNS,
    *CARRIED,
)


def claim(job_id: str, batch: list[int], model_id: int | None = None) -> list:
    """Claim ``batch`` (still QUEUED for ``job_id``); return the claimed rows' prompts.

    With ``model_id``, a task whose model was deleted since the chunk started is failed
    instead of claimed (the chunk runs on a snapshot of the model's settings).
    """
    try:
        return _claim(job_id, batch, model_id)
    except Exception:
        db.session.rollback()  # nothing half-claimed: the runner gives the batch back
        raise


def _claim(job_id: str, batch: list[int], model_id: int | None) -> list:
    where = Task.job_id == job_id
    if model_id is not None:
        where = where & (Task.model_id == model_id)
    # One statement claims and reads the claimed rows (RETURNING), in one transaction with
    # any failures.
    rows = transition(
        batch, RUNNING, from_statuses=(QUEUED,), where=where, commit=False, returning=COLUMNS
    )
    if model_id is not None and len(rows) < len(batch):
        failed = transition(
            set(batch) - {row.id for row in rows},
            FAILURE,
            from_statuses=(QUEUED,),
            where=(Task.job_id == job_id) & Task.model_id.is_(None),
            commit=False,
            **error_columns("model_deleted"),
            error_kind="model_deleted",
            run_requested_at=None,
        )
        record_runs([{"id": i, "status": FAILURE, "job_id": job_id} for i in failed])
    db.session.commit()  # SQLite must not hold a transaction open
    return rows


@functools.cache
def _gone_statement():
    # Built once: a statement object reused keeps its cache key (none computed per check).
    return select(Task.id).where(
        Task.id.in_(bindparam("ids", expanding=True)),
        (Task.status != RUNNING) | (Task.job_id != bindparam("job", type_=String)),
    )


def find_gone(job_id: str, ids: list[int], commit: bool = True) -> list[int]:
    """Return the ids among ``ids`` that were canceled or taken away while running.

    ``commit=False``: the caller's transaction goes on (the check rides along with a write).
    """
    gone = db.session.execute(_gone_statement(), {"ids": ids, "job": job_id}).scalars().all()
    if commit:
        db.session.commit()
    return gone


def requeue_unfinished(
    job_id: str, task_ids: list[int], note: str = "re-queued: worker shut down"
) -> int:
    """Put tasks of a stopping job back in the queue under new jobs (graceful shutdown, Redis outage)."""
    back = transition(
        task_ids,
        PENDING,
        from_statuses=(QUEUED, RUNNING),
        where=Task.job_id == job_id,
        run_requested_at=utcnow(),
        job_id=None,
        queue_note=note,
    )
    try:
        dispatch(back)
    except QueueUnavailable:
        pass  # they stay PENDING with run_requested_at; housekeeping sends them later
    return len(back)


def fail_queued(
    job_id: str, task_ids: list[int], message: str, frame: dict | None = None, *, kind: str
) -> None:
    """Fail the tasks still queued for ``job_id`` with a clear message (each keeps the run).

    ``frame``: the message as data (``texts.error_columns``), read in each viewer's language.
    """
    failed = transition(
        task_ids,
        FAILURE,
        from_statuses=(QUEUED,),
        where=Task.job_id == job_id,
        commit=False,
        error=message,
        error_frame=frame,
        error_kind=kind,
        run_requested_at=None,
    )
    record_runs([{"id": i, "status": FAILURE, "job_id": job_id} for i in failed])
    db.session.commit()


def fail_blocked_tasks(job_id: str, task_ids: list[int], base_url: str) -> bool:
    """Fail a chunk's queued tasks with kind "blocked_url" when its model's URL is not allowed."""
    try:
        policy.check_outbound_url(base_url)
    except policy.BlockedURL as exc:
        logger.warning("job %s: %s", job_id, exc)
        fail_queued(job_id, task_ids, str(exc), kind="blocked_url")
        return True
    return False


def prepare_chunk(job_id: str, task_ids: list[int]) -> ModelSettings | None:
    """Check a chunk's model before it runs; return its settings, or None when its tasks failed."""
    # The model of the chunk's first task still queued for it, in one statement.
    model = db.session.execute(
        select(LLMModel)
        .join(Task, Task.model_id == LLMModel.id)
        .where(Task.id.in_(task_ids), Task.job_id == job_id)
        .limit(1)
    ).scalar_one_or_none()
    if model is None:
        fail_queued(job_id, task_ids, *task_text("model_deleted"), kind="model_deleted")
        return None
    if not model.enabled:
        message, frame = task_text("model_disabled", model=model.name)
        fail_queued(job_id, task_ids, message, frame, kind="model_disabled")
        return None
    if fail_blocked_tasks(
        job_id, task_ids, model.base_url
    ):  # OUTBOUND_ALLOWLIST, kind "blocked_url"
        return None
    try:
        settings = ModelSettings.load(model)
    except crypto.SecretUnreadable as exc:
        fail_queued(job_id, task_ids, str(exc), kind="auth")
        return None
    db.session.commit()
    return settings
