"""My settings: the signed-in person's own language and time zone."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField

from llmadmin import localtime
from llmadmin.errors import ValidationError
from llmadmin.i18n import LOCALES
from llmadmin.services import people as people_service


class SettingsForm(FlaskForm):
    locale = SelectField(_l("Language"))
    timezone = SelectField(
        _l("Time zone"),
        description=_l("Times everywhere (lists, details, exports) are shown in this zone."),
    )


class SettingsView(BaseView):
    """Reached from the navigation bar; not a menu entry of its own."""

    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    def is_visible(self) -> bool:
        return False

    def inaccessible_callback(self, name, **kwargs):
        return redirect(url_for("auth.login", next=request.full_path))

    @expose("/", methods=("GET", "POST"))
    def index(self):
        """Show and save the person's language and time zone."""
        form = SettingsForm(
            request.form if request.method == "POST" else None,
            data={"locale": current_user.locale or "", "timezone": current_user.timezone or ""},
        )
        default_zone = current_app.config["DEFAULT_TIMEZONE"]
        form.locale.choices = [("", _("As the browser asks"))] + list(LOCALES.items())
        form.timezone.choices = [("", _("Site default (%(zone)s)", zone=default_zone))] + [
            (name, name) for name in localtime.zone_names()
        ]
        if request.method == "POST" and form.validate():
            try:
                people_service.set_preferences(
                    current_user.id, locale=form.locale.data, timezone=form.timezone.data
                )
            except ValidationError as exc:
                flash(str(exc), "error")
            else:
                refresh()  # say it in the language just chosen
                flash(_("Your settings were saved."), "success")
                return redirect(self.get_url(".index"))
        return self.render("admin/settings.html", form=form)
