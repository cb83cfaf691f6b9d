"""What a batch produced: OpenAI output/error lines by custom_id, and the results export.

``openai_batch`` describes a Batch as OpenAI's batch object would (status, request
counts, times) and ``result_lines`` streams its output file (succeeded requests) or error
file (failed and canceled requests), one JSON object per task, matched by ``custom_id``.
``merge_invalid_lines`` puts the lines that made no task into the Download Center's
results file, in line order.
"""

from __future__ import annotations

import calendar
import heapq
import json
from collections.abc import Iterator

from sqlalchemy import func, select

from llmadmin.extensions import db
from llmadmin.models import Batch, LLMModel, Person, Task
from llmadmin.models.task import CANCELED, FAILURE, SUCCESS
from llmadmin.services.selections import Selection

YIELD_PER = 2000
OPENAI_TIMES = (
    "created_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "expires_at",
    "cancelling_at",
    "cancelled_at",
)


def unix(value) -> int | None:
    """Return a stored UTC time as Unix seconds (OpenAI's times)."""
    return None if value is None else calendar.timegm(value.utctimetuple())


def openai_status(batch: Batch) -> str:
    """Return the batch's status as OpenAI writes it (validating, in_progress, …)."""
    return batch.status.lower()


def request_counts(found) -> dict[str, int]:
    """OpenAI's request_counts of ``services.batches.Counts``.

    Canceled requests count as failed (they are in the error file).
    """
    return {
        "total": found.total,
        "completed": found.succeeded,
        "failed": found.failed + found.canceled,
    }


def openai_batch(batch: Batch, found) -> dict:
    """Return the parts of OpenAI's batch object that a Batch row knows."""
    errors = json.loads(batch.line_errors) if batch.line_errors else []
    return {
        "object": "batch",
        "endpoint": batch.endpoint,
        "completion_window": batch.completion_window,
        "status": openai_status(batch),
        "request_counts": request_counts(found),
        "errors": {
            "object": "list",
            "data": [
                {
                    "code": "invalid_request",
                    "message": e["message"],
                    "param": e["field"],
                    "line": e["line"],
                }
                for e in errors
            ],
        }
        if errors
        else None,
        **{name: unix(getattr(batch, name)) for name in OPENAI_TIMES},
    }


def _statuses(kind: str) -> tuple:
    return (SUCCESS,) if kind == "output" else (FAILURE, CANCELED)


def file_state(batch_id: int, kind: str) -> str:
    """A short key of what the output (or error) file is made of: it changes when the file does.

    One GROUP BY over the batch's tasks in the file's statuses: their count, the sum of their
    ids and their last finish per status and model name (a re-run finishes later, a renamed
    model changes the name). Cheaper than reading the file; stored with its size.
    """
    rows = db.session.execute(
        select(
            Task.status,
            LLMModel.model_name,
            func.count(),
            func.sum(Task.id),
            func.max(Task.finished_at),
        )
        .outerjoin(LLMModel, Task.model_id == LLMModel.id)
        .where(Task.batch_id == batch_id, Task.status.in_(_statuses(kind)))
        .group_by(Task.status, LLMModel.model_name)
    ).all()
    return json.dumps(sorted([str(value) for value in row] for row in rows))


def result_lines(batch_id: int, kind: str) -> Iterator[dict]:
    """Yield the batch's output lines (kind "output") or error lines (kind "error")."""
    statuses = _statuses(kind)
    query = (
        select(
            Task.id,
            Task.custom_id,
            Task.status,
            Task.result,
            Task.error,
            Task.error_kind,
            Task.finish_reason,
            Task.prompt_tokens,
            Task.completion_tokens,
            Task.finished_at,
            LLMModel.model_name,
        )
        .outerjoin(LLMModel, Task.model_id == LLMModel.id)
        .where(Task.batch_id == batch_id, Task.status.in_(statuses))
        .order_by(Task.id)
    )
    # Statement-level option: Connection.execution_options would change the session's
    # connection for good (every later statement a server-side cursor on PostgreSQL).
    result = db.session.execute(query.execution_options(yield_per=YIELD_PER))
    try:
        for row in result:
            yield _output_line(row) if kind == "output" else _error_line(row)
    finally:
        result.close()


def _output_line(row) -> dict:
    usage = None
    if row.prompt_tokens is not None or row.completion_tokens is not None:
        prompt, completion = row.prompt_tokens or 0, row.completion_tokens or 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return {
        "id": f"batch_req_{row.id}",
        "custom_id": row.custom_id,
        "response": {
            "status_code": 200,
            "request_id": f"task-{row.id}",
            "body": {
                "id": f"chatcmpl-task-{row.id}",
                "object": "chat.completion",
                "created": unix(row.finished_at),
                "model": row.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": row.result},
                        "finish_reason": row.finish_reason or "stop",
                    }
                ],
                "usage": usage,
            },
        },
        "error": None,
    }


def _error_line(row) -> dict:
    if row.status == CANCELED:  # OpenAI's codes: batch_expired for lines its window cut off
        code = "batch_expired" if row.error_kind == "batch_expired" else "batch_cancelled"
    else:
        code = row.error_kind or "task_failed"
    return {
        "id": f"batch_req_{row.id}",
        "custom_id": row.custom_id,
        "response": None,
        "error": {"code": code, "message": row.error or ""},
    }


# --- the Download Center's results file ----------------------------------------------------


def batch_of(selection: Selection) -> int | None:
    """Return the batch id a results export selects (its ``batch equals`` filter)."""
    for name, operation, value in selection.filters:
        if name == "batch" and operation == "equals":
            return int(value)
    return None


def merge_invalid_lines(selection: Selection, rows: Iterator[tuple], width: int) -> Iterator:
    """Merge the batch's rejected lines (stored on the Batch row) into its task rows, by line.

    Task rows start with their line number (the results export's first column); an invalid
    line's row has its line, custom id, the status INVALID and the error in the
    ``Error`` column (index 6), the rest empty.
    """
    batch_id = batch_of(selection)
    batch = db.session.get(Batch, batch_id) if batch_id is not None else None
    person = db.session.get(Person, selection.person_id)
    if batch is None or person is None or not (person.is_admin or batch.creator_id == person.id):
        return rows  # the query's own scope already left out what this person may not see
    errors = json.loads(batch.line_errors) if batch.line_errors else []
    if not errors:
        return rows
    invalid = []
    for error in errors:
        row = [None] * width
        row[0], row[1], row[2] = error["line"], error.get("custom_id"), "INVALID"
        field = error.get("field")
        row[6] = f"{field}: {error['message']}" if field else error["message"]
        invalid.append(tuple(row))
    return heapq.merge(rows, invalid, key=lambda r: r[0] or 0)
