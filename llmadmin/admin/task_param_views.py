"""The Tasks panel's parameter forms: duplicate to another model, re-run with other parameters.

Both ask for call-parameter overrides (empty keeps each task's own) and apply them through
the bulk registry (``services.bulk.ACTIONS``): ticked rows at once, all matching rows as a
stored operation whose job re-runs them.
"""

from __future__ import annotations

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.helpers import get_redirect_target
from flask_babel import gettext as _
from flask_login import current_user

from llmadmin.admin import selection_args
from llmadmin.admin.task_forms import DuplicateForm, RerunForm, overrides_from
from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import LLMModel
from llmadmin.services import selections


def enabled_models():
    """The models a task may be given (enabled ones), by name."""
    return db.session.query(LLMModel).filter(LLMModel.enabled.is_(True)).order_by(LLMModel.name)


class ParamFormViews:
    """The duplicate and re-run pages; mixed into the Tasks view."""

    @expose("/duplicate/", methods=("GET", "POST"))
    def duplicate_view(self):
        """Ask which model to copy the selected tasks to, then copy and queue them."""
        ids = self.visible_ids([i for i in request.values.get("ids", "").split(",") if i])
        back = get_redirect_target() or self.get_url(".index_view")
        models = enabled_models().all()
        form = DuplicateForm(request.form if request.method == "POST" else None)
        form.model_id.choices = [(m.id, str(m)) for m in models]
        if request.method == "POST" and form.validate():
            try:
                outcome = self.run_ticked(
                    "duplicate",
                    ids,
                    model_id=form.model_id.data,
                    submission_key=form.submission_key.data,
                    params=overrides_from(form),
                )
            except ValidationError as exc:
                flash(str(exc), "error")
            else:
                if ids and not outcome.changed and not outcome.waiting:
                    self.flash_ticked(
                        _(
                            "This form was already submitted: the copies exist; "
                            "nothing new was created."
                        ),
                        "info",
                    )
                else:
                    self.flash_ticked(outcome.describe("duplicated and queued"))
                return redirect(back)
        return self.render("admin/task_duplicate.html", form=form, ids=ids, back=back)

    @expose("/rerun/", methods=("GET", "POST"))
    def rerun_view(self):
        """Ask for parameter overrides, then re-run the ticked tasks or all matching ones."""
        back = get_redirect_target() or self.get_url(".index_view")
        list_args = request.values.get("list_args")
        try:
            if list_args is not None:
                selection, ids = self.selection_from_query(list_args), []
                described = _(
                    "all %(count)s matching tasks",
                    count=f"{selections.count_matching(selection):,}",
                )
            else:
                ids = self.visible_ids([i for i in request.values.get("ids", "").split(",") if i])
                described = _("%(count)s task(s)", count=len(ids))
        except ValidationError as exc:
            flash(str(exc), "error")
            return redirect(back)
        form = RerunForm(request.form if request.method == "POST" else None)
        if request.method == "POST" and form.validate():
            arguments = {"params": overrides_from(form)}
            if list_args is not None:
                return self.start_all_matching(selection, "run", arguments, back)
            try:
                outcome = self.run_ticked("run", ids, **arguments)
            except ValidationError as exc:
                flash(str(exc), "error")
            else:
                self.flash_ticked(outcome.describe("queued"))
                return redirect(back)
        return self.render(
            "admin/task_rerun.html",
            form=form,
            ids=ids,
            list_args=list_args,
            described=described,
            back=back,
        )

    def selection_from_query(self, list_args: str):
        """The selection of all rows matching a list URL's query string."""
        return selection_args.selection_from_query_string(self, list_args, current_user.id)
