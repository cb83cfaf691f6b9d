"""The Tasks panel: create in a modal, watch progress, run/retry/cancel/duplicate in bulk."""

from __future__ import annotations

import uuid

from flask import flash, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterInList
from flask_admin.helpers import get_redirect_target
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Boolean, String
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired, InputRequired

from llmadmin.admin import export_actions, formatters
from llmadmin.admin.base import ScopedView
from llmadmin.admin.validators import text_field
from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Person, Task
from llmadmin.models.task import ACTIVE_STATUSES, STATUSES
from llmadmin.services import audit
from llmadmin.services import tasks as task_service


def _enabled_models():
    return db.session.query(LLMModel).filter(LLMModel.enabled.is_(True)).order_by(LLMModel.name)


class TaskView(export_actions.ExportActionsMixin, ScopedView):
    """Tasks: members see their own, admins everything."""

    create_modal = True
    live_status = True
    can_export = False
    # The name is optional in the form (it defaults to the prompt's first line).
    form_optional_types = (Boolean, String)
    column_list = (
        "id",
        "name",
        "status",
        "model",
        "creator",
        "attempts",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "created_at",
        "finished_at",
    )
    column_details_list = (
        "id",
        "name",
        "status",
        "queue_note",
        "model",
        "creator",
        "source_task",
        "system_prompt",
        "prompt",
        "result",
        "error",
        "error_kind",
        "attempts",
        "job_id",
        "created_at",
        "queued_at",
        "started_at",
        "finished_at",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    )
    column_default_sort = ("id", True)
    column_sortable_list = (
        "id",
        "name",
        "status",
        "attempts",
        "latency_ms",
        "cost",
        "created_at",
        "finished_at",
        ("model", "model.name"),
        ("creator", "creator.name"),
    )
    column_searchable_list = ("name", "prompt")
    column_filters = (
        FilterInList(Task.status, "Status", options=[(s, s) for s in STATUSES]),
        "status",
        "model.name",
        "creator.name",
        "creator.email",
        "created_at",
        "finished_at",
        "error_kind",
    )
    column_labels = {
        "latency_ms": "Latency",
        "prompt_tokens": "Prompt tokens",
        "completion_tokens": "Output tokens",
        "model": "Model",
        "creator": "Creator",
        "source_task": "Duplicated from",
        "error_kind": "Error class",
        "queue_note": "Queue note",
        "result": "Output",
    }
    column_formatters = {
        "status": formatters.status_badge,
        "latency_ms": formatters.milliseconds,
        "name": formatters.truncated,
    }
    column_formatters_detail = {
        "status": formatters.status_badge,
        "prompt": formatters.preformatted,
        "system_prompt": formatters.preformatted,
        "result": formatters.preformatted,
        "error": formatters.task_error,
        "latency_ms": formatters.milliseconds,
    }
    column_descriptions = {
        "attempts": "How many times a worker started the task.",
        "cost": "From the model's prices per 1K tokens, when set.",
    }
    form_columns = ("name", "creator", "model", "system_prompt", "prompt")
    form_args = {
        "name": {
            "description": "Optional; defaults to the first line of the prompt.",
            "validators": [text_field("Name", required=False, max_chars=200)],
        },
        "model": {
            "query_factory": _enabled_models,
            "validators": [DataRequired("Choose a model.")],
            "description": "Only enabled models are listed.",
        },
        "prompt": {
            "validators": [
                InputRequired("The prompt is required."),
                text_field("Prompt", required=True, prompt_limit=True),
            ]
        },
        "system_prompt": {
            "validators": [text_field("System prompt", required=False, prompt_limit=True)],
            "description": "Optional instructions sent before the prompt.",
        },
        "creator": {"description": "Who the task belongs to; defaults to you."},
    }
    form_widget_args = {"prompt": {"rows": 8}, "system_prompt": {"rows": 3}}

    # --- forms ------------------------------------------------------------------------
    def get_create_form(self):
        """The scaffolded form plus a one-time token: the same form posted twice makes one task."""
        return type(
            "TaskCreateForm",
            (super().get_create_form(),),
            {
                "submission_key": HiddenField(default=new_submission_key),
            },
        )

    def create_form(self, obj=None):
        form = super().create_form(obj)
        if not current_user.is_admin:
            del form.creator
        elif request.method == "GET" and form.creator.data is None:
            form.creator.data = db.session.get(Person, current_user.id)
        return form

    def edit_form(self, obj=None):
        form = super().edit_form(obj)
        if not current_user.is_admin:
            del form.creator
        return form

    def create_model(self, form):
        field = getattr(form, "creator", None)
        creator = field.data if field is not None else None
        earlier = task_service.find_submitted(form.submission_key.data)
        if earlier is not None and self._can_see(earlier):
            flash(
                f"This form was already submitted: task #{earlier.id} was created then; "
                "nothing new was created.",
                "info",
            )
            return earlier
        try:
            task = task_service.create_task(
                name=form.name.data,
                prompt=form.prompt.data,
                system_prompt=form.system_prompt.data,
                model_id=form.model.data.id if form.model.data else None,
                creator_id=creator.id if creator else current_user.id,
                submission_key=form.submission_key.data,
            )
        except ValidationError as exc:
            flash(str(exc), "error")
            return False
        flash(f"Task #{task.id} created and {task.status.lower()}.", "success")
        return task

    def _can_see(self, task: Task) -> bool:
        return current_user.is_admin or task.creator_id == current_user.id

    def on_model_change(self, form, model, is_created):
        if model.status in ACTIVE_STATUSES:
            raise ValidationError("A queued or running task cannot be edited; cancel it first.")
        model.name, model.prompt, model.system_prompt = task_service.validate_task_fields(
            model.name, model.prompt, model.system_prompt
        )

    def delete_model(self, model):
        audit.record("delete", "task", model.id, str(model), commit=False)
        task_service.delete_tasks([model.id])
        return True

    # --- actions ----------------------------------------------------------------------
    @action("run", "Run / Re-run", "Run the selected tasks again? Existing results are replaced.")
    def action_run(self, ids):
        self.flash_ticked(self.run_ticked("run", self.visible_ids(ids)).describe("queued"))

    @action("retry", "Retry failed", None)
    def action_retry(self, ids):
        self.flash_ticked(self.run_ticked("retry", self.visible_ids(ids)).describe("queued again"))

    @action("cancel", "Cancel", "Cancel the selected tasks?")
    def action_cancel(self, ids):
        self.flash_ticked(self.run_ticked("cancel", self.visible_ids(ids)).describe("canceled"))

    @action("duplicate", "Duplicate to another model…", None)
    def action_duplicate(self, ids):
        ids = self.visible_ids(ids)
        return redirect(
            url_for(
                ".duplicate_view",
                ids=",".join(map(str, ids)),
                url=get_redirect_target() or self.get_url(".index_view"),
            )
        )

    @action(
        "delete", "Delete", "Delete the selected tasks? Queued and running ones are canceled first."
    )
    def action_delete(self, ids):
        self.flash_ticked(self.run_ticked("delete", self.visible_ids(ids)).describe("deleted"))

    def bulk_extra(self, action):
        if action == "duplicate":
            model_id = request.form.get("model_id", type=int)
            if not model_id:
                raise ValidationError("Choose the model to duplicate to.")
            return {"model_id": model_id}
        return {}

    @expose("/duplicate/", methods=("GET", "POST"))
    def duplicate_view(self):
        """Ask which model to copy the selected tasks to, then copy and queue them."""
        ids = self.visible_ids([i for i in request.values.get("ids", "").split(",") if i])
        back = get_redirect_target() or self.get_url(".index_view")
        models = _enabled_models().all()
        form = DuplicateForm(request.form if request.method == "POST" else None)
        form.model_id.choices = [(m.id, str(m)) for m in models]
        if request.method == "POST" and form.validate():
            try:
                outcome = self.run_ticked(
                    "duplicate",
                    ids,
                    model_id=form.model_id.data,
                    submission_key=form.submission_key.data,
                )
            except ValidationError as exc:
                flash(str(exc), "error")
            else:
                if ids and not outcome.changed and not outcome.waiting:
                    self.flash_ticked(
                        "This form was already submitted: the copies exist; nothing new was created.",
                        "info",
                    )
                else:
                    self.flash_ticked(outcome.describe("duplicated and queued"))
                return redirect(back)
        return self.render("admin/task_duplicate.html", form=form, ids=ids, back=back)

    @expose("/status.json")
    def status_json(self):
        """Statuses (and streamed output of one task) for live refresh without reloading."""
        rows = self.rows_for_live_status()
        payload = {
            str(t.id): {
                "status": t.status,
                "badge": str(formatters.status_badge(self, None, t, "status")),
            }
            for t in rows
        }
        if request.args.get("with_result") and len(rows) == 1:
            payload[str(rows[0].id)]["result"] = rows[0].result or ""
            payload[str(rows[0].id)]["error"] = formatters.error_for_viewer(
                rows[0].error_kind, rows[0].error
            )
        return jsonify(payload)


def new_submission_key() -> str:
    return uuid.uuid4().hex


class DuplicateForm(FlaskForm):
    model_id = SelectField(
        "Duplicate to model", coerce=int, validators=[DataRequired("Choose a model.")]
    )
    submission_key = HiddenField(default=new_submission_key)
