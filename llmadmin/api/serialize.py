"""Rows as the API shows them (ISO 8601 UTC times, API keys masked, errors as the viewer may see)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from llmadmin.admin.formatters import FINAL_STATUSES, error_for_viewer
from llmadmin.models import ApiToken, Batch, BulkOperation, Download, LLMModel, Task, TaskRun
from llmadmin.models.batch import BATCH_STATUSES
from llmadmin.services import api_tokens, batch_results
from llmadmin.services import llm_models as model_service
from llmadmin.services.task_params import PARAM_FIELDS


def when(value: datetime | None) -> str | None:
    """Return a stored UTC time as ISO 8601 with a Z."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def number(value) -> float | None:
    """Return a Decimal or float as a JSON number."""
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal) else value


def task(row: Task, model_names: dict[int, str] | None = None) -> dict:
    """Return a task as JSON."""
    model_name = (model_names or {}).get(row.model_id) if model_names is not None else None
    if model_names is None and row.model is not None:
        model_name = row.model.name
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "model": model_name,
        "model_id": row.model_id,
        "creator_id": row.creator_id,
        "source_task_id": row.source_task_id,
        "batch_id": row.batch_id,
        "custom_id": row.custom_id,
        "prompt": row.prompt,
        "system_prompt": row.system_prompt,
        "messages": row.messages,
        "result": row.result,
        "error": error_for_viewer(row.error_kind, row.error) or None,
        "error_kind": row.error_kind,
        "queue_note": None if row.status in FINAL_STATUSES else row.queue_note,
        "attempts": row.attempts,
        "latency_ms": call_latency(row),
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost": number(row.cost),
        "calls": row.calls,
        "finish_reason": row.finish_reason,
        "output_is_json": row.output_is_json,
        "result_outdated": bool(row.result_outdated),
        "parameters": parameters(row),
        "created_at": when(row.created_at),
        "queued_at": when(row.queued_at),
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
    }


def call_latency(row: Task | TaskRun) -> float | None:
    """The latency of the calls made; None when no call was sent (``calls`` 0)."""
    return None if row.calls == 0 else row.latency_ms


def parameters(row: Task) -> dict:
    """Return the task's own call parameters (empty ones left out: the model's settings apply)."""
    values = {}
    for name in PARAM_FIELDS:
        value = getattr(row, name)
        if value is None:
            continue
        values[name] = json.loads(value) if name in ("stop", "response_format") else value
    return values


def run(row: Task | TaskRun, ordinal: int, params: dict | None = None) -> dict:
    """Return one run: a stored ``TaskRun``, or the task itself for the run under way."""
    stored = isinstance(row, TaskRun)
    return {
        "id": row.id if stored else None,
        "task_id": row.task_id if stored else row.id,
        "number": ordinal,
        "status": row.status,
        "attempts": row.attempts,
        "calls": row.calls,
        "model_id": row.model_id,
        "model_label": row.model_label if stored else None,
        "params": params,
        "result": row.result,
        "finish_reason": row.finish_reason,
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
        "latency_ms": call_latency(row),
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost": number(row.cost),
        "error": error_for_viewer(row.error_kind, row.error) or None,
        "error_kind": row.error_kind,
    }


MODEL_FIELDS = (
    "id",
    "name",
    "base_url",
    "model_name",
    "maintainer_id",
    "enabled",
    "simulated",
    "stream",
    "temperature",
    "max_tokens",
    "timeout_seconds",
    "max_concurrency",
    "rpm_limit",
    "max_attempts",
    "breaker_threshold",
    "breaker_cooldown_seconds",
    "last_test_status",
    "last_test_latency_ms",
)


def model(row: LLMModel, *, admin: bool) -> dict:
    """Return a model as JSON; the key is always masked, the last test error for admins only."""
    data = {name: getattr(row, name) for name in MODEL_FIELDS}
    data.update(
        api_key=model_service.masked_key(row),
        price_input_per_1k=number(row.price_input_per_1k),
        price_output_per_1k=number(row.price_output_per_1k),
        last_test_at=when(row.last_test_at),
        last_test_error=row.last_test_error if admin else None,
        created_at=when(row.created_at),
        updated_at=when(row.updated_at),
    )
    return data


def download(row: Download) -> dict:
    """Return a Download Center row as JSON."""
    return {
        "id": row.id,
        "name": row.name,
        "file_name": row.file_name,
        "format": row.file_format,
        "source": row.source,
        "status": row.status,
        "row_count": row.row_count,
        "progress_rows": row.progress_rows,
        "size_bytes": row.size_bytes,
        "md5": row.md5,
        "error": row.error,
        "creator_id": row.creator_id,
        "created_at": when(row.created_at),
        "finished_at": when(row.finished_at),
        "expires_at": when(row.expires_at),
        "file_url": f"/api/v1/downloads/{row.id}/file" if row.status == "SUCCESS" else None,
    }


def operation(row: BulkOperation) -> dict:
    """Return a bulk operation with its counts."""
    return {
        "id": row.id,
        "creator_id": row.creator_id,
        "list": row.list_name,
        "action": row.action,
        "description": row.description,
        "status": row.status,
        "matched": row.matched,
        "processed": row.processed,
        "changed": row.changed,
        "skipped": row.skipped,
        "error": row.error,
        "download_id": row.download_id,
        "created_at": when(row.created_at),
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
    }


BATCH_STATUS_NAMES = tuple(s.value for s in BATCH_STATUSES)


def batch(row: Batch, counts) -> dict:
    """Return a batch with its counts (``services.batches.Counts``) and OpenAI's view of it."""
    errors = json.loads(row.line_errors) if row.line_errors else []
    return {
        "id": row.id,
        "name": row.name,
        "creator_id": row.creator_id,
        "source_name": row.source_name,
        "source_format": row.source_format,
        "endpoint": row.endpoint,
        "status": row.status,
        "openai_status": batch_results.openai_status(row),
        "counts": counts.as_dict(),
        "request_counts": batch_results.request_counts(counts),
        "lines": row.lines,
        "line_count": row.line_count,
        "invalid_lines": row.invalid_lines,
        "completion_window": row.completion_window,
        "line_errors": [
            {
                "line": e["line"],
                "custom_id": e.get("custom_id"),
                "field": e.get("field"),
                "message": e["message"],
            }
            for e in errors[:100]
        ],
        "error": row.error,
        "created_at": when(row.created_at),
        "in_progress_at": when(row.in_progress_at),
        "completed_at": when(row.completed_at),
        "cancelled_at": when(row.cancelled_at),
        "expires_at": when(row.expires_at),
        "expired_at": when(row.expired_at),
    }


def token(row: ApiToken) -> dict:
    """Return a token's public facts (never the token itself)."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "status": api_tokens.token_status(row),
        "created_at": when(row.created_at),
        "last_used_at": when(row.last_used_at),
        "expires_at": when(row.expires_at),
    }
