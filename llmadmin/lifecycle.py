"""The one place where the status of a task, a download, a bulk operation or a batch changes.

Each kind of row has a ``StateMachine``: a table of which statuses a status may be
reached from, and timestamps that go with it. Every change is a conditional UPDATE
(``WHERE status IN allowed_from``), so two workers, or a worker and a person pressing
Cancel, can never both win: the loser's update matches no row and is a harmless no-op.

A guard on every database engine refuses any other UPDATE that writes one of these
status columns (an ORM flush of ``task.status = ...`` included), so no code path can
go around the table. Statements made here carry the ``LIFECYCLE`` execution option.

Asking for a move the table does not allow (SUCCESS from PENDING, say) is a bug in the
caller, not a race, and raises ``InvalidTransition``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

from sqlalchemy import bindparam, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.dml import Update

from llmadmin.database import in_batches
from llmadmin.errors import InvalidTransition
from llmadmin.extensions import db
from llmadmin.models import Batch, BulkOperation, Download, Task
from llmadmin.models.base import utcnow
from llmadmin.models.batch import BatchStatus
from llmadmin.models.bulk_operation import BulkStatus
from llmadmin.models.download import DownloadStatus
from llmadmin.models.task import TaskStatus

LIFECYCLE = "llmadmin_lifecycle"


class StateMachine:
    """Allowed transitions of one model's ``status`` column, applied as conditional updates."""

    def __init__(
        self,
        model,
        allowed_from: Mapping[StrEnum, tuple[StrEnum, ...]],
        stamps: Callable[[StrEnum], dict] = lambda status: {},
    ):
        self.model = model
        self.table = model.__table__
        self.allowed_from = {to: frozenset(froms) for to, froms in allowed_from.items()}
        self.stamps = stamps

    def sources(self, to_status, from_statuses: Iterable | None = None) -> list[str]:
        """Return the statuses ``to_status`` may be reached from, narrowed to ``from_statuses``."""
        allowed = self.allowed_from.get(to_status)
        if allowed is None:
            raise InvalidTransition(f"{self.table.name}: unknown status {to_status!r}.")
        if from_statuses is None:
            return sorted(allowed)
        wanted = set(from_statuses)
        impossible = wanted - allowed
        if impossible:
            raise InvalidTransition(
                f"{self.table.name}: {', '.join(sorted(impossible))} -> {to_status} is not allowed."
            )
        return sorted(wanted)

    def transition(
        self,
        ids: Iterable[int],
        to_status,
        *,
        from_statuses: Iterable | None = None,
        where=None,
        commit: bool = True,
        returning: tuple = (),
        **values,
    ) -> list:
        """Move the rows ``ids`` to ``to_status``; return the ids that actually changed.

        ``from_statuses`` narrows the allowed sources; ``where`` adds conditions (e.g.
        ``Task.job_id == job_id``) and ``values`` are written with the status. With
        ``returning`` (columns), return rows of (id, *returning) read by the same statement.
        """
        sources = self.sources(to_status, from_statuses)
        ids = list(dict.fromkeys(int(i) for i in ids))
        values = {**self.stamps(to_status), **values, "status": to_status}
        changed: list[int] = []
        for part in in_batches(ids):
            stmt = update(self.model).where(self.model.id.in_(part), self.model.status.in_(sources))
            if where is not None:
                stmt = stmt.where(where)
            stmt = stmt.values(**values).returning(self.model.id, *returning)
            stmt = stmt.execution_options(synchronize_session=False, **{LIFECYCLE: True})
            result = db.session.execute(stmt)
            changed.extend(result.all() if returning else result.scalars().all())
        if commit:
            db.session.commit()
        return changed

    def transition_batch(
        self, rows: list[dict], *, from_status, match: tuple[str, ...] = (), **constants
    ) -> int:
        """Batched form (one executemany): each row names its id, its target status and values.

        ``rows`` are dicts with ``id``, ``status`` and the same other keys (column names);
        ``match`` names columns that must equal the row's value for it to change (e.g.
        ``job_id``); ``constants`` are written to every row. Not committed here. Returns the
        number of rows changed as the driver counts it (-1 when it cannot tell).
        """
        if not rows:
            return 0
        for row in rows:
            self.sources(row["status"], (from_status,))
        columns = tuple(key for key in rows[0] if key not in ("id", *match))
        try:
            stmt = self._batch_statement(from_status, match, columns, tuple(constants.items()))
        except TypeError:  # a constant that cannot be a cache key: built for this call only
            stmt = self._batch_statement.__wrapped__(self, from_status, match, columns, constants)
        result = db.session.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in rows])
        return result.rowcount

    @functools.lru_cache(maxsize=64)  # noqa: B019  (the machines live as long as the process)
    def _batch_statement(self, from_status, match: tuple, columns: tuple, constants) -> Update:
        """The UPDATE of ``transition_batch``, built once per shape: a statement object that
        is reused keeps its cache key (the engine's outcome writes run it several times a
        second)."""
        t = self.table
        return (
            update(t)
            .where(
                t.c.id == bindparam("b_id"),
                t.c.status == from_status,
                *(t.c[name] == bindparam(f"b_{name}") for name in match),
            )
            .values({**{name: bindparam(f"b_{name}") for name in columns}, **dict(constants)})
            .execution_options(**{LIFECYCLE: True})
        )


def _task_stamps(to_status) -> dict:
    # A failure's frame (``texts``) belongs to the move that wrote it: any other move clears it,
    # so a frame never outlives the ``error`` it describes (a final task leaves only through
    # PENDING or QUEUED, so a claim for RUNNING never finds one).
    now = utcnow()
    if to_status == TaskStatus.QUEUED:
        return {"queued_at": now, "error_frame": None}
    if to_status == TaskStatus.RUNNING:
        return {"started_at": now, "attempts": Task.attempts + 1}
    if to_status in (TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.CANCELED):
        # why it waited is over once it is final
        return {"finished_at": now, "queue_note": None, "error_frame": None}
    return {"error_frame": None}


_T = TaskStatus
TASKS = StateMachine(
    Task,
    {
        _T.PENDING: tuple(_T),  # re-run / hand back: anything may wait to be sent again
        _T.QUEUED: tuple(_T),
        _T.RUNNING: (_T.QUEUED,),
        _T.SUCCESS: (_T.RUNNING,),
        _T.FAILURE: (_T.PENDING, _T.QUEUED, _T.RUNNING),
        _T.CANCELED: (_T.PENDING, _T.QUEUED, _T.RUNNING),
    },
    _task_stamps,
)

_D = DownloadStatus
DOWNLOADS = StateMachine(
    Download,
    {
        _D.RUNNING: (_D.PENDING,),
        _D.SUCCESS: (_D.RUNNING,),
        _D.FAILURE: (_D.PENDING, _D.RUNNING),
    },
)


def _bulk_stamps(to_status) -> dict:
    now = utcnow()
    stamps = {"updated_at": now}
    if to_status == BulkStatus.RUNNING:
        stamps["started_at"] = now
    if to_status in (BulkStatus.SUCCESS, BulkStatus.FAILURE):
        stamps["finished_at"] = now
    return stamps


_B = BulkStatus
BULK_OPERATIONS = StateMachine(
    BulkOperation,
    {
        _B.PENDING: (_B.RUNNING,),  # the sweep hands a row whose worker died back to the queue
        _B.RUNNING: (_B.PENDING,),  # a job claims its row
        _B.SUCCESS: (_B.RUNNING,),
        _B.FAILURE: (_B.PENDING, _B.RUNNING),
    },
    _bulk_stamps,
)

_S = BatchStatus
# The time column each batch status stamps (OpenAI's batch object has one per status).
_BATCH_TIMES = {
    _S.IN_PROGRESS: "in_progress_at",
    _S.FINALIZING: "finalizing_at",
    _S.COMPLETED: "completed_at",
    _S.FAILED: "failed_at",
    _S.EXPIRED: "expired_at",
    _S.CANCELLING: "cancelling_at",
    _S.CANCELLED: "cancelled_at",
}


def _batch_stamps(to_status) -> dict:
    column = _BATCH_TIMES.get(to_status)
    return {column: utcnow()} if column else {}


BATCHES = StateMachine(
    Batch,
    {
        _S.VALIDATING: (),
        # "retry failed lines" opens a finished batch again
        _S.IN_PROGRESS: (_S.VALIDATING, _S.FINALIZING, _S.COMPLETED, _S.CANCELLED, _S.EXPIRED),
        _S.FINALIZING: (_S.IN_PROGRESS,),
        _S.COMPLETED: (_S.IN_PROGRESS, _S.FINALIZING),
        _S.FAILED: (_S.VALIDATING, _S.IN_PROGRESS),
        _S.EXPIRED: (_S.IN_PROGRESS, _S.FINALIZING),
        _S.CANCELLING: (_S.VALIDATING, _S.IN_PROGRESS, _S.FINALIZING),
        _S.CANCELLED: (_S.VALIDATING, _S.CANCELLING),
    },
    _batch_stamps,
)

MACHINES: dict[str, StateMachine] = {
    m.table.name: m for m in (TASKS, DOWNLOADS, BULK_OPERATIONS, BATCHES)
}


def transition(task_ids: Iterable[int], to_status, **options) -> list[int]:
    """Move tasks (the most common case): ``TASKS.transition``."""
    return TASKS.transition(task_ids, to_status, **options)


def register(machine: StateMachine) -> StateMachine:
    """Put another kind of row under the guard (its status is then written only here)."""
    MACHINES[machine.table.name] = machine
    return machine


# --- the guard ---------------------------------------------------------------------------


def _writes_status(statement: Update, multiparams, params) -> bool:
    written = {getattr(col, "key", col) for col in (getattr(statement, "_values", None) or {})}
    written |= {
        getattr(col, "key", col) for col, _ in getattr(statement, "_ordered_values", None) or ()
    }
    for group in (params, *multiparams):
        for item in group if isinstance(group, list | tuple) else (group,):
            if isinstance(item, Mapping):
                written |= set(item)
    return "status" in written


@event.listens_for(Engine, "before_execute")
def _refuse_stray_status_writes(conn, clauseelement, multiparams, params, execution_options):
    """Refuse an UPDATE of a guarded status column that did not come through a StateMachine."""
    if not isinstance(clauseelement, Update):
        return
    table = getattr(clauseelement.table, "name", None)
    if table not in MACHINES:
        return
    if execution_options.get(LIFECYCLE) or clauseelement.get_execution_options().get(LIFECYCLE):
        return
    if _writes_status(clauseelement, multiparams, params):
        raise InvalidTransition(
            f"The status of a {table} row changes only through llmadmin.lifecycle "
            "(a conditional update that knows the allowed transitions)."
        )
