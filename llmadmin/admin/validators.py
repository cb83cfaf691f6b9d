"""WTForms validators that reuse the services' checks, so forms and services agree."""

from __future__ import annotations

from flask import abort, current_app
from wtforms.validators import ValidationError as FormError

from llmadmin.emails import normalize_email
from llmadmin.errors import ValidationError
from llmadmin.services.llm_models import validate_base_url
from llmadmin.services.tasks import clean_text


def text_field(
    label: str, *, required: bool, max_chars: int | None = None, prompt_limit: bool = False
):
    """Validate text like the services do (NUL bytes, surrogates, size)."""

    def check(form, field):
        limit = current_app.config["MAX_PROMPT_CHARS"] if prompt_limit else max_chars
        try:
            clean_text(field.data, label, required=required, max_chars=limit)
        except ValidationError as exc:
            raise FormError(str(exc)) from exc

    return check


def email_address(form, field):
    """Validate an email address with the one rule (``llmadmin.emails``) and store it normalized."""
    if not field.data:
        return
    try:
        field.data = normalize_email(field.data)
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


def base_url(form, field):
    """Validate a provider base URL."""

    try:
        field.data = validate_base_url(field.data)
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


# Ids are 32-bit integer columns on every database we support.
MAX_ID = 2**31 - 1


def parse_id(value) -> int:
    """Return a row id from the URL or a form, or abort with 404 (never a database error)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        abort(404)
    if not 0 < number <= MAX_ID:
        abort(404)
    return number


def parse_ids(values) -> list[int]:
    """Return the row ids posted by a list action, or abort with 404."""
    return [parse_id(v) for v in values]
