"""What a person has going on: unfinished downloads and bulk operations, and recent rows."""

from __future__ import annotations

from sqlalchemy import func, select

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download, LLMModel, Task
from llmadmin.models.bulk_operation import BulkStatus
from llmadmin.models.download import PENDING, RUNNING

ACTIVE_BULK = (BulkStatus.PENDING, BulkStatus.RUNNING)


def unfinished_downloads(person_id: int) -> int:
    """Count the person's exports still being written."""
    return db.session.scalar(
        select(func.count())
        .select_from(Download)
        .where(Download.creator_id == person_id, Download.status.in_((PENDING, RUNNING)))
    )


def active_operations(person_id: int, limit: int = 5) -> list[BulkOperation]:
    """The person's bulk operations that have not finished, oldest first."""
    return list(
        db.session.execute(
            select(BulkOperation)
            .where(BulkOperation.creator_id == person_id, BulkOperation.status.in_(ACTIVE_BULK))
            .order_by(BulkOperation.id)
            .limit(limit)
        ).scalars()
    )


def recent(person_id: int | None, limit: int = 6) -> dict[str, list]:
    """The latest tasks, bulk operations and downloads (``person_id`` None: everybody's)."""

    def latest(model, owner):
        query = select(model).order_by(model.id.desc()).limit(limit)
        if person_id is not None:
            query = query.where(owner == person_id)
        return list(db.session.execute(query).scalars())

    return {
        "tasks": latest(Task, Task.creator_id),
        "operations": latest(BulkOperation, BulkOperation.creator_id),
        "downloads": latest(Download, Download.creator_id),
    }


def setup_state(person_id: int) -> dict[str, bool]:
    """Which first steps are done: a model added, one tested successfully, a task created.

    Models are the installation's, so those steps are everybody's; creating a task is a step
    each person takes, so it counts only the tasks of ``person_id``. Each is an EXISTS (one
    index probe), never a count: the task table reaches millions of rows. The three go in one
    statement.
    """
    model, tested, task = db.session.execute(
        select(
            select(LLMModel.id).exists(),
            select(LLMModel.id)
            .where(LLMModel.last_test_at.is_not(None), LLMModel.last_test_error.is_(None))
            .exists(),
            select(Task.id).where(Task.creator_id == person_id).exists(),
        )
    ).one()
    return {"model": bool(model), "tested": bool(tested), "task": bool(task)}
