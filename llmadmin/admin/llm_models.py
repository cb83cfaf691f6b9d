"""The LLM Models panel: endpoints, masked keys, limits, connection tests."""

from __future__ import annotations

from flask import abort, flash
from flask_admin.actions import action
from markupsafe import Markup
from sqlalchemy import inspect
from wtforms import FloatField, PasswordField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.validators import ValidationError as FormError

from llmadmin.admin import export_actions, formatters
from llmadmin.admin.base import ProtectedView
from llmadmin.admin.validators import base_url, parse_id, parse_ids, text_field
from llmadmin.auth import is_admin
from llmadmin.errors import ValidationError
from llmadmin.services import audit
from llmadmin.services import llm_models as model_service

ADMIN_ONLY_VIEWS = {"create_view", "edit_view", "delete_view", "action_view", "ajax_update"}


def _api_key(view, context, model, name):
    return model_service.masked_key(model)


def _name_with_label(view, context, model, name):
    label = Markup(' <span class="badge badge-warning">SIMULATED</span>') if model.simulated else ""
    return Markup("{}{}").format(model.name, label)


def _key_destination(form, field):
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


def _number(field):
    """The form's validators for a number field, from the service's rules (the API uses them too)."""
    label, minimum, maximum, required = model_service.NUMBER_FIELDS[field]
    first = InputRequired(f"{label} is required.") if required else Optional()
    return {
        "validators": [
            first,
            NumberRange(
                min=minimum,
                max=maximum,
                message=f"{label} must be between {minimum} and {maximum}.",
            ),
        ]
    }


def _unique_name(form, field):
    """Model names are unique: the API and the gateway name models by them."""
    model = getattr(form, "_obj", None)
    try:
        model_service.check_name_free((field.data or "").strip(), model.id if model else None)
    except ValidationError as exc:
        raise FormError(str(exc)) from exc


class LLMModelView(export_actions.ExportActionsMixin, ProtectedView):
    """Admins manage models; members may look at them (keys are always masked)."""

    can_export = False
    column_list = (
        "id",
        "name",
        "model_name",
        "base_url",
        "api_key",
        "enabled",
        "stream",
        "max_concurrency",
        "rpm_limit",
        "maintainer",
        "last_test",
        "updated_at",
    )
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
        "stream": formatters.yes_no_badge,
        "last_test": formatters.connection_test,
    }
    column_formatters_detail = column_formatters
    column_labels = {
        "model_name": "Model name at provider",
        "base_url": "Base URL",
        "api_key": "API key",
        "rpm_limit": "Requests/min",
        "max_concurrency": "Max concurrent",
        "timeout_seconds": "Timeout (s)",
        "price_input_per_1k": "Price per 1K input tokens",
        "price_output_per_1k": "Price per 1K output tokens",
        "last_test": "Last connection test",
        "breaker_cooldown_seconds": "Breaker cooldown (s)",
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
            "API key",
            validators=[Optional(), text_field("API key", required=False, max_chars=500)],
            description="Stored encrypted and never shown again. Leave empty to keep the current key.",
        ),
        "keep_key_for_host": StringField(
            "Keep the stored key for the new host",
            # No Optional(): the check must also run (and refuse) when this field is empty.
            validators=[Length(max=300), _key_destination],
            description="Only needed when you change the base URL's scheme, host or port and "
            "leave the API key empty: type the new host (e.g. api.example.com or "
            "10.0.0.5:8000) to send the stored key there. Otherwise type the key again.",
        ),
    }
    form_args = {
        "name": {
            "validators": [
                DataRequired("The display name is required."),
                text_field("Name", required=True, max_chars=120),
                _unique_name,
            ]
        },
        "base_url": {
            "validators": [DataRequired("The base URL is required."), base_url],
            "description": "OpenAI-compatible API root, e.g. https://api.deepseek.com/v1 or http://localhost:11434/v1",
        },
        "model_name": {
            "validators": [
                DataRequired("The model name is required."),
                text_field("Model name", required=True, max_chars=200),
            ],
            "description": "As the provider knows it, e.g. deepseek-chat, gpt-4o-mini, qwen-plus.",
        },
        "temperature": _number("temperature"),
        "max_tokens": _number("max_tokens"),
        "timeout_seconds": _number("timeout_seconds"),
        "max_concurrency": {
            **_number("max_concurrency"),
            "description": "Shared by all workers on all machines.",
        },
        "rpm_limit": {
            **_number("rpm_limit"),
            "description": "Shared by all workers; 0 means no limit.",
        },
        "max_attempts": _number("max_attempts"),
        "breaker_threshold": _number("breaker_threshold"),
        "breaker_cooldown_seconds": _number("breaker_cooldown_seconds"),
        "price_input_per_1k": _number("price_input_per_1k"),
        "price_output_per_1k": _number("price_output_per_1k"),
        "stream": {"description": "Stream answers (SSE): the task page shows the answer growing."},
    }

    def _handle_view(self, name, **kwargs):
        response = super()._handle_view(name, **kwargs)
        if response is None and name in ADMIN_ONLY_VIEWS and not is_admin():
            # Members may look; a write attempt is refused outright rather than
            # redirected back to the list as if it had worked.
            abort(403)
        return response

    def get_one(self, id):
        return super().get_one(str(parse_id(id)))

    @property
    def can_create(self):
        return is_admin()

    @property
    def can_edit(self):
        return is_admin()

    @property
    def can_delete(self):
        return is_admin()

    def is_action_allowed(self, name):
        return is_admin() and super().is_action_allowed(name)

    def edit_form(self, obj=None):
        form = super().edit_form(obj)
        form._obj = obj  # the stored URL (key-destination check) and id (unique name check)
        return form

    def on_model_change(self, form, model, is_created):
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
        model_service.set_api_key(model, form.new_api_key.data)

    def delete_model(self, model):
        _deleted, kept = model_service.delete_models([model.id])
        if kept:
            flash(f"Kept {kept} task(s) that used it (now without a model).", "info")
        return True

    @action(
        "delete", "Delete", "Delete the selected models? Their tasks are kept, without a model."
    )
    def action_delete(self, ids):
        # Flask-Admin's own bulk delete compares the integer key with the posted strings,
        # which PostgreSQL refuses; the service takes parsed ids.
        deleted, kept = self.run_ticked("delete", parse_ids(ids))
        note = f" Kept {kept} task(s) that used them (now without a model)." if kept else ""
        self.flash_ticked(f"{deleted} model(s) deleted.{note}")

    @action("test", "Test connection", None)
    def action_test(self, ids):
        n = self.run_ticked("test", parse_ids(ids))
        self.flash_ticked(
            f"Connection test queued for {n} model(s); refresh in a moment to see the result."
        )

    @action("enable", "Enable", None)
    def action_enable(self, ids):
        self.flash_ticked(f"{self.run_ticked('enable', parse_ids(ids))} model(s) enabled.")

    @action("disable", "Disable", "Disable the selected models? Their queued tasks will fail.")
    def action_disable(self, ids):
        self.flash_ticked(f"{self.run_ticked('disable', parse_ids(ids))} model(s) disabled.")
