"""The buttons of a task's details page: the list's actions for this one task.

Each button goes where the list's Actions menu goes for a ticked row — a CSRF-protected POST
to the view's ``action_view`` (run, retry, cancel: the same handler, audit entry and service)
or the same form page (re-run with other parameters, duplicate) — so permissions, scope and
messages are the list's. A button is shown only when the view allows its action and the
task's status gives it something to do (no "cancel" on a finished task, no "retry" unless
it failed, no re-run while it is queued or running).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l

from llmadmin.models.task import FAILURE, FINAL_STATUSES, PENDING, QUEUED, RUNNING

if TYPE_CHECKING:
    from flask_admin.model import BaseModelView

    from llmadmin.models import Task

# name -> (statuses it applies to, needs the task's model enabled, POST or form page, style)
RULES = {
    "run": (FINAL_STATUSES, True, "post", "primary"),
    "retry": ((FAILURE,), True, "post", "warning"),
    "rerun_params": (FINAL_STATUSES, True, "page", "outline-primary"),
    "duplicate": ((PENDING, QUEUED, RUNNING, *FINAL_STATUSES), False, "page", "outline-secondary"),
    "cancel": ((PENDING, QUEUED, RUNNING), False, "post", "outline-danger"),
}
CONFIRMATIONS = {
    "run": _l("Run this task again? Earlier results stay in its run history."),
    "cancel": _l("Cancel this task?"),
}
PAGES = {"rerun_params": ".rerun_view", "duplicate": ".duplicate_view"}


@dataclass(frozen=True)
class DetailAction:
    name: str  # the list action's name (posted as ``action``)
    label: str
    method: str  # "post" (to action_view) or "page" (a link to the action's form)
    style: str  # the Bootstrap button style
    url: str  # where the POST goes, or the form page
    confirm: str = ""


def detail_actions(view: BaseModelView, task: Task, back: str) -> list[DetailAction]:
    """Return the buttons the details page of ``task`` shows; ``back`` is the page's own URL."""
    model_ok = task.model is not None and task.model.enabled
    found = []
    for name, (statuses, needs_model, method, style) in RULES.items():
        if task.status not in statuses or (needs_model and not model_ok):
            continue
        if name not in view._actions_data or not view.is_action_allowed(name):
            continue
        if method == "post":
            url = view.get_url(".action_view")
        else:
            url = view.get_url(PAGES[name], ids=str(task.id), url=back)
        confirm = CONFIRMATIONS.get(name)
        found.append(
            DetailAction(name, view.action_label(name), method, style, url, str(confirm or ""))
        )
    return found
