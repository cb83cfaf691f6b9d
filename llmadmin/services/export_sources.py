"""What each admin list exports: its columns (never a secret) and the joins they need.

Shared by the export job (services.downloads), the admin's export actions and the
benchmarks; kept apart so the list of exported fields is easy to review.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean
from sqlalchemy.orm import aliased

from llmadmin import crypto
from llmadmin.exports import human
from llmadmin.models import LLMModel, Person, Task, TaskRun
from llmadmin.services import batch_results

# --- what each list exports (never a secret) ---------------------------------------------


@dataclass(frozen=True)
class Column:
    header: Any  # a lazy text: the export job renders it in the requester's language
    expr: Any  # a column of the list's model or of an aliased related model
    convert: Callable[[Any], Any] | None = None
    # What the cells hold for people (exports.human.KINDS: "status", "error_kind", "role",
    # "ms"); boolean columns are written as yes/no without saying so.
    human: str | None = None


@dataclass(frozen=True)
class Source:
    label: Any  # a lazy text, like Column.header
    endpoint: str  # the admin view whose query (and per-person scope) selects the rows
    formats: tuple[str, ...]
    columns: Callable[[], tuple[list[Column], list[tuple]]]  # -> columns, outer joins
    then_by: Callable[[], tuple] = tuple  # order within one list row (e.g. its runs)
    # (selection, rows, width) -> rows: adds rows that are not in the query (a batch's
    # rejected lines), keeping the order
    merge_rows: Callable[..., Any] | None = None


def _task_columns():
    model, creator = aliased(LLMModel), aliased(Person)
    columns = [
        Column(_l("ID"), Task.id),
        Column(_l("Name"), Task.name),
        Column(_l("Status"), Task.status, human="status"),
        Column(_l("Model"), model.name),
        Column(_l("Creator"), creator.name),
        Column(_l("Runs"), Task.attempts),
        Column(_l("Calls"), Task.calls),
        Column(_l("Latency (ms)"), Task.latency_ms, human="ms"),
        Column(_l("Prompt tokens"), Task.prompt_tokens),
        Column(_l("Output tokens"), Task.completion_tokens),
        Column(_l("Cost"), Task.cost),
        Column(_l("Finish reason"), Task.finish_reason),
        Column(_l("Error class"), Task.error_kind, human="error_kind"),
        Column(_l("Error"), Task.error),
        Column(_l("Created at"), Task.created_at),
        Column(_l("Started at"), Task.started_at),
        Column(_l("Finished at"), Task.finished_at),
        Column(_l("System prompt"), Task.system_prompt),
        Column(_l("Prompt"), Task.prompt),
        *_param_columns(),
        Column(_l("Output is JSON"), Task.output_is_json),
        Column(_l("Output outdated"), Task.result_outdated),
        Column(_l("Output"), Task.result),
    ]
    return columns, [(model, Task.model_id == model.id), (creator, Task.creator_id == creator.id)]


def _param_columns() -> list[Column]:
    return [
        Column(_l("Temperature"), Task.temperature),
        Column(_l("Max tokens"), Task.max_tokens),
        Column(_l("Top p"), Task.top_p),
        Column(_l("Stop"), Task.stop),
        Column(_l("Seed"), Task.seed),
        Column(_l("Response format"), Task.response_format),
    ]


def _task_run_columns():
    """Every run of the selected tasks: one line per run (a task never run: one empty line)."""
    run = TaskRun  # not aliased: ``then_by`` names it too
    columns = [
        Column(_l("Task ID"), Task.id),
        Column(_l("Task name"), Task.name),
        Column(_l("Run ID"), run.id),
        Column(_l("Run status"), run.status, human="status"),
        Column(_l("Model"), run.model_label),
        Column(_l("Parameters"), run.params),
        Column(_l("Attempts"), run.attempts),
        Column(_l("Finish reason"), run.finish_reason),
        Column(_l("Latency (ms)"), run.latency_ms, human="ms"),
        Column(_l("Prompt tokens"), run.prompt_tokens),
        Column(_l("Output tokens"), run.completion_tokens),
        Column(_l("Cost"), run.cost),
        Column(_l("Output is JSON"), run.output_is_json),
        Column(_l("Error class"), run.error_kind, human="error_kind"),
        Column(_l("Error"), run.error),
        Column(_l("Started at"), run.started_at),
        Column(_l("Finished at"), run.finished_at),
        Column(_l("System prompt (current)"), Task.system_prompt),
        Column(_l("Prompt (current)"), Task.prompt),
        Column(_l("Output"), run.result),
    ]
    return columns, [(run, run.task_id == Task.id)]


def _batch_result_columns():
    """One line per input line of a batch (its task; rejected lines are merged in)."""
    model = aliased(LLMModel)
    columns = [
        Column(_l("Line"), Task.batch_line),
        Column(_l("Custom ID"), Task.custom_id),
        Column(_l("Status"), Task.status, human="status"),
        Column(_l("Name"), Task.name),
        Column(_l("Model"), model.name),
        Column(_l("Output"), Task.result),
        Column(_l("Error"), Task.error),
        Column(_l("Error class"), Task.error_kind, human="error_kind"),
        Column(_l("Finish reason"), Task.finish_reason),
        Column(_l("Prompt tokens"), Task.prompt_tokens),
        Column(_l("Output tokens"), Task.completion_tokens),
        Column(_l("Cost"), Task.cost),
        Column(_l("Latency (ms)"), Task.latency_ms, human="ms"),
        Column(_l("Finished at"), Task.finished_at),
        Column(_l("Task ID"), Task.id),
        Column(_l("System prompt"), Task.system_prompt),
        Column(_l("Prompt"), Task.prompt),
    ]
    return columns, [(model, Task.model_id == model.id)]


def _masked_key(token: str | None) -> str:
    if not token:
        return ""
    try:
        return crypto.mask(crypto.decrypt(token))
    except crypto.SecretUnreadable:
        return _("(unreadable)")


def _model_columns():
    maintainer = aliased(Person)
    columns = [
        Column(_l("ID"), LLMModel.id),
        Column(_l("Name"), LLMModel.name),
        Column(_l("Model name"), LLMModel.model_name),
        Column(_l("Base URL"), LLMModel.base_url),
        Column(_l("API key (masked)"), LLMModel.api_key_encrypted, _masked_key),
        Column(_l("Enabled"), LLMModel.enabled),
        Column(_l("Simulated"), LLMModel.simulated),
        Column(_l("Stream"), LLMModel.stream),
        Column(_l("Temperature"), LLMModel.temperature),
        Column(_l("Max tokens"), LLMModel.max_tokens),
        Column(_l("Timeout (s)"), LLMModel.timeout_seconds),
        Column(_l("Max concurrent"), LLMModel.max_concurrency),
        Column(_l("Requests/min"), LLMModel.rpm_limit),
        Column(_l("Max attempts"), LLMModel.max_attempts),
        Column(_l("Maintainer"), maintainer.name),
        Column(_l("Price per 1K input"), LLMModel.price_input_per_1k),
        Column(_l("Price per 1K output"), LLMModel.price_output_per_1k),
        Column(_l("Created at"), LLMModel.created_at),
        Column(_l("Updated at"), LLMModel.updated_at),
    ]
    return columns, [(maintainer, LLMModel.maintainer_id == maintainer.id)]


def _person_columns():  # password_hash is never exported
    columns = [
        Column(_l("ID"), Person.id),
        Column(_l("Name"), Person.name),
        Column(_l("Email"), Person.email),
        Column(_l("Phone"), Person.phone),
        Column(_l("Role"), Person.role, human="role"),
        Column(_l("Active"), Person.active),
        Column(_l("Created at"), Person.created_at),
    ]
    return columns, []


SOURCES: dict[str, Source] = {
    "tasks": Source(_l("Tasks"), "task", ("csv", "xlsx", "zip"), _task_columns),
    # The same rows with all their runs instead of the latest only.
    "task_runs": Source(
        _l("Task runs"), "task", ("csv", "xlsx"), _task_run_columns, lambda: (TaskRun.id,)
    ),
    "llm_models": Source(_l("LLM Models"), "llmmodel", ("csv", "xlsx"), _model_columns),
    "people": Source(_l("People"), "person", ("csv", "xlsx"), _person_columns),
    # A batch's results: the task list filtered by the batch, plus its rejected lines.
    "batch_results": Source(
        _l("Batch results"),
        "task",
        ("csv", "xlsx"),
        _batch_result_columns,
        merge_rows=batch_results.merge_invalid_lines,
    ),
}


def source_for_endpoint(endpoint: str) -> str:
    """Return the SOURCES key of the admin list ``endpoint`` ("" when it has none)."""
    return next((key for key, source in SOURCES.items() if source.endpoint == endpoint), "")


def for_people(column: Column) -> Column:
    """Return ``column`` as a spreadsheet export writes it: codes as labels, flags as yes/no.

    Call it in the requester's language: the labels are read once, here.
    """
    kind = column.human
    if kind is None and isinstance(getattr(column.expr, "type", None), Boolean):
        kind = "flag"
    if kind is None:
        return column
    convert = human.converter(kind)
    if column.convert is not None:
        first, then = column.convert, convert

        def convert(value):
            return then(first(value))

    return dataclasses.replace(column, convert=convert)


# The ZIP bundle keeps these long texts as one file per task instead of CSV cells.
BUNDLE_TEXTS = {"tasks": ((_l("Prompt"), "prompts"), (_l("Output"), "outputs"))}
