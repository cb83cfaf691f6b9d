"""The API tokens panel: people make and revoke their own tokens; admins see and revoke all."""

from __future__ import annotations

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.actions import action
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from llmadmin.admin.base import ScopedView
from llmadmin.admin.validators import parse_ids
from llmadmin.errors import ValidationError
from llmadmin.services import api_tokens


def _status(view, context, model, name):
    return api_tokens.token_status(model)


class NewTokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired("Give the token a name."), Length(max=100)],
        description="What it is for, e.g. 'nightly import script'.",
    )
    expires_days = IntegerField(
        "Expires after (days)",
        validators=[Optional(), NumberRange(min=1, max=api_tokens.MAX_EXPIRES_DAYS)],
        description="Leave empty for a token that does not expire.",
    )


class ApiTokenView(ScopedView):
    """Tokens for the JSON API (/api/v1): shown once when made, stored only as a hash."""

    owner_column = "person_id"
    can_create = True
    can_edit = False
    can_delete = False
    can_export = False
    column_list = (
        "id",
        "person",
        "name",
        "prefix",
        "status",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    column_details_list = (*column_list, "revoked_by")
    column_default_sort = ("id", True)
    column_sortable_list = ("id", "name", "created_at", "last_used_at", "expires_at")
    column_searchable_list = ("name", "prefix")
    column_labels = {"person": "Owner", "prefix": "Starts with", "last_used_at": "Last used"}
    column_formatters = {"status": _status}
    column_formatters_detail = column_formatters

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """Make a token for the signed-in person and show it once."""
        form = NewTokenForm()
        if form.validate_on_submit():
            try:
                row, token = api_tokens.create_token(
                    current_user.id, form.name.data, form.expires_days.data
                )
            except ValidationError as exc:
                flash(str(exc), "error")
            else:
                return self.render("admin/api_token_created.html", row=row, token=token)
        return self.render("admin/api_token_new.html", form=form)

    @action("revoke", "Revoke", "Revoke the selected tokens? Programs using them stop at once.")
    def action_revoke(self, ids):
        count = api_tokens.revoke_tokens(self.visible_ids(parse_ids(ids)), current_user)
        flash(f"{count} token(s) revoked.", "success")
        return redirect(request.referrer or self.get_url(".index_view"))
