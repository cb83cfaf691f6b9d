"""The admin home page: what the tool does, first steps, task counts, recent activity, failures."""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from llmadmin import queues
from llmadmin.admin import formatters
from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, STATUSES
from llmadmin.services import activity


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
            steps=first_steps(),
            recent=activity.recent(None if current_user.is_admin else current_user.id),
            queue_ok=queues.redis_available(),
            status_label=formatters.status_label,
            error_for_viewer=formatters.error_for_viewer,
        )


def first_steps() -> list[tuple[bool, str, str | None, str]]:
    """(done, what to do, link, link text) for a new installation's first steps."""
    done = activity.setup_state()
    admin = current_user.is_admin
    models = url_for("llmmodel.index_view")
    tasks = url_for("task.index_view")
    return [
        (
            done["model"],
            _("Add a model: its OpenAI-compatible base URL, API key and model name."),
            url_for("llmmodel.create_view", url=models) if admin else None,
            _("Add a model"),
        ),
        (
            done["tested"],
            _("Test it: the model form and each row have a Test connection button."),
            models,
            _("LLM Models"),
        ),
        (
            done["task"],
            _("Create a task: a prompt for one model; it runs at once."),
            url_for("task.create_view", url=tasks),
            _("Create a task"),
        ),
        (
            False,
            _(
                "Watch every column fill in, run or duplicate many tasks at once with the "
                "list's actions, and export the results to the Download Center."
            ),
            tasks,
            _("Tasks"),
        ),
    ]
