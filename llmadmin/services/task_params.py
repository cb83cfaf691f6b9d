"""Per-task call parameters: parse, validate and store them; one set of rules for every entry point.

The task form, the CLI, duplicate-to-model and bulk re-run all hand raw values (text from a
form, numbers or lists from code) to ``clean_params``; a bad value raises ``ParamError``
naming its field, so a form can show the message next to that field. An empty value means
"the model's setting" (temperature, max_tokens) or "not sent" (the others).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask_babel import lazy_gettext as _l

from llmadmin.errors import ValidationError
from llmadmin.texts import say as _  # gettext that keeps msgid and values (texts.Said)

# Field name -> label, in the order forms and the CLI show them.
PARAM_FIELDS = {
    "temperature": _l("Temperature"),
    "max_tokens": _l("Max tokens"),
    "top_p": _l("Top p"),
    "stop": _l("Stop sequences"),
    "seed": _l("Seed"),
    "response_format": _l("Response format"),
    "frequency_penalty": _l("Frequency penalty"),
    "presence_penalty": _l("Presence penalty"),
}
MAX_TOKENS_LIMIT = 1_000_000  # the model form's limit too
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
MAX_STOP_SEQUENCES, MAX_STOP_CHARS = 4, 200
MAX_SCHEMA_CHARS = 50_000
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}


class ParamError(ValidationError):
    """A parameter value that cannot be used; ``field`` names the parameter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def clean_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Return the storable value of every parameter named in ``raw`` or raise ParamError."""
    unknown = set(raw) - set(PARAM_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown parameter(s): %(names)s.", names=", ".join(sorted(unknown)))
        )
    return {name: clean_param(name, value) for name, value in raw.items()}


def clean_param(name: str, value: Any) -> Any:
    """Return the stored form of one parameter (None when empty) or raise ParamError."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, str) and "\x00" in value:
        raise ParamError(name, _("%(label)s contains a NUL byte.", label=PARAM_FIELDS[name]))
    return _CLEANERS[name](value)


def _number(name: str, value, low: float, high: float) -> float:
    label = PARAM_FIELDS[name]
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ParamError(name, _number_message(label, low, high)) from None
    if isinstance(value, bool) or not math.isfinite(number) or not low <= number <= high:
        raise ParamError(name, _number_message(label, low, high))
    return number


def _number_message(label, low: float, high: float) -> str:
    return _(
        "%(label)s must be a number from %(low)s to %(high)s.",
        label=label,
        low=format(low, "g"),
        high=format(high, "g"),
    )


def _integer(name: str, value, low: int, high: int, wording) -> int:
    label = PARAM_FIELDS[name]
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, bool) or isinstance(text, float):
        raise ParamError(name, _("%(label)s must be %(wording)s.", label=label, wording=wording))
    try:
        number = int(text)
    except (TypeError, ValueError):
        raise ParamError(
            name, _("%(label)s must be %(wording)s.", label=label, wording=wording)
        ) from None
    if not low <= number <= high:
        raise ParamError(name, _("%(label)s must be %(wording)s.", label=label, wording=wording))
    return number


def _stop(value) -> str:
    """Stop sequences: a JSON list, or one sequence per line; stored as a JSON list."""
    if isinstance(value, str):
        text = value.strip("\r\n")
        if text.lstrip().startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ParamError(
                    "stop",
                    _('Stop sequences: the list is not valid JSON (e.g. ["END", "\\n\\n"]).'),
                ) from None
        else:
            value = [line for line in text.splitlines() if line != ""]
    if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
        raise ParamError("stop", _("Stop sequences must be text, one per line or a JSON list."))
    if any(s == "" for s in value):
        raise ParamError("stop", _("A stop sequence cannot be empty."))
    if len(value) > MAX_STOP_SEQUENCES:
        raise ParamError(
            "stop",
            _(
                "At most %(max)s stop sequences are allowed (%(count)s given).",
                max=MAX_STOP_SEQUENCES,
                count=len(value),
            ),
        )
    if any(len(s) > MAX_STOP_CHARS for s in value):
        raise ParamError(
            "stop",
            _("A stop sequence may be at most %(max)s characters.", max=MAX_STOP_CHARS),
        )
    return json.dumps(list(value), ensure_ascii=False) if value else None


def _response_format(value) -> str:
    """ "text", "json_object", a JSON schema, or OpenAI's response_format object; stored as JSON."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("text", "json_object"):
            return json.dumps({"type": text})
        if len(text) > MAX_SCHEMA_CHARS:
            raise ParamError("response_format", _("The JSON schema is too long."))
        try:
            value = json.loads(text)
        except ValueError:
            raise ParamError(
                "response_format",
                _('Response format must be "text", "json_object" or a JSON schema object.'),
            ) from None
    if not isinstance(value, dict):
        raise ParamError(
            "response_format",
            _('Response format must be "text", "json_object" or a JSON schema object.'),
        )
    kind = value.get("type")
    if kind in ("text", "json_object"):
        if set(value) != {"type"}:
            raise ParamError(
                "response_format",
                _('A "%(kind)s" response format takes no options.', kind=kind),
            )
        return json.dumps({"type": kind})
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ParamError(
                "response_format",
                _('A "json_schema" response format needs json_schema.schema.'),
            )
        name = spec.get("name", "response")
        strict = spec.get("strict")
        schema = spec["schema"]
    else:  # the schema itself
        name, strict, schema = "response", None, value
    if not isinstance(name, str) or not SCHEMA_NAME.match(name):
        raise ParamError(
            "response_format",
            _("The schema name may use letters, digits, _ and - only (at most 64)."),
        )
    if strict is not None and not isinstance(strict, bool):
        raise ParamError("response_format", _("json_schema.strict must be true or false."))
    problem = schema_problem(schema)
    if problem:
        raise ParamError(
            "response_format", _("The JSON schema is not valid: %(problem)s", problem=problem)
        )
    wrapped = {"name": name, "schema": schema, **({"strict": strict} if strict is not None else {})}
    return json.dumps({"type": "json_schema", "json_schema": wrapped}, ensure_ascii=False)


_CLEANERS = {
    "temperature": lambda v: _number("temperature", v, 0, 2),
    "top_p": lambda v: _number("top_p", v, 0, 1),
    "max_tokens": lambda v: _integer(
        "max_tokens",
        v,
        1,
        MAX_TOKENS_LIMIT,
        _l("a whole number from 1 to %(max)s", max=format(MAX_TOKENS_LIMIT, ",")),
    ),
    "seed": lambda v: _integer("seed", v, SEED_MIN, SEED_MAX, _l("a whole number (64-bit)")),
    "stop": _stop,
    "response_format": _response_format,
    "frequency_penalty": lambda v: _number("frequency_penalty", v, -2, 2),
    "presence_penalty": lambda v: _number("presence_penalty", v, -2, 2),
}


# --- JSON Schema: the structural rules of the keywords structured outputs use -------------------
# (A full meta-schema validator would be a new dependency; these are the mistakes people make.)

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "not", "additionalProperties", "contains", "if", "then", "else")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def schema_problem(schema, path: str = "#", depth: int = 0) -> str | None:
    """Return what is wrong with ``schema`` as a JSON Schema (None when nothing is)."""
    if depth > 32:
        return f"{path}: nested too deeply."
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{path}: a schema must be an object."
    problem = _keyword_problem(schema, path)
    if problem:
        return problem
    children = [(f"{path}/{k}/{n}", s) for k in _SCHEMA_MAPS for n, s in schema.get(k, {}).items()]
    children += [
        (f"{path}/{k}/{i}", s) for k in _SCHEMA_LISTS for i, s in enumerate(schema.get(k, []))
    ]
    children += [(f"{path}/{k}", schema[k]) for k in _SCHEMA_ONE if k in schema]
    for child_path, child in children:
        problem = schema_problem(child, child_path, depth + 1)
        if problem:
            return problem
    return None


def _keyword_problem(schema: dict, path: str) -> str | None:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if any(k not in JSON_TYPES for k in kinds) or (isinstance(kind, list) and not kind):
        return (
            f"{path}/type: {json.dumps(kind)} is not a JSON type ({', '.join(sorted(JSON_TYPES))})."
        )
    for key in _SCHEMA_MAPS:
        if key in schema and not isinstance(schema[key], dict):
            return f"{path}/{key} must be an object."
    for key in _SCHEMA_LISTS:
        if key in schema and (not isinstance(schema[key], list) or not schema[key]):
            return f"{path}/{key} must be a non-empty list."
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return f"{path}/required must be a list of property names."
    if len(set(required)) != len(required):
        return f"{path}/required lists a property twice."
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        return f"{path}/enum must be a non-empty list."
    for key in _COUNTS:
        value = schema.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{path}/{key} must be a whole number ≥ 0."
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        if key in schema and (
            isinstance(schema[key], bool) or not isinstance(schema[key], int | float)
        ):
            return f"{path}/{key} must be a number."
    for key in ("$ref", "pattern", "format", "title", "description"):
        if key in schema and not isinstance(schema[key], str):
            return f"{path}/{key} must be text."
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error:
            return f"{path}/pattern is not a valid regular expression."
    return None


# --- using stored parameters ------------------------------------------------------------------


def display_value(name: str, stored) -> str:
    """Turn a stored value back into the text a form shows."""
    if stored is None:
        return ""
    if name == "stop":
        values = json.loads(stored)
        return (
            "\n".join(values) if all("\n" not in s and s.strip() == s for s in values) else stored
        )
    if name == "response_format":
        data = json.loads(stored)
        if data.get("type") in ("text", "json_object"):
            return data["type"]
        return json.dumps(data, indent=2, ensure_ascii=False)
    if name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        return f"{stored:g}"
    return str(stored)


def is_json_mode(response_format: str | None) -> bool:
    """Tell whether a stored response format asks for JSON output."""
    if not response_format:
        return False
    return json.loads(response_format).get("type") in ("json_object", "json_schema")


def summary(params: str | dict | None) -> str:
    """One line naming the parameters a run used, for lists and exports."""
    if not params:
        return ""
    data = json.loads(params) if isinstance(params, str) else params
    parts = []
    for name, value in data.items():
        if name == "response_format":
            value = value.get("type") if isinstance(value, dict) else value
        parts.append(
            f"{name}={json.dumps(value, ensure_ascii=False) if not isinstance(value, int | float | str) else value}"
        )
    return ", ".join(parts)
