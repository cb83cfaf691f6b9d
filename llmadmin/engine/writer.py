"""Batched, conditional writes of task outcomes from the executor.

Results are collected in memory and written in one transaction every ``interval`` or
``max_batch`` outcomes through ``lifecycle.TASKS.transition_batch``: each row only
``WHERE status = 'RUNNING' AND job_id = :job``, so a cancel (or a re-queue by the
reconciler) always wins over a late result. In the same transaction each final outcome
becomes a ``task_run`` row (``engine/runs.py``): re-running a task keeps its earlier runs.
"""

from __future__ import annotations

import time
from decimal import Decimal

from sqlalchemy import and_, bindparam, update

from llmadmin.engine.params import CallParams, output_is_json
from llmadmin.engine.runs import record_runs
from llmadmin.extensions import db
from llmadmin.lifecycle import TASKS
from llmadmin.llm.request import ChatResult
from llmadmin.models import Task
from llmadmin.models.base import utcnow
from llmadmin.models.task import FAILURE, RUNNING, SUCCESS

_t = Task.__table__

# The task columns a finished call writes (one executemany needs the same keys on every row).
OUTCOME_COLUMNS = (
    "result",
    "error",
    "error_kind",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "output_is_json",
    "finish_reason",
    "calls",
    "error_frame",
)
# The key of a final row that carries its run's own columns (engine/runs.py RUN_EXTRAS).
RUN = "run"


def success_columns(
    result: ChatResult,
    latency_ms: float,
    cost: Decimal | None,
    params: CallParams | None = None,
    calls: int | None = None,
) -> dict:
    """Map a successful call onto task columns: a new column the worker fills goes here.

    ``cost`` is None when it cannot be known (no prices, or no token counts reported).
    """
    return {
        "result": result.text,
        "latency_ms": latency_ms,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost": cost,
        "output_is_json": output_is_json(result.text, params),  # flags JSON mode's non-JSON
        "finish_reason": (result.finish_reason or None) and str(result.finish_reason)[:32],
        "calls": calls,
    }


def run_columns(params: CallParams | None) -> dict:
    """Map a call onto the run row's own columns (what the task row does not hold)."""
    return {
        "params": params.sent_json if params else None,
    }


def failure_columns(
    message: str,
    kind: str,
    latency_ms: float | None,
    partial_text: str | None,
    calls: int | None = None,
    frame: dict | None = None,
) -> dict:
    """Map a failed call onto task columns (any text streamed before it failed is kept).

    ``frame``: the failure as data (``engine.final_error``), read in each viewer's language.
    """
    return {
        "result": partial_text,
        "error": message,
        "error_kind": kind,
        "latency_ms": latency_ms,
        "calls": calls,
        "error_frame": frame,
    }


def _partial_stmt():
    return (
        update(_t)
        .where(
            and_(
                _t.c.id == bindparam("b_id"),
                _t.c.status == RUNNING,
                _t.c.job_id == bindparam("b_job"),
            )
        )
        .values(result=bindparam("b_result"))
    )


class OutcomeWriter:
    """Collect outcomes and flush them in batches."""

    def __init__(self, job_id: str, interval: float = 0.2, max_batch: int = 200):
        self.job_id = job_id
        self.interval = interval
        self.max_batch = max_batch
        self.finals: list[dict] = []
        self.partials: dict[int, str] = {}
        self.params: dict[int, CallParams] = {}
        self.last_flush = time.monotonic()
        self.written = 0
        # Called after each successful write with its final rows and whether every one of
        # them was committed as given (a row canceled meanwhile was left alone).
        self.after_write = None
        self.exact = False  # the last write changed every final row it was given
        self.hurried: set[int] = set()  # tasks whose outcome is written without waiting
        self.lent = 0  # batches taken into another runner's step, not back yet
        self.rush = False

    def begin(self, task_id: int, params: CallParams) -> None:
        """Remember the parameters a task's call sends (they go onto its run)."""
        self.params[task_id] = params

    def forget(self, task_id: int) -> None:
        """Drop what was kept for a task that leaves without an outcome (parked, canceled)."""
        self.params.pop(task_id, None)
        self.partials.pop(task_id, None)

    def success(
        self,
        task_id: int,
        result: ChatResult,
        latency_ms: float,
        cost: Decimal | None,
        calls: int | None = None,
    ) -> None:
        """Record a successful call (``calls``: calls made for it, retries included)."""
        params = self.params.pop(task_id, None)
        columns = success_columns(result, latency_ms, cost, params, calls)
        self._final(task_id, SUCCESS, columns, run_columns(params))

    def failure(
        self,
        task_id: int,
        message: str,
        kind: str,
        latency_ms: float | None,
        partial_text: str | None = None,
        calls: int | None = None,
        frame: dict | None = None,
    ) -> None:
        """Record a failed call (keeping any partial streamed text; ``frame``: see final_error)."""
        columns = failure_columns(message, kind, latency_ms, partial_text, calls, frame)
        self._final(task_id, FAILURE, columns, run_columns(self.params.pop(task_id, None)))

    def hurry(self, task_id: int) -> None:
        """Write this task's outcome as soon as it is known (a client waits for it)."""
        self.hurried.add(task_id)

    def partial(self, task_id: int, text: str) -> None:
        """Remember the latest streamed text of a running task."""
        self.partials[task_id] = text

    def _final(self, task_id: int, status: str, columns: dict, run: dict) -> None:
        self.partials.pop(task_id, None)
        if task_id in self.hurried:
            self.hurried.discard(task_id)
            self.rush = True
        row = {"id": task_id, "job_id": self.job_id, "status": status, "finished_at": utcnow()}
        self.finals.append({**row, **dict.fromkeys(OUTCOME_COLUMNS), **columns, RUN: run})

    def due(self) -> bool:
        """Tell whether a flush should happen now."""
        if len(self.finals) >= self.max_batch or self.rush:
            return True
        return (
            bool(self.finals or self.partials)
            and time.monotonic() - self.last_flush >= self.interval
        )

    def flush(self) -> None:
        """Write everything collected in one transaction."""
        self.write(self.take())

    def take(self) -> tuple[list[dict], dict[int, str]]:
        """Hand over everything collected so far (on the event loop's thread)."""
        batch = (self.finals, self.partials)
        self.finals, self.partials = [], {}
        self.rush = False
        self.last_flush = time.monotonic()
        return batch

    def give_back(self, batch: tuple[list[dict], dict[int, str]]) -> None:
        """Put a batch that could not be written back in front (newer partial text wins)."""
        finals, partials = batch
        self.finals[:0] = finals
        for task_id, text in partials.items():
            self.partials.setdefault(task_id, text)

    def write(self, batch: tuple[list[dict], dict[int, str]], commit: bool = True) -> None:
        """Write a taken batch in one transaction (may run in the executor's database thread).

        With ``commit=False`` the caller goes on in the same transaction, commits it and
        then calls ``committed(batch)``.
        """
        finals, partials = batch
        if not finals and not partials:
            return
        try:
            changed = 0
            if finals:
                changed = TASKS.transition_batch(
                    [{k: v for k, v in row.items() if k != RUN} for row in finals],
                    from_status=RUNNING,
                    match=("job_id",),
                    run_requested_at=None,
                )
                record_runs([{**row, **row[RUN]} for row in finals])
            # Whether every final row was written as given (a row canceled meanwhile was left
            # alone): only then may ``after_write`` pass the outcomes on (``engine.relay``).
            self.exact = changed == len(finals)
            if partials:
                db.session.execute(
                    _partial_stmt(),
                    [{"b_id": k, "b_job": self.job_id, "b_result": v} for k, v in partials.items()],
                )
            if commit:
                db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        if commit:
            self.committed(batch)

    def committed(self, batch: tuple[list[dict], dict[int, str]]) -> None:
        """Count a written batch once its transaction is committed; tell who waits for it."""
        finals, _ = batch
        self.written += len(finals)
        if finals and self.after_write is not None:
            self.after_write(finals, self.exact)
