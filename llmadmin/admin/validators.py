"""WTForms validators that reuse the services' checks, so forms and services agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import abort, current_app
from wtforms.validators import StopValidation
from wtforms.validators import ValidationError as FormError

from llmadmin.emails import normalize_email
from llmadmin.errors import ValidationError
from llmadmin.services.llm_models import validate_base_url
from llmadmin.services.tasks import clean_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from wtforms import Field, Form


def text_field(
    label: str, *, required: bool, max_chars: int | None = None, prompt_limit: bool = False
) -> Callable[[Form, Field], None]:
    """Validate text like the services do (NUL bytes, surrogates, size)."""

    def check(form: Form, field: Field) -> None:
        """Raise a form error when the service refuses the text."""
        limit = current_app.config["MAX_PROMPT_CHARS"] if prompt_limit else max_chars
        try:
            clean_text(field.data, label, required=required, max_chars=limit)
        except ValidationError as exc:
            if isinstance(field.data, str) and "\x00" in field.data:
                # Stop the chain: later validators (Flask-Admin's Unique) would query the
                # database with it, and PostgreSQL refuses a NUL byte even in a lookup.
                raise StopValidation(str(exc)) from exc
            raise FormError(str(exc)) from exc

    return check


def email_address(form: Form, field: Field) -> None:
    """Validate an email address with the one rule (``llmadmin.emails``) and store it normalized."""
    if not field.data:
        return
    try:
        field.data = normalize_email(field.data)
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


def base_url(form: Form, field: Field) -> None:
    """Validate a provider base URL."""

    try:
        field.data = validate_base_url(field.data)
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


# Ids are 32-bit integer columns on every database we support.
MAX_ID = 2**31 - 1


def parse_id(value: object) -> int:
    """Return a row id from the URL or a form, or abort with 404 (never a database error)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        abort(404)
    if not 0 < number <= MAX_ID:
        abort(404)
    return number


def parse_ids(values: Iterable[object]) -> list[int]:
    """Return the row ids posted by a list action, or abort with 404."""
    return [parse_id(v) for v in values]
