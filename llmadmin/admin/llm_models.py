"""The LLM Models panel: endpoints, masked keys, limits, connection tests."""

from __future__ import annotations

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

ADMIN_ONLY_VIEWS = {"create_view", "edit_view", "delete_view", "action_view", "ajax_update"}


def _api_key(view, context, model, name):
    return model_service.masked_key(model)


def _name_with_label(view, context, model, name):
    label = (
        Markup(' <span class="badge badge-warning">{}</span>').format(_("SIMULATED"))
        if model.simulated
        else ""
    )
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


def _number(label, minimum, maximum, optional=False):
    first = Optional() if optional else InputRequired(_l("%(field)s is required.", field=label))
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
        "temperature": _number(_l("Temperature"), 0, 2),
        "max_tokens": _number(_l("Max tokens"), 1, 1_000_000),
        "timeout_seconds": _number(_l("Timeout"), 1, 3600),
        "max_concurrency": {
            **_number(_l("Max concurrent requests"), 1, 1024),
            "description": _l("Shared by all workers on all machines."),
        },
        "rpm_limit": {
            **_number(_l("Requests per minute"), 0, 1_000_000),
            "description": _l("Shared by all workers; 0 means no limit."),
        },
        "max_attempts": _number(_l("Max attempts"), 1, 20),
        "breaker_threshold": _number(_l("Breaker threshold"), 1, 1000),
        "breaker_cooldown_seconds": _number(_l("Breaker cooldown"), 1, 86400),
        "price_input_per_1k": _number(_l("Input price"), 0, 10_000, optional=True),
        "price_output_per_1k": _number(_l("Output price"), 0, 10_000, optional=True),
        "stream": {
            "description": _l("Stream answers (SSE): the task page shows the answer growing.")
        },
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

    def get_list_row_actions(self):
        actions = super().get_list_row_actions()
        return [*actions, TEST_ROW_ACTION] if is_admin() else actions

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
        form._obj = obj  # the stored URL, for the key-destination check
        form._old_url = obj.base_url if obj is not None else None  # before the form changes it
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
        model_service.note_saved_changes(
            model, form.new_api_key.data, getattr(form, "_old_url", None)
        )

    def delete_model(self, model):
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
    def action_delete(self, ids):
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
    def action_test(self, ids):
        n = self.run_ticked("test", parse_ids(ids))
        self.flash_ticked(
            _(
                "Connection test queued for %(count)s model(s); refresh in a moment to see "
                "the result.",
                count=n,
            )
        )

    @action("enable", _l("Enable"), None)
    def action_enable(self, ids):
        count = self.run_ticked("enable", parse_ids(ids))
        self.flash_ticked(_("%(count)s model(s) enabled.", count=count))

    @action(
        "disable", _l("Disable"), _l("Disable the selected models? Their queued tasks will fail.")
    )
    def action_disable(self, ids):
        count = self.run_ticked("disable", parse_ids(ids))
        self.flash_ticked(_("%(count)s model(s) disabled.", count=count))
