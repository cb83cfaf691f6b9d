"""What each admin list exports: its columns (never a secret) and the joins they need.

Shared by the export job (services.downloads), the admin's export actions and the
benchmarks; kept apart so the list of exported fields is easy to review.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import aliased

from llmadmin import crypto
from llmadmin.models import LLMModel, Person, Task, TaskRun

# --- what each list exports (never a secret) ---------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    expr: Any  # a column of the list's model or of an aliased related model
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Source:
    label: str
    endpoint: str  # the admin view whose query (and per-person scope) selects the rows
    formats: tuple[str, ...]
    columns: Callable[[], tuple[list[Column], list[tuple]]]  # -> columns, outer joins
    then_by: Callable[[], tuple] = tuple  # order within one list row (e.g. its runs)


def _task_columns():
    model, creator = aliased(LLMModel), aliased(Person)
    columns = [
        Column("ID", Task.id),
        Column("Name", Task.name),
        Column("Status", Task.status),
        Column("Model", model.name),
        Column("Creator", creator.name),
        Column("Runs", Task.attempts),
        Column("Calls", Task.calls),
        Column("Latency (ms)", Task.latency_ms),
        Column("Prompt tokens", Task.prompt_tokens),
        Column("Output tokens", Task.completion_tokens),
        Column("Cost", Task.cost),
        Column("Finish reason", Task.finish_reason),
        Column("Error class", Task.error_kind),
        Column("Error", Task.error),
        Column("Created at", Task.created_at),
        Column("Started at", Task.started_at),
        Column("Finished at", Task.finished_at),
        Column("System prompt", Task.system_prompt),
        Column("Prompt", Task.prompt),
        *_param_columns(),
        Column("Output is JSON", Task.output_is_json),
        Column("Output outdated", Task.result_outdated),
        Column("Output", Task.result),
    ]
    return columns, [(model, Task.model_id == model.id), (creator, Task.creator_id == creator.id)]


def _param_columns() -> list[Column]:
    return [
        Column("Temperature", Task.temperature),
        Column("Max tokens", Task.max_tokens),
        Column("Top p", Task.top_p),
        Column("Stop", Task.stop),
        Column("Seed", Task.seed),
        Column("Response format", Task.response_format),
    ]


def _task_run_columns():
    """Every run of the selected tasks: one line per run (a task never run: one empty line)."""
    run = TaskRun  # not aliased: ``then_by`` names it too
    columns = [
        Column("Task ID", Task.id),
        Column("Task name", Task.name),
        Column("Run ID", run.id),
        Column("Run status", run.status),
        Column("Model", run.model_label),
        Column("Parameters", run.params),
        Column("Attempts", run.attempts),
        Column("Finish reason", run.finish_reason),
        Column("Latency (ms)", run.latency_ms),
        Column("Prompt tokens", run.prompt_tokens),
        Column("Output tokens", run.completion_tokens),
        Column("Cost", run.cost),
        Column("Output is JSON", run.output_is_json),
        Column("Error class", run.error_kind),
        Column("Error", run.error),
        Column("Started at", run.started_at),
        Column("Finished at", run.finished_at),
        Column("System prompt (current)", Task.system_prompt),
        Column("Prompt (current)", Task.prompt),
        Column("Output", run.result),
    ]
    return columns, [(run, run.task_id == Task.id)]


def _masked_key(token: str | None) -> str:
    if not token:
        return ""
    try:
        return crypto.mask(crypto.decrypt(token))
    except crypto.SecretUnreadable:
        return "(unreadable)"


def _model_columns():
    maintainer = aliased(Person)
    columns = [
        Column("ID", LLMModel.id),
        Column("Name", LLMModel.name),
        Column("Model name", LLMModel.model_name),
        Column("Base URL", LLMModel.base_url),
        Column("API key (masked)", LLMModel.api_key_encrypted, _masked_key),
        Column("Enabled", LLMModel.enabled),
        Column("Simulated", LLMModel.simulated),
        Column("Stream", LLMModel.stream),
        Column("Temperature", LLMModel.temperature),
        Column("Max tokens", LLMModel.max_tokens),
        Column("Timeout (s)", LLMModel.timeout_seconds),
        Column("Max concurrent", LLMModel.max_concurrency),
        Column("Requests/min", LLMModel.rpm_limit),
        Column("Max attempts", LLMModel.max_attempts),
        Column("Maintainer", maintainer.name),
        Column("Price per 1K input", LLMModel.price_input_per_1k),
        Column("Price per 1K output", LLMModel.price_output_per_1k),
        Column("Created at", LLMModel.created_at),
        Column("Updated at", LLMModel.updated_at),
    ]
    return columns, [(maintainer, LLMModel.maintainer_id == maintainer.id)]


def _person_columns():  # password_hash is never exported
    columns = [
        Column("ID", Person.id),
        Column("Name", Person.name),
        Column("Email", Person.email),
        Column("Phone", Person.phone),
        Column("Role", Person.role),
        Column("Active", Person.active),
        Column("Created at", Person.created_at),
    ]
    return columns, []


SOURCES: dict[str, Source] = {
    "tasks": Source("Tasks", "task", ("csv", "xlsx", "zip"), _task_columns),
    # The same rows with all their runs instead of the latest only.
    "task_runs": Source(
        "Task runs", "task", ("csv", "xlsx"), _task_run_columns, lambda: (TaskRun.id,)
    ),
    "llm_models": Source("LLM Models", "llmmodel", ("csv", "xlsx"), _model_columns),
    "people": Source("People", "person", ("csv", "xlsx"), _person_columns),
}


def source_for_endpoint(endpoint: str) -> str:
    """Return the SOURCES key of the admin list ``endpoint`` ("" when it has none)."""
    return next((key for key, source in SOURCES.items() if source.endpoint == endpoint), "")


# The ZIP bundle keeps these long texts as one file per task instead of CSV cells.
BUNDLE_TEXTS = {"tasks": (("Prompt", "prompts"), ("Output", "outputs"))}
