"""The LLM Models panel: endpoints, masked keys, limits, connection tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import abort, flash
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import inspect
from wtforms import FloatField, PasswordField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.validators import ValidationError as FormError

from llmadmin.admin import export_actions, formatters
from llmadmin.admin.base import ProtectedView
from llmadmin.admin.llm_model_tools import TEST_ROW_ACTION, ModelToolsMixin
from llmadmin.admin.validators import base_url, parse_id, parse_ids, text_field
from llmadmin.auth import is_admin
from llmadmin.errors import ValidationError
from llmadmin.services import audit
from llmadmin.services import llm_models as model_service

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context
    from wtforms import Field, Form

    from llmadmin.models import LLMModel

ADMIN_ONLY_VIEWS = {"create_view", "edit_view", "delete_view", "action_view", "ajax_update"}


def _api_key(view: BaseModelView, context: Context | None, model: LLMModel, name: str) -> str:
    """Show the API key masked, never in full."""
    return model_service.masked_key(model)


def _name_with_label(
    view: BaseModelView, context: Context | None, model: LLMModel, name: str
) -> Markup:
    """Show the model's name, flagged SIMULATED for the demo's simulated models."""
    label = (
        Markup(' <span class="badge badge-warning">{}</span>').format(_("SIMULATED"))
        if model.simulated
        else ""
    )
    return Markup("{}{}").format(model.name, label)


def _key_destination(form: Form, field: Field) -> None:
    """A stored key follows a changed scheme/host/port only if retyped or the new host is confirmed."""
    model = getattr(form, "_obj", None)
    if model is None or form.base_url.errors:
        return
    try:
        form._key_kept_for_new_host = model_service.check_key_destination(
            model.base_url,
            form.base_url.data,
            has_key=bool(model.api_key_encrypted),
            new_key=form.new_api_key.data,
            confirm_host=field.data,
        )
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


# The form's labels (translated); ranges and whether a value is required come from the
# service's rules, which the API uses too.
NUMBER_LABELS: dict[str, str] = {
    "temperature": _l("Temperature"),
    "max_tokens": _l("Max tokens"),
    "timeout_seconds": _l("Timeout"),
    "max_concurrency": _l("Max concurrent requests"),
    "rpm_limit": _l("Requests per minute"),
    "max_attempts": _l("Max attempts"),
    "breaker_threshold": _l("Breaker threshold"),
    "breaker_cooldown_seconds": _l("Breaker cooldown"),
    "price_input_per_1k": _l("Input price"),
    "price_output_per_1k": _l("Output price"),
}


def _number(field: str) -> dict[str, Any]:
    """Build form args for a number field from the service's rules (the API uses them too)."""
    _label, minimum, maximum, required = model_service.NUMBER_FIELDS[field]
    label = NUMBER_LABELS[field]
    first = InputRequired(_l("%(field)s is required.", field=label)) if required else Optional()
    return {
        "validators": [
            first,
            NumberRange(
                min=minimum,
                max=maximum,
                message=_l(
                    "%(field)s must be between %(min)s and %(max)s.",
                    field=label,
                    min=minimum,
                    max=maximum,
                ),
            ),
        ]
    }


def _unique_name(form: Form, field: Field) -> None:
    """Model names are unique: the API and the gateway name models by them."""
    model = getattr(form, "_obj", None)
    if "\x00" in (field.data or ""):
        return  # the text rule reports it; PostgreSQL refuses a NUL byte even in a lookup
    try:
        model_service.check_name_free((field.data or "").strip(), model.id if model else None)
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


class LLMModelView(export_actions.ExportActionsMixin, ModelToolsMixin, ProtectedView):
    """Admins manage models; members may look at them (keys are always masked)."""

    can_export = False
    create_template = "admin/llmmodel_create.html"
    phone_columns = ("name", "enabled", "last_test")
    edit_template = "admin/llmmodel_edit.html"
    column_list = (
        "id",
        "name",
        "model_name",
        "base_url",
        "api_key",
        "enabled",
        "max_concurrency",
        "rpm_limit",
        "maintainer",
        "last_test",
        "updated_at",
    )  # "stream" is on the details page and the form: the list fits 1366 px without it
    column_details_list = (
        "id",
        "name",
        "simulated",
        "model_name",
        "base_url",
        "api_key",
        "enabled",
        "stream",
        "temperature",
        "max_tokens",
        "timeout_seconds",
        "max_concurrency",
        "rpm_limit",
        "max_attempts",
        "breaker_threshold",
        "breaker_cooldown_seconds",
        "price_input_per_1k",
        "price_output_per_1k",
        "maintainer",
        "last_test",
        "created_at",
        "updated_at",
    )
    column_searchable_list = ("name", "model_name", "base_url")
    column_filters = ("enabled", "simulated", "model_name", "maintainer.name", "created_at")
    column_sortable_list = (
        "id",
        "name",
        "model_name",
        "enabled",
        "max_concurrency",
        "rpm_limit",
        "updated_at",
    )
    column_default_sort = ("id", False)
    column_formatters = {
        "api_key": _api_key,
        "name": _name_with_label,
        "enabled": formatters.yes_no_badge,
        "simulated": formatters.yes_no_badge,
        "stream": formatters.yes_no_badge,
        "last_test": formatters.connection_test,
    }
    column_formatters_detail = column_formatters
    column_labels = {
        "id": _l("ID"),
        "name": _l("Name"),
        "simulated": _l("Simulated"),
        "model_name": _l("Model name at provider"),
        "base_url": _l("Base URL"),
        "api_key": _l("API key"),
        "new_api_key": _l("API key"),
        "enabled": _l("Enabled"),
        "stream": _l("Stream"),
        "temperature": _l("Temperature"),
        "max_tokens": _l("Max tokens"),
        "rpm_limit": _l("Requests/min"),
        "max_concurrency": _l("Max concurrent"),
        "max_attempts": _l("Max attempts"),
        "timeout_seconds": _l("Timeout (s)"),
        "breaker_threshold": _l("Breaker threshold"),
        "price_input_per_1k": _l("Price per 1K input tokens"),
        "price_output_per_1k": _l("Price per 1K output tokens"),
        "maintainer": _l("Maintainer"),
        "maintainer.name": _l("Maintainer name"),
        "last_test": _l("Last connection test"),
        "breaker_cooldown_seconds": _l("Breaker cooldown (s)"),
        "created_at": _l("Created at"),
        "updated_at": _l("Updated at"),
    }
    form_columns = (
        "name",
        "base_url",
        "new_api_key",
        "keep_key_for_host",
        "model_name",
        "maintainer",
        "enabled",
        "stream",
        "temperature",
        "max_tokens",
        "timeout_seconds",
        "max_concurrency",
        "rpm_limit",
        "max_attempts",
        "breaker_threshold",
        "breaker_cooldown_seconds",
        "price_input_per_1k",
        "price_output_per_1k",
    )
    # Flask-Admin finds no converter for SQLAlchemy 2.1's Float (no longer a Numeric) and
    # silently leaves such columns out of the form; name the field type explicitly.
    form_overrides = {"temperature": FloatField, "timeout_seconds": FloatField}
    form_extra_fields = {
        "new_api_key": PasswordField(
            _l("API key"),
            validators=[Optional(), text_field(_l("API key"), required=False, max_chars=500)],
            description=_l(
                "Stored encrypted and never shown again. Leave empty to keep the current key."
            ),
        ),
        "keep_key_for_host": StringField(
            _l("Keep the stored key for the new host"),
            # No Optional(): the check must also run (and refuse) when this field is empty.
            validators=[Length(max=300), _key_destination],
            description=_l(
                "Only needed when you change the base URL's scheme, host or port and "
                "leave the API key empty: type the new host (e.g. api.example.com or "
                "10.0.0.5:8000) to send the stored key there. Otherwise type the key again."
            ),
        ),
    }
    form_args = {
        "maintainer": {"blank_text": _l("(nobody)")},
        "name": {
            "validators": [
                DataRequired(_l("The display name is required.")),
                text_field(_l("Name"), required=True, max_chars=120),
                _unique_name,
            ]
        },
        "base_url": {
            "validators": [DataRequired(_l("The base URL is required.")), base_url],
            "description": _l(
                "OpenAI-compatible API root, e.g. https://api.deepseek.com/v1 or "
                "http://localhost:11434/v1"
            ),
        },
        "model_name": {
            "validators": [
                DataRequired(_l("The model name is required.")),
                text_field(_l("Model name"), required=True, max_chars=200),
            ],
            "description": _l(
                "As the provider knows it, e.g. deepseek-chat, gpt-4o-mini, qwen-plus."
            ),
        },
        "temperature": _number("temperature"),
        "max_tokens": _number("max_tokens"),
        "timeout_seconds": _number("timeout_seconds"),
        "max_concurrency": {
            **_number("max_concurrency"),
            "description": _l("Shared by all workers on all machines."),
        },
        "rpm_limit": {
            **_number("rpm_limit"),
            "description": _l("Shared by all workers; 0 means no limit."),
        },
        "max_attempts": _number("max_attempts"),
        "breaker_threshold": _number("breaker_threshold"),
        "breaker_cooldown_seconds": _number("breaker_cooldown_seconds"),
        "price_input_per_1k": _number("price_input_per_1k"),
        "price_output_per_1k": _number("price_output_per_1k"),
        "stream": {
            "description": _l("Stream answers (SSE): the task page shows the answer growing.")
        },
    }

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        """Refuse members any write view with 403 (they may only look)."""
        response = super()._handle_view(name, **kwargs)
        if response is None and name in ADMIN_ONLY_VIEWS and not is_admin():
            # Members may look; a write attempt is refused outright rather than
            # redirected back to the list as if it had worked.
            abort(403)
        return response

    def get_one(self, id: Any) -> LLMModel:
        """Load one model by a validated id (404 for an id that cannot exist)."""
        return super().get_one(str(parse_id(id)))

    def get_list_row_actions(self):
        actions = super().get_list_row_actions()
        return [*actions, TEST_ROW_ACTION] if is_admin() else actions

    @property
    def can_create(self) -> bool:
        """Let only admins create models."""
        return is_admin()

    @property
    def can_edit(self) -> bool:
        """Let only admins edit models."""
        return is_admin()

    @property
    def can_delete(self) -> bool:
        """Let only admins delete models."""
        return is_admin()

    def is_action_allowed(self, name: str) -> bool:
        """Offer list actions to admins only."""
        return is_admin() and super().is_action_allowed(name)

    def edit_form(self, obj: LLMModel | None = None) -> Form:
        """Build the edit form and keep the row on it for the key-destination check."""
        form = super().edit_form(obj)
        form._obj = obj  # the stored URL (key-destination check) and id (unique name check)
        form._old_url = obj.base_url if obj is not None else None  # before the form changes it
        return form

    def on_model_change(self, form: Form, model: LLMModel, is_created: bool) -> None:
        """Audit a key kept for a new host and store a newly typed API key encrypted."""
        if getattr(form, "_key_kept_for_new_host", False):
            old_url = inspect(model).attrs.base_url.history.deleted
            audit.record(
                "api_key_new_host",
                "llm_model",
                model.id,
                f"Kept the stored API key for a new address: "
                f"{model_service.host_label(old_url[0]) if old_url else '?'} -> "
                f"{model_service.host_label(model.base_url)}",
                commit=False,
            )
        model_service.note_saved_changes(
            model, form.new_api_key.data, getattr(form, "_old_url", None)
        )

    def delete_model(self, model: LLMModel) -> bool:
        """Delete the model through the service, keeping its tasks without a model."""
        _deleted, kept = model_service.delete_models([model.id])
        if kept:
            flash(
                _("Kept %(count)s task(s) that used it (now without a model).", count=kept), "info"
            )
        return True

    @action(
        "delete",
        _l("Delete"),
        _l("Delete the selected models? Their tasks are kept, without a model."),
    )
    def action_delete(self, ids: list[str]) -> None:
        """Delete the ticked models; their tasks are kept without a model."""
        # Flask-Admin's own bulk delete compares the integer key with the posted strings,
        # which PostgreSQL refuses; the service takes parsed ids.
        deleted, kept = self.run_ticked("delete", parse_ids(ids))
        message = _("%(count)s model(s) deleted.", count=deleted)
        if kept:
            message += " " + _(
                "Kept %(count)s task(s) that used them (now without a model).", count=kept
            )
        self.flash_ticked(message)

    @action("test", _l("Test connection"), None)
    def action_test(self, ids: list[str]) -> None:
        """Queue a connection test of the ticked models."""
        n = self.run_ticked("test", parse_ids(ids))
        self.flash_ticked(
            _(
                "Connection test queued for %(count)s model(s); refresh in a moment to see "
                "the result.",
                count=n,
            )
        )

    @action("enable", _l("Enable"), None)
    def action_enable(self, ids: list[str]) -> None:
        """Enable the ticked models."""
        count = self.run_ticked("enable", parse_ids(ids))
        self.flash_ticked(_("%(count)s model(s) enabled.", count=count))

    @action(
        "disable", _l("Disable"), _l("Disable the selected models? Their queued tasks will fail.")
    )
    def action_disable(self, ids: list[str]) -> None:
        """Disable the ticked models (their queued tasks will fail)."""
        count = self.run_ticked("disable", parse_ids(ids))
        self.flash_ticked(_("%(count)s model(s) disabled.", count=count))
