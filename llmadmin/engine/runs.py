"""Record a task's run: a row copied from the task as its final write left it.

Called in the transaction that moves tasks to their final status (``writer.py`` and
``chunk_rows.fail_queued``), so a run exists exactly when that move happened: the copy is
an ``INSERT … SELECT`` that matches the task only if it now has the run's status under
the run's job id (a cancel or a re-queue that won leaves no run behind).
"""

from __future__ import annotations

import functools

from sqlalchemy import String, Text, bindparam, insert, select

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task, TaskRun

_t, _r, _m = Task.__table__, TaskRun.__table__, LLMModel.__table__

# Copied from the task row (what the engine just wrote there) onto the run.
RUN_FROM_TASK = (
    "status",
    "job_id",
    "model_id",
    "result",
    "error",
    "error_kind",
    "error_frame",
    "finish_reason",
    "output_is_json",
    "attempts",
    "calls",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "started_at",
    "finished_at",
)
# Known only to the call, handed over by the writer: the run row's own columns.
RUN_EXTRAS = ("params",)


@functools.cache  # built once: a reused statement keeps its cache key (none computed per write)
def _statement():
    model_label = select(_m.c.name).where(_m.c.id == _t.c.model_id).scalar_subquery()
    source = select(
        _t.c.id,
        *(_t.c[name] for name in RUN_FROM_TASK),
        model_label,
        bindparam("r_params", type_=Text),
        _t.c.finished_at,
    ).where(
        _t.c.id == bindparam("r_id"),
        _t.c.status == bindparam("r_status", type_=String),
        _t.c.job_id == bindparam("r_job", type_=String),
    )
    names = ["task_id", *RUN_FROM_TASK, "model_label", *RUN_EXTRAS, "created_at"]
    return insert(_r).from_select(names, source)


def record_runs(rows: list[dict]) -> None:
    """Insert one run per ``{"id", "status", "job_id", "params"?}`` (not committed)."""
    if not rows:
        return
    db.session.execute(
        _statement(),
        [
            {
                "r_id": row["id"],
                "r_status": row["status"],
                "r_job": row["job_id"],
                "r_params": row.get("params"),
            }
            for row in rows
        ],
    )
