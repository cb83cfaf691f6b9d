"""The request bodies the API accepts, described once (validation and OpenAPI use them)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from llmadmin.api.schema import F, Obj
from llmadmin.services import llm_models as model_service

ID_RANGE = {"minimum": 1, "maximum": 2**31 - 1}  # ids are 32-bit columns
TEXT_PART = {
    "type": "object",
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
    "required": ["type", "text"],
}
CHAT_TURN = Obj(
    "ChatTurn",
    {
        "role": F("string", _l("Who said it."), required=True, enum=("user", "assistant")),
        "content": F(
            "string",
            _l("The text, or an array of text parts (joined)."),
            required=True,
            schema={
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": TEXT_PART, "minItems": 1},
                ]
            },
        ),
    },
    _l("One earlier message of a conversation (tool messages and tool calls are refused)."),
)
TASK_INPUT = Obj(
    "TaskInput",
    {
        "prompt": F("string", _l("The prompt sent to the model."), required=True),
        "model": F("string", _l("The model's name (unique); or give model_id.")),
        "model_id": F("integer", _l("The model's id; or give model."), extra=ID_RANGE),
        "name": F("string", _l("A label; defaults to the prompt's first line."), nullable=True),
        "system_prompt": F(
            "string", _l("Sent before the prompt as the system message."), nullable=True
        ),
        "messages": F(
            "array",
            _l(
                "The conversation's earlier user and assistant messages, in order: sent after "
                "the system prompt and before the prompt (the last user message)."
            ),
            nullable=True,
            items=CHAT_TURN,
            max_items=1000,
        ),
        "parameters": F(
            "object",
            _l(
                "Per-task call parameters: temperature, max_tokens, top_p, stop, seed, "
                "response_format, frequency_penalty, presence_penalty (the task form's rules); "
                "others are refused."
            ),
            nullable=True,
        ),
    },
    _l("One task. Give `model` or `model_id`."),
)

TASKS_INPUT = Obj(
    "TasksInput",
    {
        "tasks": F(
            "array", _l("The tasks to create, all or none."), required=True, items=TASK_INPUT
        ),
        "dry_run": F("boolean", _l("Only validate: report what is wrong and create nothing.")),
    },
    _l("Many tasks at once (up to API_MAX_TASKS_PER_REQUEST, default 10,000)."),
)

TASK_FILTERS = Obj(
    "TaskFilters",
    {
        "status": F(
            "string", _l("One status or several, comma-separated (e.g. FAILURE,CANCELED).")
        ),
        "model": F("string", _l("Model name.")),
        "batch": F("string", _l("A batch's id: its tasks only."), extra={"pattern": "^[0-9]+$"}),
        "creator": F("string", _l("Creator's email (with @) or name.")),
        "created_after": F("string", _l("ISO 8601 time (UTC)."), extra={"format": "date-time"}),
        "created_before": F("string", _l("ISO 8601 time (UTC)."), extra={"format": "date-time"}),
        "search": F("string", _l("Words that must each appear in the name or the prompt.")),
    },
    _l("The task list's filters; the same for listing, exports and bulk operations."),
)

EXPORT_INPUT = Obj(
    "ExportInput",
    {
        "format": F("string", _l("File format."), required=True, enum=("csv", "xlsx", "zip")),
        "ids": F(
            "array",
            _l("Export exactly these tasks (else all tasks matching the filters)."),
            items=F("integer", extra=ID_RANGE),
            max_items=10_000,
        ),
        "filters": F("object", _l("Which tasks to export."), obj=TASK_FILTERS),
    },
    _l("An export of tasks to the Download Center (zip: CSV plus one file per prompt/output)."),
)


def _model_fields() -> dict[str, F]:
    fields = {
        "name": F("string", _l("Display name, unique among models."), extra={"maxLength": 120}),
        "base_url": F(
            "string", _l("OpenAI-compatible API root, e.g. https://api.deepseek.com/v1.")
        ),
        "model_name": F("string", _l("As the provider knows it."), extra={"maxLength": 200}),
        "api_key": F("string", _l("Stored encrypted, never shown again."), nullable=True),
        "keep_key_for_host": F(
            "string",
            _l(
                "When base_url moves to a new scheme/host/port without a new api_key: the new "
                "host, to confirm sending the stored key there."
            ),
            nullable=True,
        ),
        "maintainer_id": F(
            "integer", _l("Person maintaining the model."), nullable=True, extra=ID_RANGE
        ),
        "enabled": F("boolean", _l("Disabled models run nothing.")),
        "stream": F("boolean", _l("Stream answers (SSE).")),
    }
    for key, (label, minimum, maximum, required) in model_service.NUMBER_FIELDS.items():
        kind = "integer" if key in model_service.INTEGER_FIELDS else "number"
        fields[key] = F(
            kind,
            # the label is the model form's, translated by its catalogue entry
            _l(
                "%(label)s, %(minimum)s–%(maximum)s.",
                label=_l(label),
                minimum=minimum,
                maximum=maximum,
            ),
            nullable=not required,
            extra={"minimum": minimum, "maximum": maximum},
        )
    return fields


MODEL_INPUT = Obj(
    "ModelInput",
    {
        **{
            k: F(f.type, f.description, True, f.nullable, extra=f.extra)
            if k in ("name", "base_url", "model_name")
            else f
            for k, f in _model_fields().items()
        }
    },
    _l("A new model: the model form's fields."),
)
MODEL_UPDATE = Obj("ModelUpdate", _model_fields(), _l("Fields to change; absent fields are kept."))
