"""Flask-Admin panels. The Admin object is built per app in ``init_admin``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from flask_admin import Admin
from flask_admin.menu import MenuLink
from flask_admin.theme import Bootstrap4Theme
from flask_babel import lazy_gettext as _l

from llmadmin.admin import formatters, fragments
from llmadmin.admin.api_tokens import ApiTokenView
from llmadmin.admin.audit import AuditView
from llmadmin.admin.batches import BatchView
from llmadmin.admin.bulk_operations import BulkOperationView
from llmadmin.admin.downloads import DownloadView
from llmadmin.admin.home import HomeView
from llmadmin.admin.llm_models import LLMModelView
from llmadmin.admin.outbox import CodeOutboxView
from llmadmin.admin.people import PersonView
from llmadmin.admin.settings import SettingsView
from llmadmin.admin.tasks import TaskView
from llmadmin.auth import is_admin
from llmadmin.extensions import db
from llmadmin.models import (
    ApiToken,
    AuditEntry,
    Batch,
    BulkOperation,
    CodeOutboxEntry,
    Download,
    LLMModel,
    Person,
    Task,
)

TRANSLATIONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "translations")
if TYPE_CHECKING:
    from flask import Flask


# One object for the category: Flask-Admin groups menu entries by it.
ADMINISTRATION = _l("Administration")


class AdminOnlyLink(MenuLink):
    """A menu link only administrators see (the RQ dashboard)."""

    def is_accessible(self) -> bool:
        """Show the link to administrators only."""
        return is_admin()


def init_admin(app: Flask) -> Admin:
    """Register every panel on a new Admin bound to ``app``."""
    admin = Admin(
        app,
        name="llmadmin",
        index_view=HomeView(name=_l("Home"), url="/admin"),
        theme=Bootstrap4Theme(base_template="admin/llmadmin_base.html", fluid=True),
        # Texts Flask-Admin's own zh_Hans_CN catalogue lacks (llmadmin/translations/*/admin.po).
        translations_path=TRANSLATIONS,
    )
    admin.add_view(TaskView(Task, db, name=_l("Tasks"), endpoint="task"))
    admin.add_view(BatchView(Batch, db, name=_l("Batches"), endpoint="batch"))
    admin.add_view(LLMModelView(LLMModel, db, name=_l("LLM Models"), endpoint="llmmodel"))
    admin.add_view(DownloadView(Download, db, name=_l("Download Center"), endpoint="download"))
    admin.add_view(
        BulkOperationView(BulkOperation, db, name=_l("Bulk operations"), endpoint="bulkoperation")
    )
    admin.add_view(ApiTokenView(ApiToken, db, name=_l("API tokens"), endpoint="apitoken"))
    # Admin-only panels share one dropdown, so the navigation bar stays one line at 1366 px.
    admin.add_view(
        PersonView(Person, db, name=_l("People"), endpoint="person", category=ADMINISTRATION)
    )
    admin.add_view(
        AuditView(AuditEntry, db, name=_l("Audit Log"), endpoint="audit", category=ADMINISTRATION)
    )
    if app.config["OTP_NOTIFIER"] == "log":  # development: codes are read here, not from an inbox
        admin.add_view(
            CodeOutboxView(
                CodeOutboxEntry,
                db,
                name=_l("Code outbox"),
                endpoint="code_outbox",
                category=ADMINISTRATION,
            )
        )
    admin.add_view(SettingsView(name=_l("My settings"), endpoint="settings", url="/admin/settings"))
    admin.add_link(
        AdminOnlyLink(name=_l("RQ Dashboard"), url="/admin/rq/", category=ADMINISTRATION)
    )
    app.jinja_env.globals["status_label"] = formatters.status_label  # badges in any template
    fragments.init_app(app)
    app.extensions["llmadmin.admin"] = admin
    return admin
