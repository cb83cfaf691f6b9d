"""The admin home page: what the tool does, first steps, task counts, recent activity, failures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from llmadmin import queues
from llmadmin.admin import formatters
from llmadmin.admin.listing import COUNT_CAP, ListCount
from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, STATUSES
from llmadmin.services import activity

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue


class HomeView(AdminIndexView):
    """Show what the tool does, first steps, task counts, recent activity and failures."""

    def is_accessible(self) -> bool:
        """Let in any logged-in person."""
        return current_user.is_authenticated

    def inaccessible_callback(self, name: str, **kwargs: Any) -> ResponseReturnValue:
        """Send anonymous visitors to the login page."""
        return redirect(url_for("auth.login", next=request.full_path))

    @expose("/")
    def index(self) -> str:
        """Render the home page: first steps, counts per status, recent rows, failures, queue health."""
        scope = [] if current_user.is_admin else [Task.creator_id == current_user.id]
        return self.render(
            "admin/home.html",
            counts=status_counts(scope),
            failures=latest_failures(scope),
            steps=first_steps(),
            recent=activity.recent(None if current_user.is_admin else current_user.id),
            queue_ok=queues.redis_available(),
            status_label=formatters.status_label,
            task_error_text=formatters.task_error_text,
        )


def status_counts(scope: list) -> dict[str, ListCount]:
    """Count each status's tasks up to ``COUNT_CAP``, all in one statement.

    Each count is a scalar subquery over an index range read capped at ``COUNT_CAP + 1`` rows,
    never a scan; a count over the cap is shown as "10,000+".
    """

    def capped(status: str):
        inner = select(Task.id).where(Task.status == status, *scope).limit(COUNT_CAP + 1)
        return select(func.count()).select_from(inner.subquery()).scalar_subquery()

    found = db.session.execute(select(*(capped(status) for status in STATUSES))).one()
    return {
        status: ListCount(min(number, COUNT_CAP), capped=number > COUNT_CAP)
        for status, number in zip(STATUSES, found, strict=True)
    }


def latest_failures(scope: list, limit: int = 10) -> list[Task]:
    """The last failed tasks by finish time, read backwards from (status, finished_at, id).

    ``finished_at IS NOT NULL`` lets PostgreSQL read the index backwards too (its DESC puts
    NULLs first); a failure without a finish time (none is written so) comes after.
    """

    def newest(*where, order):
        stmt = select(Task).options(joinedload(Task.model)).where(Task.status == FAILURE, *scope)
        return db.session.execute(stmt.where(*where).order_by(*order).limit(limit)).scalars()

    rows = list(
        newest(Task.finished_at.is_not(None), order=(Task.finished_at.desc(), Task.id.desc()))
    )
    if len(rows) < limit:
        rows += newest(Task.finished_at.is_(None), order=(Task.id.desc(),))
    return rows[:limit]


def first_steps() -> list[tuple[bool, str, str | None, str]]:
    """(done, what to do, link, link text) for a new installation's first steps."""
    done = activity.setup_state(current_user.id)
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
