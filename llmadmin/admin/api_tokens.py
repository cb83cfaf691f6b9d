"""The API tokens panel: people make and revoke their own tokens; admins see and revoke all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from llmadmin.admin.base import ScopedView
from llmadmin.admin.validators import parse_ids
from llmadmin.errors import ValidationError
from llmadmin.services import api_tokens

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView
    from jinja2.runtime import Context
    from werkzeug.wrappers import Response

    from llmadmin.models import ApiToken

STATUS_LABELS = {"active": _l("active"), "revoked": _l("revoked"), "expired": _l("expired")}


def _status(view: BaseModelView, context: Context | None, model: ApiToken, name: str) -> str:
    """Show whether the token is active, revoked or expired, in the viewer's language."""
    status = api_tokens.token_status(model)
    return str(STATUS_LABELS.get(status, status))


class NewTokenForm(FlaskForm):
    """The new-token form: a name and an optional lifetime in days."""

    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(_l("Give the token a name.")),
            Length(max=100, message=_l("The name may be at most %(max)d characters.")),
        ],
        description=_l("What it is for, e.g. 'nightly import script'."),
    )
    expires_days = IntegerField(
        _l("Expires after (days)"),
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=api_tokens.MAX_EXPIRES_DAYS,
                message=_l("Give a number of days from %(min)s to %(max)s."),
            ),
        ],
        description=_l("Leave empty for a token that does not expire."),
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
    column_labels = {
        "id": _l("ID"),
        "person": _l("Owner"),
        "name": _l("Name"),
        "prefix": _l("Starts with"),
        "status": _l("Status"),
        "created_at": _l("Created at"),
        "last_used_at": _l("Last used"),
        "expires_at": _l("Expires at"),
        "revoked_at": _l("Revoked at"),
        "revoked_by": _l("Revoked by"),
    }
    column_formatters = {"status": _status}
    column_formatters_detail = column_formatters

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> str:
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

    @action(
        "revoke",
        _l("Revoke"),
        _l("Revoke the selected tokens? Programs using them stop at once."),
    )
    def action_revoke(self, ids: list[str]) -> Response:
        """Revoke the ticked tokens the person may see (their own; an admin's: anyone's)."""
        count = api_tokens.revoke_tokens(self.visible_ids(parse_ids(ids)), current_user)
        flash(_("%(count)s token(s) revoked.", count=count), "success")
        return redirect(request.referrer or self.get_url(".index_view"))
