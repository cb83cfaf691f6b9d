"""The model form's helpers: list the endpoint's models, test the typed settings, test one row."""

from __future__ import annotations

from flask import flash, jsonify, redirect, request
from flask_admin import expose
from flask_admin.helpers import get_redirect_target
from flask_admin.model.template import TemplateLinkRowAction
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from llmadmin.admin.validators import parse_id
from llmadmin.auth import is_admin
from llmadmin.errors import LLMAdminError
from llmadmin.services import audit
from llmadmin.services import llm_models as model_service

TEST_ROW_ACTION = TemplateLinkRowAction("llmadmin_row.test_connection", _l("Test connection"))
# Its macro uses the row's id only: list pages render it once and put in each row's id.
TEST_ROW_ACTION.same_for_every_row = True


def _form_model_id() -> int | None:
    raw = request.form.get("id", "").strip()
    return parse_id(raw) if raw else None


def describe_test(outcome: dict) -> tuple[str, str]:
    """A sentence and a flash category for a connection test's outcome."""
    if outcome["error"] is None:
        return (
            _(
                "Connection works: HTTP %(status)s in %(ms)s ms.",
                status=outcome["status"],
                ms=f"{outcome['latency_ms']:,.0f}",
            ),
            "success",
        )
    return _("Connection failed: %(error)s", error=outcome["error"]), "error"


class ModelToolsMixin:
    """JSON helpers for the model form and a Test button on each row (admins only)."""

    def _refuse(self):
        return jsonify({"error": _("Only administrators can do this.")}), 403

    @expose("/endpoint-models.json", methods=("POST",))
    def endpoint_models_json(self):
        """The model names the typed endpoint lists, for the model-name picker."""
        if not is_admin():
            return self._refuse()
        try:
            names = model_service.endpoint_models(
                request.form.get("base_url"), request.form.get("new_api_key"), _form_model_id()
            )
        except LLMAdminError as exc:
            return jsonify({"error": str(exc)}), 422
        message = (
            _("%(count)s model(s) found: pick one in the model name field.", count=len(names))
            if names
            else _("The endpoint lists no models: type the model name.")
        )
        return jsonify({"models": names, "message": message})

    @expose("/probe.json", methods=("POST",))
    def probe_json(self):
        """Test the typed URL, key and model name without saving anything."""
        if not is_admin():
            return self._refuse()
        try:
            outcome = model_service.probe_connection(
                request.form.get("base_url"),
                request.form.get("new_api_key"),
                request.form.get("model_name"),
                _form_model_id(),
            )
        except LLMAdminError as exc:
            return jsonify({"ok": False, "message": str(exc)}), 422
        message, category = describe_test(outcome)
        return jsonify({"ok": category == "success", "message": message})

    @expose("/test/", methods=("POST",))
    def test_view(self):
        """Test one saved model now (the row's button) and show the result."""
        back = get_redirect_target() or self.get_url(".index_view")
        if not is_admin():
            flash(_("Only administrators can do this."), "error")
            return redirect(back)
        model_id = parse_id(request.form.get("id"))
        try:
            outcome = model_service.test_connection(model_id)
        except LLMAdminError as exc:
            flash(str(exc), "error")
            return redirect(back)
        audit.record("action:test", self.endpoint, str(model_id), "Test connection on 1 row(s)")
        flash(*describe_test(outcome))
        return redirect(back)
