"""The admin home page: task counts by status and the latest failures."""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_login import current_user
from sqlalchemy import func, select

from llmadmin import queues
from llmadmin.admin import formatters
from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, STATUSES


class HomeView(AdminIndexView):
    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    def inaccessible_callback(self, name, **kwargs):
        return redirect(url_for("auth.login", next=request.full_path))

    @expose("/")
    def index(self):
        scope = [] if current_user.is_admin else [Task.creator_id == current_user.id]
        counts = dict(
            db.session.execute(
                select(Task.status, func.count()).where(*scope).group_by(Task.status)
            ).all()
        )
        failures = (
            db.session.execute(
                select(Task)
                .where(Task.status == FAILURE, *scope)
                .order_by(Task.finished_at.desc().nulls_last(), Task.id.desc())
                .limit(10)
            )
            .scalars()
            .all()
        )

        return self.render(
            "admin/home.html",
            counts={s: counts.get(s, 0) for s in STATUSES},
            failures=failures,
            queue_ok=queues.redis_available(),
            status_label=formatters.status_label,
            error_for_viewer=formatters.error_for_viewer,
        )
