"""The People panel (admins only): staff and their login accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import flash
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import PasswordField, SelectField
from wtforms.validators import DataRequired, Length, Optional, Regexp
from wtforms.validators import ValidationError as FormError

from llmadmin.admin import export_actions, formatters
from llmadmin.admin.base import ProtectedView
from llmadmin.admin.validators import email_address, parse_id, parse_ids, text_field
from llmadmin.errors import ValidationError
from llmadmin.models.person import ROLES
from llmadmin.services import people as people_service
from llmadmin.services import sessions

if TYPE_CHECKING:
    from wtforms import Field, Form

    from llmadmin.models import Person


def _strip(value: Any) -> Any:
    """Trim surrounding whitespace from text; leave other values alone."""
    return value.strip() if isinstance(value, str) else value


def _unique_email(form: Form, field: Field) -> None:
    """Refuse an email another person already uses."""
    if field.data:
        current = getattr(form, "_obj", None)
        if people_service.email_taken(field.data, exclude_id=getattr(current, "id", None)):
            raise FormError(_("Another person already uses this email."))


def _password_rules(form: Form, field: Field) -> None:
    """Check a new password with the services' rules."""
    if field.data:
        try:
            people_service.validate_password(field.data)
        except ValidationError as exc:
            raise FormError(str(exc)) from exc


class PersonView(export_actions.ExportActionsMixin, ProtectedView):
    """Manage staff and their login accounts (admins only)."""

    admin_only = True
    can_export = False
    column_list = ("id", "name", "email", "phone", "role", "active", "otp_required", "created_at")
    phone_columns = ("name", "email", "role")
    column_searchable_list = ("name", "email", "phone")
    column_filters = ("active", "role", "otp_required", "created_at")
    column_sortable_list = ("id", "name", "email", "role", "active", "created_at")
    column_default_sort = ("id", True)
    column_details_exclude_list = ("password_hash",)
    column_labels = {
        "id": _l("ID"),
        "name": _l("Name"),
        "email": _l("Email"),
        "phone": _l("Phone"),
        "role": _l("Role"),
        "active": _l("Active"),
        "otp_required": _l("One-time code at sign-in"),
        "created_at": _l("Created at"),
        "locale": _l("Language"),
        "timezone": _l("Time zone"),
    }
    column_formatters = {
        "active": formatters.yes_no_badge,
        "otp_required": formatters.yes_no_badge,
        "role": formatters.role_label,
        "email": formatters.email,
    }
    form_columns = ("name", "email", "phone", "active", "role", "otp_required", "new_password")
    form_extra_fields = {
        "new_password": PasswordField(
            _l("Password"),
            validators=[Optional(), _password_rules],
            description=_l(
                "Leave empty to keep the current password (or to create a person who cannot "
                "log in)."
            ),
        )
    }
    form_overrides = {"role": SelectField}
    form_args = {
        "name": {
            "validators": [
                DataRequired(_l("The name is required.")),
                text_field(_l("Name"), required=True, max_chars=120),
            ]
        },
        "email": {
            "filters": [_strip],
            "validators": [
                Optional(),
                email_address,
                Length(max=255),
                _unique_email,
            ],
            "description": _l("Also the login name. Must be unique."),
        },
        "phone": {
            "validators": [
                Optional(),
                Regexp(r"^[0-9+() .\-]{3,40}$", message=_l("Digits, spaces and + ( ) - only.")),
            ]
        },
        "role": {
            "choices": [(r, formatters.ROLE_LABELS[r]) for r in ROLES],
            "description": _l(
                "Administrator: manages people and models and sees everything; member: own "
                "tasks and downloads."
            ),
        },
    }

    def get_one(self, id: Any) -> Person:
        """Load one person by a validated id (404 for an id that cannot exist)."""
        return super().get_one(str(parse_id(id)))

    def edit_form(self, obj: Person | None = None) -> Form:
        """Build the edit form and keep the row on it for the unique-email check."""
        form = super().edit_form(obj)
        form._obj = obj
        return form

    def on_model_change(self, form: Form, model: Person, is_created: bool) -> None:
        """Set the password when a new one was typed."""
        if form.new_password.data:
            model.set_password(form.new_password.data)

    def delete_model(self, model: Person) -> bool:
        """Delete a person (never yourself), keeping what they created."""
        if model.id == current_user.id:
            flash(_("You cannot delete your own account."), "error")
            return False
        counts = people_service.delete_person(model.id)
        note = people_service.describe_kept(counts)
        if note:
            flash(note, "info")
        return True

    @action(
        "sign_out",
        _l("Sign out everywhere"),
        _l(
            "End every session of the selected people, remembered ones too? "
            "They must sign in again."
        ),
    )
    def action_sign_out(self, ids: list[str]) -> None:
        """End every session of the ticked people, except your own current one."""
        ended = sessions.end_all_for(parse_ids(ids), keep_token=current_user.login_token)
        flash(
            _(
                "%(count)s session(s) ended; the selected people must sign in again "
                "(your own current session is kept).",
                count=ended,
            ),
            "success",
        )

    @action(
        "delete",
        _l("Delete"),
        _l("Delete the selected people? Their tasks, models and downloads are kept."),
    )
    def action_delete(self, ids: list[str]) -> None:
        """Delete the ticked people, leaving out your own account."""
        ids = parse_ids(ids)
        if current_user.id in ids:
            flash(_("You cannot delete your own account; it was left out."), "error")
        others = [i for i in ids if i != current_user.id]
        deleted, kept = self.run_ticked("delete", others) if others else (0, {})
        message = _("%(count)s person(s) deleted.", count=deleted)
        if people_service.describe_kept(kept):
            message += " " + people_service.describe_kept(kept)
        if others:
            self.flash_ticked(message)
        else:
            flash(message, "success")
