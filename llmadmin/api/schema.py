"""Request and response shapes as data: one description validates input and feeds OpenAPI.

``Obj`` describes a JSON object (its fields, which are required, no others allowed);
``parse`` checks a decoded body against it and names the exact field at fault
(``tasks[3].prompt``); ``to_openapi`` turns the same description into a JSON Schema.
Rules about values (prompt size, URL policy, number ranges) stay in the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from llmadmin.errors import ValidationError

JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class F:
    """One field: its JSON type, whether it may be null, and what it means."""

    type: str
    description: str = ""
    required: bool = False
    nullable: bool = False
    items: Any = None  # for arrays: an F or an Obj
    obj: Any = None  # for objects: an Obj (None: any object)
    enum: tuple | None = None
    max_items: int | None = None
    extra: dict = field(default_factory=dict)  # more JSON Schema keywords (format, minimum…)
    # The document's schema as is, for a value of more than one shape (string or parts);
    # ``type`` is then only what ``parse`` checks, and the service checks the rest.
    schema: dict | None = None


@dataclass(frozen=True)
class Obj:
    name: str
    fields: dict[str, F]
    description: str = ""


def _kind_ok(kind: str, value) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, JSON_TYPES[kind])


def parse(value, spec: Obj, path: str = "") -> dict:
    """Return ``value`` if it is an object matching ``spec``, else raise ValidationError."""
    where = path or "body"
    if not isinstance(value, dict):
        raise ValidationError(
            _("%(where)s must be a JSON object.", where=where), field=path or None
        )
    for key in value:
        if key not in spec.fields:
            allowed = ", ".join(spec.fields)
            raise ValidationError(
                _("Unknown field %(name)r (allowed: %(allowed)s).", name=key, allowed=allowed),
                field=_join(path, key),
            )
    for key, f in spec.fields.items():
        if key not in value:
            if f.required:
                raise ValidationError(_("%(name)s is required.", name=key), field=_join(path, key))
            continue
        check_value(value[key], f, _join(path, key))
    return value


def check_value(value, f: F, path: str) -> None:
    """Check one value against its field description."""
    if value is None:
        if f.nullable:
            return
        raise ValidationError(_("%(name)s must not be null.", name=path), field=path)
    if not _kind_ok(f.type, value):
        raise ValidationError(
            _("%(name)s must be of type %(type)s.", name=path, type=f.type), field=path
        )
    if f.enum is not None and value not in f.enum:
        raise ValidationError(
            _(
                "%(name)s must be one of %(allowed)s.",
                name=path,
                allowed=", ".join(map(str, f.enum)),
            ),
            field=path,
        )
    if f.type == "string" and "maxLength" in f.extra and len(value) > f.extra["maxLength"]:
        raise ValidationError(
            _("%(name)s is longer than %(n)s characters.", name=path, n=f.extra["maxLength"]), path
        )
    if f.type in ("integer", "number"):
        if "minimum" in f.extra and value < f.extra["minimum"]:
            raise ValidationError(
                _("%(name)s must be at least %(n)s.", name=path, n=f.extra["minimum"]), field=path
            )
        if "maximum" in f.extra and value > f.extra["maximum"]:
            raise ValidationError(
                _("%(name)s must be at most %(n)s.", name=path, n=f.extra["maximum"]), field=path
            )
    if f.type == "object" and f.obj is not None:
        parse(value, f.obj, path)
    if f.type == "array" and f.items is not None and not isinstance(f.items, Obj):
        for i, item in enumerate(value):
            check_value(item, f.items, f"{path}[{i}]")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- to OpenAPI ------------------------------------------------------------------------------


def field_schema(f: F) -> dict:
    """Return the JSON Schema of one field."""
    if f.schema is not None:
        schema: dict = dict(f.schema)
    elif f.type == "object" and f.obj is not None:
        schema = ref(f.obj.name)
    elif f.type == "array":
        items = ref(f.items.name) if isinstance(f.items, Obj) else field_schema(f.items)
        schema = {"type": "array", "items": items}
        if f.max_items is not None:
            schema["maxItems"] = f.max_items
    else:
        schema = {"type": f.type, **f.extra}
        if f.enum is not None:
            schema["enum"] = list(f.enum)
    if f.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]} if "$ref" in schema else _or_null(schema)
    if f.description:
        schema = {**schema, "description": f.description}
    return schema


def _or_null(schema: dict) -> dict:
    schema = dict(schema)
    schema["type"] = [schema["type"], "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def to_openapi(spec: Obj, *, closed: bool = True) -> dict:
    """Return the JSON Schema of an object description (closed: no other fields allowed)."""
    schema: dict = {
        "type": "object",
        "properties": {key: field_schema(f) for key, f in spec.fields.items()},
    }
    required = [key for key, f in spec.fields.items() if f.required]
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    if spec.description:
        schema["description"] = spec.description
    return schema


def ref(name: str) -> dict:
    """Return a reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}
