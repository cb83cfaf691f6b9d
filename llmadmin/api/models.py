"""Models: everyone lists them (keys masked); admins create, update, disable and test them."""

from __future__ import annotations

from flask_babel import gettext as _

from llmadmin.api import serialize
from llmadmin.api.blueprint import bp, current_person, json_body, require_admin
from llmadmin.api.schema import parse
from llmadmin.api.shapes import MODEL_INPUT, MODEL_UPDATE
from llmadmin.errors import NotFound
from llmadmin.extensions import db
from llmadmin.models import LLMModel
from llmadmin.services import audit
from llmadmin.services import llm_models as model_service


def _model(model_id: int) -> LLMModel:
    row = db.session.get(LLMModel, model_id)
    if row is None:
        raise NotFound(_("Model #%(id)s does not exist.", id=model_id))
    return row


def _json(row: LLMModel) -> dict:
    return serialize.model(row, admin=current_person().is_admin)


@bp.get("/models")
def list_models():
    """List every model (everyone may read them; keys are masked)."""
    rows = db.session.execute(db.select(LLMModel).order_by(LLMModel.id)).scalars().all()
    return {"data": [_json(r) for r in rows]}


@bp.get("/models/<int:model_id>")
def get_model(model_id: int):
    """Return one model."""
    return _json(_model(model_id))


@bp.post("/models")
def create_model():
    """Create a model with the model form's rules (admins); 201 with the row, key masked."""
    require_admin()
    fields = parse(json_body(), MODEL_INPUT)
    return _json(model_service.save_model(fields)), 201


@bp.patch("/models/<int:model_id>")
def update_model(model_id: int):
    """Change some fields of a model (admins); absent fields are kept."""
    require_admin()
    _model(model_id)
    fields = parse(json_body(), MODEL_UPDATE)
    return _json(model_service.save_model(fields, model_id))


@bp.post("/models/<int:model_id>/disable")
def disable_model(model_id: int):
    """Disable a model (admins): it runs nothing until enabled again."""
    return _set_enabled(model_id, False)


@bp.post("/models/<int:model_id>/enable")
def enable_model(model_id: int):
    """Enable a model again (admins)."""
    return _set_enabled(model_id, True)


def _set_enabled(model_id: int, enabled: bool):
    require_admin()
    _model(model_id)
    if model_service.set_enabled([model_id], enabled):
        audit.record(
            "enable" if enabled else "disable", "llm_model", model_id, "Changed through the API"
        )
    db.session.expire_all()
    return _json(_model(model_id))


@bp.post("/models/<int:model_id>/test")
def test_model(model_id: int):
    """Queue a connection test (admins); 202. The result appears on the model (last_test_*)."""
    require_admin()
    _model(model_id)
    model_service.request_connection_test([model_id])
    return {"queued": True, "model_id": model_id}, 202
