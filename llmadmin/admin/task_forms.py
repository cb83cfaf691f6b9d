"""Form fields of the Tasks panel: call parameters, the duplicate form and the re-run form."""

from __future__ import annotations

import uuid

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import escape
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired
from wtforms.validators import ValidationError as FormError

from llmadmin.errors import ValidationError
from llmadmin.services.task_params import MAX_TOKENS_LIMIT, PARAM_FIELDS, clean_param

DESCRIPTIONS = {
    "temperature": _l("0 to 2."),
    "max_tokens": _l("1 to %(max)s.", max=f"{MAX_TOKENS_LIMIT:,}"),
    "top_p": _l("0 to 1."),
    "stop": _l("Up to 4 sequences, one per line (or a JSON list)."),
    "seed": _l("A whole number, for repeatable sampling where the model supports it."),
    "response_format": _l('"text", "json_object" (JSON mode) or a JSON schema object.'),
}
TASK_DEFAULTS = {
    "temperature": _l("Empty: the model's setting."),
    "max_tokens": _l("Empty: the model's setting."),
}
NOT_SENT = _l("Empty: not sent.")


class _Joined:
    """Two lazy texts shown as one sentence pair, in the language of the request rendering it."""

    def __init__(self, *parts):
        self.parts = parts

    def __str__(self) -> str:
        return " ".join(str(p) for p in self.parts)

    def __html__(self) -> str:
        return escape(str(self))


def param_check(name: str):
    """Validate one parameter like the services do; the message shows next to the field."""

    def check(form, field):
        try:
            clean_param(name, field.data)
        except ValidationError as exc:
            raise FormError(str(exc)) from exc

    return check


def param_fields(empty_means: str | None = None) -> dict:
    """The six parameter fields; ``empty_means`` says what an empty field does (task form: None)."""
    fields = {}
    for name, label in PARAM_FIELDS.items():
        text = _Joined(DESCRIPTIONS[name], empty_means or TASK_DEFAULTS.get(name, NOT_SENT))
        kind = TextAreaField if name in ("stop", "response_format") else StringField
        fields[name] = kind(label, validators=[param_check(name)], description=text)
    return fields


def params_from(form) -> dict:
    """The cleaned parameters of a validated form that has the parameter fields."""
    return {name: clean_param(name, form[name].data) for name in PARAM_FIELDS}


def overrides_from(form) -> dict:
    """Only the parameters a person filled in (an override form: empty keeps each task's own)."""
    return {k: v for k, v in params_from(form).items() if v is not None}


def new_submission_key() -> str:
    return uuid.uuid4().hex


_KEEP = _l("Empty: keep each task's own.")

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
