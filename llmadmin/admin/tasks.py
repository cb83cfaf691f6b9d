"""The Tasks panel: create in a modal, watch progress, run/retry/cancel/duplicate in bulk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import flash, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import (
    FilterEmpty,
    FilterEqual,
    FilterInList,
    FilterLike,
    FilterNotEqual,
    FilterNotInList,
    FilterNotLike,
)
from flask_admin.helpers import get_redirect_target
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import escape
from sqlalchemy import Boolean, String
from wtforms import HiddenField
from wtforms.validators import DataRequired, InputRequired

from llmadmin.admin import export_actions, formatters, task_actions
from llmadmin.admin.base import ScopedView, drop_generic_flash
from llmadmin.admin.task_forms import (
    new_submission_key,
    param_fields,
    params_from,
)
from llmadmin.admin.task_param_views import ParamFormViews, enabled_models
from llmadmin.admin.validators import text_field
from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import Person, Task
from llmadmin.models.task import ACTIVE_STATUSES, STATUSES
from llmadmin.services import audit, task_runs
from llmadmin.services import tasks as task_service
from llmadmin.services.task_params import PARAM_FIELDS, display_value

if TYPE_CHECKING:
    from flask import Response
    from flask.typing import ResponseReturnValue
    from wtforms import Form


def picker_filters(path: str, label, options, text: bool = True) -> list:
    """Equal / not equal from a picker, in / not in a list and, for names, contains / empty."""
    found = [
        FilterEqual(path, label, options=options),
        FilterNotEqual(path, label, options=options),
        FilterInList(path, label, options=options),
        FilterNotInList(path, label, options=options),
    ]
    if text:
        found += [FilterLike(path, label), FilterNotLike(path, label), FilterEmpty(path, label)]
    return found


class TaskView(export_actions.ExportActionsMixin, ParamFormViews, ScopedView):
    """Tasks: members see their own, admins everything."""

    create_modal = True
    list_template = "admin/task_list.html"
    create_modal_template = "admin/task_create_modal.html"
    live_status = True
    can_export = False
    extra_exports = {
        "export_runs_csv": ("task_runs", "csv"),
        "export_runs_xlsx": ("task_runs", "xlsx"),
    }
    # The name is optional in the form (it defaults to the prompt's first line).
    form_optional_types = (Boolean, String)
    column_list = (
        "id",
        "name",
        "status",
        "model",
        "creator",
        "attempts",
        "calls",
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
        "batch",
        "custom_id",
        "system_prompt",
        "messages",
        "prompt",
        "temperature",
        "max_tokens",
        "top_p",
        "frequency_penalty",
        "presence_penalty",
        "stop",
        "seed",
        "response_format",
        "result",
        "result_outdated",
        "output_is_json",
        "error",
        "error_kind",
        "finish_reason",
        "attempts",
        "calls",
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
    # Pickers, not free text: a status, a model or a person is chosen from a list.
    column_filters = (
        *picker_filters("status", _l("Status"), formatters.status_choices(STATUSES), text=False),
        *picker_filters(
            "model.name", _l("Model name"), formatters.LazyOptions(formatters.model_name_options)
        ),
        *picker_filters(
            "creator.name",
            _l("Creator name"),
            formatters.LazyOptions(formatters.creator_name_options),
        ),
        "creator.email",
        "created_at",
        "finished_at",
        "error_kind",
        "result_outdated",
        "output_is_json",
        "finish_reason",
        "batch_id",
    )
    column_labels = {
        "batch_id": _l("Batch"),
        "batch": _l("Batch"),
        "custom_id": _l("Custom ID"),
        "id": _l("ID"),
        "name": _l("Name"),
        "status": _l("Status"),
        "latency_ms": _l("Latency"),
        "prompt_tokens": _l("Prompt tokens"),
        "completion_tokens": _l("Output tokens"),
        "model": _l("Model"),
        "creator": _l("Creator"),
        "creator.name": _l("Creator name"),
        "creator.email": _l("Creator e-mail"),  # the filter's name (not "creator / Person / Email")
        "model.name": _l("Model name"),
        "source_task": _l("Duplicated from"),
        "error_kind": _l("Error class"),
        "queue_note": _l("Queue note"),
        "result": _l("Output"),
        "attempts": _l("Runs"),
        "cost": _l("Cost"),
        "created_at": _l("Created at"),
        "queued_at": _l("Queued at"),
        "started_at": _l("Started at"),
        "finished_at": _l("Finished at"),
        "system_prompt": _l("System prompt"),
        "messages": _l("Earlier messages"),
        "prompt": _l("Prompt"),
        "error": _l("Error"),
        "job_id": _l("Job ID"),
        "result_outdated": _l("Output outdated"),
        "output_is_json": _l("Output is JSON"),
        "temperature": _l("Temperature"),
        "max_tokens": _l("Max tokens"),
        "top_p": _l("Top p"),
        "frequency_penalty": _l("Frequency penalty"),
        "presence_penalty": _l("Presence penalty"),
        "stop": _l("Stop sequences"),
        "seed": _l("Seed"),
        "response_format": _l("Response format"),
        "calls": _l("Calls"),
        "finish_reason": _l("Finish reason"),
    }
    column_formatters = {
        "status": formatters.task_status,
        "latency_ms": formatters.milliseconds,
        "name": formatters.truncated,
    }
    column_formatters_detail = {
        "status": formatters.task_status,
        "queue_note": formatters.queue_note,
        "source_task": formatters.task_link,
        "response_format": formatters.preformatted,
        "result_outdated": formatters.outdated_note,
        "output_is_json": formatters.json_flag,
        "prompt": formatters.preformatted,
        "system_prompt": formatters.preformatted,
        "messages": formatters.conversation,
        "result": formatters.preformatted,
        "error": formatters.task_error,
        "latency_ms": formatters.milliseconds,
        "finish_reason": formatters.finish_reason,
    }
    column_descriptions = {
        "attempts": _l(
            "How many times a worker started the task (a lost worker's run counts too)."
        ),
        "calls": _l("Calls made to the model's endpoint for this outcome, retries included."),
        "cost": _l(
            "From the model's prices per 1K tokens; blank when the server reported no token counts."
        ),
        "finish_reason": _l(
            "Why the model stopped: stop, length (cut off by max tokens), content_filter, tool_calls."
        ),
        "result_outdated": _l(
            "The prompt, model or parameters changed after this output was made."
        ),
        "output_is_json": _l("JSON mode only: whether the output parses as JSON."),
        "messages": _l(
            "The conversation before the prompt, sent in this order between the system prompt "
            "and the prompt."
        ),
    }
    form_columns = ("name", "creator", "model", "system_prompt", "prompt", *PARAM_FIELDS)
    form_args = {
        "name": {
            "description": _l("Optional; defaults to the first line of the prompt."),
            "validators": [text_field(_l("Name"), required=False, max_chars=200)],
        },
        "model": {
            "query_factory": enabled_models,
            "blank_text": _l("Choose a model…"),
            "validators": [DataRequired(_l("Choose a model."))],
            "description": _l("Only enabled models are listed."),
        },
        "prompt": {
            "validators": [
                InputRequired(_l("The prompt is required.")),
                text_field(_l("Prompt"), required=True, prompt_limit=True),
            ]
        },
        "system_prompt": {
            "validators": [text_field(_l("System prompt"), required=False, prompt_limit=True)],
            "description": _l("Optional instructions sent before the prompt."),
        },
        "creator": {"description": _l("Who the task belongs to; defaults to you.")},
    }
    form_extra_fields = param_fields()
    form_widget_args = {
        "prompt": {"rows": 8},
        "system_prompt": {"rows": 3},
        "stop": {"rows": 2},
        "response_format": {"rows": 3},
    }

    # --- forms ------------------------------------------------------------------------
    def get_create_form(self) -> type[Form]:
        """The scaffolded form plus a one-time token: the same form posted twice makes one task."""
        return type(
            "TaskCreateForm",
            (super().get_create_form(),),
            {
                "submission_key": HiddenField(default=new_submission_key),
            },
        )

    def create_form(self, obj: Task | None = None) -> Form:
        """Build the create form: members may not pick a creator; admins default to themselves."""
        form = super().create_form(obj)
        if not current_user.is_admin:
            del form.creator
        elif request.method == "GET" and form.creator.data is None:
            form.creator.data = db.session.get(Person, current_user.id)
        return form

    def edit_form(self, obj: Task | None = None) -> Form:
        """Build the edit form; only admins may change the creator."""
        form = super().edit_form(obj)
        if not current_user.is_admin:
            del form.creator
        return form

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> ResponseReturnValue:
        """Flask-Admin's create page, saying once what happened (our message, not also its own)."""
        response = super().create_view()
        drop_generic_flash()
        return response

    def create_model(self, form: Form) -> Task | bool:
        """Create the task through the service; a resubmitted form returns the earlier task."""
        field = getattr(form, "creator", None)
        creator = field.data if field is not None else None
        earlier = task_service.find_submitted(form.submission_key.data)
        if earlier is not None and self._can_see(earlier):
            flash(
                _(
                    "This form was already submitted: task #%(id)s was created then; "
                    "nothing new was created.",
                    id=earlier.id,
                ),
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
                params=params_from(form),
            )
        except ValidationError as exc:
            flash(str(exc), "error")
            return False
        flash(
            _(
                "Task #%(id)s created (%(status)s).",
                id=task.id,
                status=formatters.status_label(task.status),
            ),
            "success",
        )
        return task

    def _can_see(self, task: Task) -> bool:
        """Tell whether the current person may see ``task``."""
        return current_user.is_admin or task.creator_id == current_user.id

    def on_form_prefill(self, form: Form, id: Any) -> None:
        """Fill the parameter fields with the task's stored values as text."""
        task = self.get_one(id)
        for name in PARAM_FIELDS:
            form[name].data = display_value(name, getattr(task, name))

    def on_model_change(self, form: Form, model: Task, is_created: bool) -> None:
        """Store cleaned parameters, refuse edits of active tasks, and flag outdated output."""
        # The form wrote its raw parameter text onto the row: replace it with the stored form
        # before anything can flush (the fields' validators have already accepted it).
        for name, value in params_from(form).items():
            setattr(model, name, value)
        if model.status in ACTIVE_STATUSES:
            raise ValidationError(_("A queued or running task cannot be edited; cancel it first."))
        model.name, model.prompt, model.system_prompt = task_service.validate_task_fields(
            model.name, model.prompt, model.system_prompt
        )
        if task_service.note_edit(model):
            flash(
                _(
                    "The task's output was produced by its previous version and is marked "
                    "outdated; run the task again for output that matches your changes."
                ),
                "warning",
            )

    def render(self, template: str, **kwargs: Any) -> str:
        """Give the details page the task's run history, the viewer's error text and its buttons."""
        if template == self.details_template and isinstance(kwargs.get("model"), Task):
            kwargs["runs"] = task_runs.history(kwargs["model"].id)
            kwargs["task_error_text"] = formatters.task_error_text
            kwargs["status_label"] = formatters.status_label
            task = kwargs["model"]
            back = self.get_url(".details_view", id=task.id, url=kwargs.get("return_url"))
            kwargs["task_actions"] = task_actions.detail_actions(self, task, back)
            kwargs["task_page_url"] = back
        return super().render(template, **kwargs)

    def delete_model(self, model: Task) -> bool:
        """Audit and delete one task through the service (canceling it first if active)."""
        audit.record("delete", "task", model.id, str(model), commit=False)
        task_service.delete_tasks([model.id])
        return True

    # --- actions ----------------------------------------------------------------------
    @action(
        "run",
        _l("Run / Re-run"),
        _l("Run the selected tasks again? Earlier results stay in each task's run history."),
    )
    def action_run(self, ids: list[str]) -> None:
        """Queue the ticked tasks to run again."""
        self.flash_ticked(self.run_ticked("run", self.visible_ids(ids)).describe("queued"))

    @action("rerun_params", _l("Re-run with other parameters…"), None)
    def action_rerun_params(self, ids: list[str]) -> ResponseReturnValue:
        """Go to the re-run form for the ticked tasks."""
        ids = self.visible_ids(ids)
        return redirect(
            url_for(
                ".rerun_view",
                ids=",".join(map(str, ids)),
                url=get_redirect_target() or self.get_url(".index_view"),
            )
        )

    def handle_action(self, return_view: str | None = None) -> ResponseReturnValue:
        """Ask for parameters before re-running all matching tasks; other actions go on as usual."""
        if request.form.get("action") == "rerun_params" and request.form.get("all_matching") == "1":
            # The parameters are asked first; the form then starts the bulk operation.
            back = get_redirect_target() or self.get_url(".index_view")
            return redirect(
                url_for(".rerun_view", list_args=request.form.get("list_args", ""), url=back)
            )
        return super().handle_action(return_view)

    @action("export_runs_csv", _l("Export CSV with all runs to Download Center"), None)
    def action_export_runs_csv(self, ids: list[str]) -> ResponseReturnValue:
        """Queue a CSV export of every run of the ticked tasks."""
        return self.queue_export("runs_csv", ids)

    @action("export_runs_xlsx", _l("Export XLSX with all runs to Download Center"), None)
    def action_export_runs_xlsx(self, ids: list[str]) -> ResponseReturnValue:
        """Queue an XLSX export of every run of the ticked tasks."""
        return self.queue_export("runs_xlsx", ids)

    @action("retry", _l("Retry failed"), None)
    def action_retry(self, ids: list[str]) -> None:
        """Queue the ticked failed tasks again."""
        self.flash_ticked(self.run_ticked("retry", self.visible_ids(ids)).describe("queued again"))

    @action("cancel", _l("Cancel"), _l("Cancel the selected tasks?"))
    def action_cancel(self, ids: list[str]) -> None:
        """Cancel the ticked tasks."""
        self.flash_ticked(self.run_ticked("cancel", self.visible_ids(ids)).describe("canceled"))

    @action("duplicate", _l("Duplicate to another model…"), None)
    def action_duplicate(self, ids: list[str]) -> ResponseReturnValue:
        """Go to the duplicate form for the ticked tasks."""
        ids = self.visible_ids(ids)
        return redirect(
            url_for(
                ".duplicate_view",
                ids=",".join(map(str, ids)),
                url=get_redirect_target() or self.get_url(".index_view"),
            )
        )

    @action(
        "delete",
        _l("Delete"),
        _l("Delete the selected tasks? Queued and running ones are canceled first."),
    )
    def action_delete(self, ids: list[str]) -> None:
        """Delete the ticked tasks, canceling active ones first."""
        self.flash_ticked(self.run_ticked("delete", self.visible_ids(ids)).describe("deleted"))

    def bulk_extra(self, action: str) -> dict:
        """Read the target model a bulk duplicate needs from the form."""
        if action == "duplicate":
            model_id = request.form.get("model_id", type=int)
            if not model_id:
                raise ValidationError(_("Choose the model to duplicate to."))
            return {"model_id": model_id}
        return {}

    @expose("/status.json")
    def status_json(self) -> Response:
        """Statuses (and streamed output of one task) for live refresh without reloading."""
        rows = self.rows_for_live_status()
        payload = {
            str(t.id): {
                "status": t.status,
                "badge": str(formatters.status_badge(self, None, t, "status")),
                "cells": self.live_cells(t),
            }
            for t in rows
        }
        if request.args.get("with_result") and len(rows) == 1:
            payload[str(rows[0].id)]["result"] = rows[0].result or ""
            payload[str(rows[0].id)]["error"] = formatters.task_error_text(rows[0])
        return jsonify(payload)

    def live_cells(self, task: Task) -> dict[str, str]:
        """Every list cell of the row as the list renders it (escaped HTML), by column name."""
        return {
            name: str(
                escape(
                    self._get_list_value(
                        None, task, name, self.column_formatters, self.column_type_formatters
                    )
                )
            )
            for name, _label in self._list_columns
            if name != "id"
        }
