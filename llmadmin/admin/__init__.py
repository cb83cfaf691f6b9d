"""Flask-Admin panels. The Admin object is built per app in ``init_admin``."""

from __future__ import annotations

from flask_admin import Admin
from flask_admin.menu import MenuLink
from flask_admin.theme import Bootstrap4Theme

from llmadmin.admin.api_tokens import ApiTokenView
from llmadmin.admin.audit import AuditView
from llmadmin.admin.bulk_operations import BulkOperationView
from llmadmin.admin.downloads import DownloadView
from llmadmin.admin.home import HomeView
from llmadmin.admin.llm_models import LLMModelView
from llmadmin.admin.outbox import CodeOutboxView
from llmadmin.admin.people import PersonView
from llmadmin.admin.tasks import TaskView
from llmadmin.auth import is_admin
from llmadmin.extensions import db
from llmadmin.models import (
    ApiToken,
    AuditEntry,
    BulkOperation,
    CodeOutboxEntry,
    Download,
    LLMModel,
    Person,
    Task,
)


class AdminOnlyLink(MenuLink):
    """A menu link only administrators see (the RQ dashboard)."""

    def is_accessible(self):
        return is_admin()


def init_admin(app) -> Admin:
    """Register every panel on a new Admin bound to ``app``."""
    admin = Admin(
        app,
        name="llmadmin",
        index_view=HomeView(name="Home", url="/admin"),
        theme=Bootstrap4Theme(base_template="admin/llmadmin_base.html", fluid=True),
    )
    admin.add_view(TaskView(Task, db, name="Tasks", endpoint="task"))
    admin.add_view(LLMModelView(LLMModel, db, name="LLM Models", endpoint="llmmodel"))
    admin.add_view(DownloadView(Download, db, name="Download Center", endpoint="download"))
    admin.add_view(
        BulkOperationView(BulkOperation, db, name="Bulk operations", endpoint="bulkoperation")
    )
    admin.add_view(PersonView(Person, db, name="People", endpoint="person"))
    admin.add_view(ApiTokenView(ApiToken, db, name="API tokens", endpoint="apitoken"))
    admin.add_view(AuditView(AuditEntry, db, name="Audit Log", endpoint="audit"))
    if app.config["OTP_NOTIFIER"] == "log":  # development: codes are read here, not from an inbox
        admin.add_view(
            CodeOutboxView(CodeOutboxEntry, db, name="Code outbox", endpoint="code_outbox")
        )
    admin.add_link(AdminOnlyLink(name="RQ Dashboard", url="/admin/rq/"))
    app.extensions["llmadmin.admin"] = admin
    return admin
