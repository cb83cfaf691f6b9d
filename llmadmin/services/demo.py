"""Demo data: an admin account and a simulated model, created only if missing."""

from __future__ import annotations

from sqlalchemy import select

from llmadmin.extensions import db
from llmadmin.models import LLMModel
from llmadmin.services.llm_models import validate_base_url
from llmadmin.services.people import create_user

SIMULATED_NAME = "Simulated model (demo, no API key)"


def seed_demo(simulator_url: str, admin_email: str, admin_password: str) -> None:
    """Create or refresh the demo admin and the simulated model."""
    admin = create_user(admin_email, admin_password, name="Demo Admin", admin=True)
    url = validate_base_url(simulator_url)
    model = db.session.execute(
        select(LLMModel).where(LLMModel.name == SIMULATED_NAME)
    ).scalar_one_or_none()
    if model is None:
        model = LLMModel(
            name=SIMULATED_NAME,
            model_name="sim-chat",
            simulated=True,
            maintainer_id=admin.id,
            max_concurrency=32,
            rpm_limit=0,
            timeout_seconds=30,
            stream=True,
            enabled=True,
            base_url=url,
        )
        db.session.add(model)
    model.base_url = url
    db.session.commit()
