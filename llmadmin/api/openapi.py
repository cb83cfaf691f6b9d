"""The OpenAPI 3.1 description of ``/api/v1``, built as data from the same shapes the API uses.

``tests/api/test_conformance.py`` runs schemathesis against the running app with this
document, so a status code or a field that drifts from it fails the suite.
"""

from __future__ import annotations

from functools import lru_cache

from flask import current_app
from flask_babel import LazyString, force_locale, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from llmadmin.api.schema import ref, to_openapi
from llmadmin.api.serialize import BATCH_STATUS_NAMES
from llmadmin.api.shapes import (
    CHAT_TURN,
    EXPORT_INPUT,
    MODEL_INPUT,
    MODEL_UPDATE,
    TASK_FILTERS,
    TASK_INPUT,
    TASKS_INPUT,
)
from llmadmin.models.task import STATUSES
from llmadmin.version import VERSION as __version__

MAX_ID = 2**31 - 1
ERROR_TEXT = {
    400: _l("Malformed request (e.g. JSON syntax: the message gives line and column)."),
    401: _l("Missing, unknown, revoked or expired token (cookies are not accepted)."),
    403: _l("Only administrators may do this."),
    404: _l("Absent, or not visible to the token's person."),
    409: _l("The row's state does not allow this."),
    410: _l("The file expired or was removed."),
    413: _l("The body or the number of tasks is too large."),
    422: _l("Invalid input: `field` names it; many-task requests list every item in `details`."),
    429: _l("Too many requests for this token; see Retry-After."),
}
READ = (400, 401, 404, 422, 429)
WRITE = (400, 401, 403, 404, 409, 413, 422, 429)


def _t(kind, **extra) -> dict:
    return {"type": kind, **extra}


def _n(kind, **extra) -> dict:
    """A nullable JSON type."""
    return {"type": [kind, "null"], **extra}


def _object(properties: dict, required=None) -> dict:
    return {"type": "object", "properties": properties, "required": list(required or properties)}


TIME = _n("string", format="date-time")
SCHEMAS = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": _t("string"),
                    "message": _t("string"),
                    "field": _n("string"),
                    "details": {
                        "type": "array",
                        "items": _object(
                            {"index": _t("integer"), "field": _n("string"), "message": _t("string")}
                        ),
                    },
                },
                required=("code", "message", "field"),
            )
        }
    ),
    "Task": _object(
        {
            "id": _t("integer"),
            "name": _t("string"),
            "status": _t("string", enum=list(STATUSES)),
            "model": _n("string"),
            "model_id": _n("integer"),
            "creator_id": _n("integer"),
            "source_task_id": _n("integer"),
            "batch_id": _n("integer"),
            "custom_id": _n("string"),
            "prompt": _t("string"),
            "system_prompt": _n("string"),
            "messages": {"anyOf": [{"type": "array", "items": ref("ChatTurn")}, {"type": "null"}]},
            "result": _n("string"),
            "error": _n("string"),
            "error_kind": _n("string"),
            "queue_note": _n("string"),
            "attempts": _t("integer"),
            "latency_ms": _n("number"),
            "prompt_tokens": _n("integer"),
            "completion_tokens": _n("integer"),
            "cost": _n("number"),
            "calls": _n("integer"),
            "finish_reason": _n("string"),
            "output_is_json": _n("boolean"),
            "result_outdated": _t("boolean"),
            "parameters": _t("object"),
            "created_at": _t("string", format="date-time"),
            "queued_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
        }
    ),
    "TaskList": _object(
        {"data": {"type": "array", "items": ref("Task")}, "next_cursor": _n("string")}
    ),
    "TasksCreated": _object(
        {
            "created": _t("integer"),
            "valid": _t("integer"),
            "ids": {"type": "array", "items": _t("integer")},
            "queued": _t("integer"),
            "waiting": _t("integer"),
        }
    ),
    "Run": _object(
        {
            "id": _n("integer"),
            "task_id": _t("integer"),
            "number": _t("integer"),
            "status": _t("string"),
            "attempts": _t("integer"),
            "calls": _n("integer"),
            "model_id": _n("integer"),
            "model_label": _n("string"),
            "params": _n("object"),
            "result": _n("string"),
            "finish_reason": _n("string"),
            "started_at": TIME,
            "finished_at": TIME,
            "latency_ms": _n("number"),
            "prompt_tokens": _n("integer"),
            "completion_tokens": _n("integer"),
            "cost": _n("number"),
            "error": _n("string"),
            "error_kind": _n("string"),
        }
    ),
    "RunList": _object({"data": {"type": "array", "items": ref("Run")}}),
    "Model": _object(
        {
            "id": _t("integer"),
            "name": _t("string"),
            "base_url": _t("string"),
            "model_name": _t("string"),
            "api_key": _t("string", description=_l("Masked, e.g. sk-…abcd, or '(no key)'.")),
            "maintainer_id": _n("integer"),
            "enabled": _t("boolean"),
            "simulated": _t("boolean"),
            "stream": _t("boolean"),
            "temperature": _t("number"),
            "max_tokens": _t("integer"),
            "timeout_seconds": _t("number"),
            "max_concurrency": _t("integer"),
            "rpm_limit": _t("integer"),
            "max_attempts": _t("integer"),
            "breaker_threshold": _t("integer"),
            "breaker_cooldown_seconds": _t("integer"),
            "price_input_per_1k": _n("number"),
            "price_output_per_1k": _n("number"),
            "last_test_at": TIME,
            "last_test_status": _n("integer"),
            "last_test_latency_ms": _n("number"),
            "last_test_error": _n("string"),
            "created_at": _t("string", format="date-time"),
            "updated_at": _t("string", format="date-time"),
        }
    ),
    "ModelList": _object({"data": {"type": "array", "items": ref("Model")}}),
    "ModelTestQueued": _object({"queued": _t("boolean"), "model_id": _t("integer")}),
    "Download": _object(
        {
            "id": _t("integer"),
            "name": _t("string"),
            "file_name": _t("string"),
            "format": _t("string"),
            "source": _t("string"),
            "status": _t("string", enum=["PENDING", "RUNNING", "SUCCESS", "FAILURE"]),
            "row_count": _n("integer"),
            "progress_rows": _t("integer"),
            "size_bytes": _n("integer"),
            "md5": _n("string"),
            "error": _n("string"),
            "creator_id": _n("integer"),
            "created_at": _t("string", format="date-time"),
            "finished_at": TIME,
            "expires_at": TIME,
            "file_url": _n("string"),
        }
    ),
    "BulkOperation": _object(
        {
            "id": _t("integer"),
            "creator_id": _n("integer"),
            "list": _t("string"),
            "action": _t("string"),
            "description": _t("string"),
            "status": _t("string", enum=["PENDING", "RUNNING", "SUCCESS", "FAILURE"]),
            "matched": _n("integer"),
            "processed": _t("integer"),
            "changed": _t("integer"),
            "skipped": _t("integer"),
            "error": _n("string"),
            "download_id": _n("integer"),
            "created_at": _t("string", format="date-time"),
            "started_at": TIME,
            "finished_at": TIME,
        }
    ),
    "Batch": _object(
        {
            "id": _t("integer"),
            "name": _t("string"),
            "creator_id": _n("integer"),
            "source_name": _n("string"),
            "source_format": _t("string", enum=["csv", "xlsx", "jsonl"]),
            "endpoint": _t("string"),
            "status": _t("string", enum=list(BATCH_STATUS_NAMES)),
            "openai_status": _t("string", enum=[s.lower() for s in BATCH_STATUS_NAMES]),
            "counts": _object(
                {
                    name: _t("integer")
                    for name in ("total", "queued", "running", "succeeded", "failed", "canceled")
                }
            ),
            "request_counts": _object(
                {name: _t("integer") for name in ("total", "completed", "failed")}
            ),
            "lines": _t("integer"),
            "line_count": _n("integer"),
            "invalid_lines": _t("integer"),
            "completion_window": _t("string"),
            "line_errors": {
                "type": "array",
                "items": _object(
                    {
                        "line": _t("integer"),
                        "custom_id": _n("string"),
                        "field": _n("string"),
                        "message": _t("string"),
                    }
                ),
            },
            "error": _n("string"),
            "created_at": _t("string", format="date-time"),
            "in_progress_at": TIME,
            "completed_at": TIME,
            "cancelled_at": TIME,
            "expires_at": TIME,
            "expired_at": TIME,
        }
    ),
    "BatchList": _object(
        {"data": {"type": "array", "items": ref("Batch")}, "next_cursor": _n("string")}
    ),
}
INPUTS = (
    CHAT_TURN,
    TASK_INPUT,
    TASKS_INPUT,
    TASK_FILTERS,
    EXPORT_INPUT,
    MODEL_INPUT,
    MODEL_UPDATE,
)


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _id(name: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def _query(name: str, description: str, **schema) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def operation(
    op_id: str,
    summary: str,
    ok: dict,
    errors=READ,
    body: str | dict | None = None,
    params=(),
    tag: str = "",
) -> dict:
    """Return one operation: its answers, its parameters and its body (a schema name)."""
    responses = dict(ok)
    for status in errors:
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": _json(ref("Error")),
            **(
                {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
                if status == 429
                else {}
            ),
        }
    result = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if params:
        result["parameters"] = list(params)
    if body is not None:
        schema = ref(body) if isinstance(body, str) else body
        result["requestBody"] = {"required": True, "content": _json(schema)}
    return result


def _answer(status: int, text: str, schema: str) -> dict:
    return {str(status): {"description": text, "content": _json(ref(schema))}}


LIMIT_PARAM = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": _l("How many rows one page holds (1 to 500, default 50)."),
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}


def _paths(max_tasks: int) -> dict:
    task_id, model_id = _id("task_id"), _id("model_id")
    list_params = [
        *(_query(k, f.description, **f.extra) for k, f in TASK_FILTERS.fields.items()),
        _query("cursor", _l("next_cursor of the previous page.")),
        LIMIT_PARAM,
    ]
    task_action = {
        name: {
            "post": operation(
                f"{name}Task",
                text,
                _answer(200, _l("The task now."), "Task"),
                WRITE,
                None,
                [task_id],
                "tasks",
            )
        }
        for name, text in (
            ("cancel", _l("Cancel a task that has not finished (409 when it has).")),
            ("retry", _l("Run a failed task again (409 unless it failed).")),
            ("rerun", _l("Run a task again from the start (409 while queued or running).")),
        )
    }
    return {
        "/tasks": {
            "get": operation(
                "listTasks",
                _l("List tasks, newest first (the task list's filters; cursor pagination)."),
                _answer(200, _l("A page of tasks."), "TaskList"),
                READ,
                params=list_params,
                tag="tasks",
            ),
            "post": operation(
                "createTasks",
                _(
                    'Create one task, or up to %(count)s at once ({"tasks": [...]}): all or '
                    "nothing, one dispatch. With dry_run, only validate.",
                    count=f"{max_tasks:,}",
                ),
                {
                    "201": {
                        "description": _l("Created: the task, or for many the new ids in order."),
                        "content": _json({"oneOf": [ref("Task"), ref("TasksCreated")]}),
                    },
                    **_answer(200, _l("dry_run: all valid, nothing created."), "TasksCreated"),
                },
                WRITE,
                {"oneOf": [ref("TaskInput"), ref("TasksInput")]},
                tag="tasks",
            ),
        },
        "/tasks/{task_id}": {
            "get": operation(
                "getTask",
                _l("Get one task."),
                _answer(200, _l("The task."), "Task"),
                READ,
                params=[task_id],
                tag="tasks",
            )
        },
        **{f"/tasks/{{task_id}}/{name}": item for name, item in task_action.items()},
        "/tasks/{task_id}/runs": {
            "get": operation(
                "listTaskRuns",
                _l(
                    "The task's runs, newest first: the run under way, then every stored run (task_run)."
                ),
                _answer(200, _l("Runs, newest first."), "RunList"),
                READ,
                params=[task_id],
                tag="tasks",
            )
        },
        "/models": {
            "get": operation(
                "listModels",
                _l("List models (keys masked)."),
                _answer(200, _l("Models."), "ModelList"),
                READ,
                tag="models",
            ),
            "post": operation(
                "createModel",
                _l("Create a model (admins), with the model form's rules."),
                _answer(201, _l("The new model, key masked."), "Model"),
                WRITE,
                "ModelInput",
                tag="models",
            ),
        },
        "/models/{model_id}": {
            "get": operation(
                "getModel",
                _l("Get one model."),
                _answer(200, _l("The model."), "Model"),
                READ,
                params=[model_id],
                tag="models",
            ),
            "patch": operation(
                "updateModel",
                _l("Change a model (admins); absent fields are kept."),
                _answer(200, _l("The model now."), "Model"),
                WRITE,
                "ModelUpdate",
                [model_id],
                "models",
            ),
        },
        **{
            f"/models/{{model_id}}/{name}": {
                "post": operation(
                    f"{name}Model",
                    text,
                    _answer(200, _l("The model now."), "Model"),
                    WRITE,
                    params=[model_id],
                    tag="models",
                )
            }
            for name, text in (
                ("disable", _l("Disable a model (admins).")),
                ("enable", _l("Enable a model (admins).")),
            )
        },
        "/models/{model_id}/test": {
            "post": operation(
                "testModel",
                _l("Queue a connection test (admins); the result lands in last_test_*."),
                _answer(202, _l("Queued."), "ModelTestQueued"),
                WRITE,
                params=[model_id],
                tag="models",
            )
        },
        "/downloads": {
            "post": operation(
                "createDownload",
                _l("Export tasks (ticked ids, or the task list's filters) to the Download Center."),
                _answer(202, _l("The PENDING download; poll it."), "Download"),
                WRITE,
                "ExportInput",
                tag="downloads",
            )
        },
        "/downloads/{download_id}": {
            "get": operation(
                "getDownload",
                _l("Get a download row."),
                _answer(200, _l("The download."), "Download"),
                READ,
                params=[_id("download_id")],
                tag="downloads",
            )
        },
        "/downloads/{download_id}/file": {
            "get": operation(
                "getDownloadFile",
                _l("Fetch the finished file (ETag, Range supported)."),
                {
                    "200": {
                        "description": _l("The file."),
                        "content": {
                            "application/octet-stream": {"schema": {}},
                            "text/csv": {"schema": {}},
                        },
                    }
                },
                (*READ, 409, 410),
                params=[_id("download_id")],
                tag="downloads",
            )
        },
        "/bulk-operations/{operation_id}": {
            "get": operation(
                "getBulkOperation",
                _l("Get a bulk operation with its counts."),
                _answer(200, _l("The operation."), "BulkOperation"),
                READ,
                params=[_id("operation_id")],
                tag="bulk operations",
            )
        },
        **_batch_paths(),
    }


def _batch_paths() -> dict:
    batch_id = _id("batch_id")
    page = [
        _query("status", _l("One batch status or several, comma-separated (e.g. IN_PROGRESS).")),
        _query("cursor", _l("next_cursor of the previous page.")),
        LIMIT_PARAM,
    ]
    actions = {
        "cancel": _l("Cancel a batch in progress (409 otherwise); finished results are kept."),
        "retry": _l("Run the batch's failed lines again."),
    }
    return {
        "/batches": {
            "get": operation(
                "listBatches",
                _l("List batches (uploaded files of prompts), newest first, with their counts."),
                _answer(200, _l("A page of batches."), "BatchList"),
                READ,
                params=page,
                tag="batches",
            )
        },
        "/batches/{batch_id}": {
            "get": operation(
                "getBatch",
                _l("Get a batch with its counts."),
                _answer(200, _l("The batch."), "Batch"),
                READ,
                params=[batch_id],
                tag="batches",
            )
        },
        **{
            f"/batches/{{batch_id}}/{name}": {
                "post": operation(
                    f"{name}Batch",
                    text,
                    _answer(200, _l("The batch now."), "Batch"),
                    WRITE,
                    params=[batch_id],
                    tag="batches",
                )
            }
            for name, text in actions.items()
        },
    }


def _plain(value):
    """Return ``value`` with every lazy text rendered (in the current language) as a str."""
    if isinstance(value, LazyString):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@lru_cache(maxsize=8)
def _document(max_tasks: int, rate: int, locale: str) -> dict:
    """Build the document once per settings and language (its prose is translated)."""
    with force_locale(locale):
        return _plain(_build(max_tasks, rate))


def _build(max_tasks: int, rate: int) -> dict:
    schemas = dict(SCHEMAS)
    for shape in INPUTS:
        schemas[shape.name] = to_openapi(shape)
    schemas["TasksInput"]["properties"]["tasks"]["maxItems"] = max_tasks
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmadmin API",
            "version": __version__,
            "description": _(
                "Personal API tokens (admin → API tokens, or `flask --app app create-token "
                "EMAIL`) go in `Authorization: Bearer lla_…`; browser sessions are refused. "
                "Each token may make %(rate)s requests per minute (429 with Retry-After past "
                'it). Errors: `{"error": {"code", "message", "field"}}`. '
                "The same tokens open the OpenAI-compatible gateway at `/v1` "
                "(`/v1/models`, `/v1/chat/completions`, `/v1/files`, `/v1/batches`).",
                rate=rate,
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"token": []}],
        "paths": _paths(max_tasks),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }


def document(locale: str | None = None) -> dict:
    """Return the OpenAPI document for this app's settings, its prose in ``locale``.

    ``locale`` defaults to the request's language (the person's, else the browser's).
    """
    config = current_app.config
    locale = locale or str(get_locale() or config["DEFAULT_LOCALE"])
    return _document(config["API_MAX_TASKS_PER_REQUEST"], config["API_RATE_PER_MINUTE"], locale)
