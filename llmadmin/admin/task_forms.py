"""Form fields of the Tasks panel: call parameters, the duplicate form and the re-run form."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired
from wtforms.validators import ValidationError as FormError

from llmadmin.errors import ValidationError
from llmadmin.services.task_params import MAX_TOKENS_LIMIT, PARAM_FIELDS, clean_param

if TYPE_CHECKING:
    from collections.abc import Callable

    from flask_babel import LazyString
    from wtforms import Field, Form

DESCRIPTIONS = {
    "temperature": _l("0 to 2."),
    "max_tokens": _l("1 to %(max)s.", max=format(MAX_TOKENS_LIMIT, ",")),
    "top_p": _l("0 to 1."),
    "stop": _l("Up to 4 sequences, one per line (or a JSON list)."),
    "seed": _l("A whole number, for repeatable sampling where the model supports it."),
    "response_format": _l('"text", "json_object" (JSON mode) or a JSON schema object.'),
    "frequency_penalty": _l("-2 to 2: above 0 makes repeating words less likely."),
    "presence_penalty": _l("-2 to 2: above 0 makes new topics more likely."),
}
TASK_DEFAULTS = {
    "temperature": _l("Empty: the model's setting."),
    "max_tokens": _l("Empty: the model's setting."),
}
NOT_SENT = _l("Empty: not sent.")


def param_check(name: str) -> Callable[[Form, Field], None]:
    """Validate one parameter like the services do; the message shows next to the field."""

    def check(form: Form, field: Field) -> None:
        """Raise a form error when the service refuses the value."""
        try:
            clean_param(name, field.data)
        except ValidationError as exc:
            raise FormError(str(exc)) from exc

    return check


def param_fields(empty_means: str | LazyString | None = None) -> dict:
    """The parameter fields; ``empty_means`` says what an empty field does (task form: None)."""
    fields = {}
    for name, label in PARAM_FIELDS.items():
        empty = (
            _l("Empty: %(means)s", means=empty_means)
            if empty_means
            else TASK_DEFAULTS.get(name, NOT_SENT)
        )
        text = _l("%(range)s %(empty)s", range=DESCRIPTIONS[name], empty=empty)
        kind = TextAreaField if name in ("stop", "response_format") else StringField
        fields[name] = kind(label, validators=[param_check(name)], description=text)
    return fields


def params_from(form: Form) -> dict:
    """The cleaned parameters of a validated form that has the parameter fields."""
    return {name: clean_param(name, form[name].data) for name in PARAM_FIELDS}


def overrides_from(form: Form) -> dict:
    """Only the parameters a person filled in (an override form: empty keeps each task's own)."""
    return {k: v for k, v in params_from(form).items() if v is not None}


def new_submission_key() -> str:
    """Return a fresh one-time token that makes a form's second post a no-op."""
    return uuid.uuid4().hex


_KEEP = _l("keep each task's own.")

DuplicateForm = type(
    "DuplicateForm",
    (FlaskForm,),
    {
        "model_id": SelectField(
            _l("Duplicate to model"), coerce=int, validators=[DataRequired(_l("Choose a model."))]
        ),
        "submission_key": HiddenField(default=new_submission_key),
        **param_fields(_KEEP),
    },
)

RerunForm = type("RerunForm", (FlaskForm,), param_fields(_KEEP))
