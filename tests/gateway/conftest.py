"""The gateway served over a real socket (werkzeug, threaded, 127.0.0.1), the official
``openai`` SDK as the client, the simulated endpoint as the model and, where a call must
run, real worker processes (``tests/integration``'s ``workers``)."""

from __future__ import annotations

import threading

import openai
import pytest
from werkzeug.serving import make_server

from llmadmin.extensions import db
from llmadmin.models import LLMModel
from llmadmin.services.api_tokens import create_token
from tests.integration.conftest import simulator, workers  # noqa: F401  (fixtures)


@pytest.fixture
def server(app):
    """Serve the test app on a free port of 127.0.0.1; yield its root URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def token(member_user) -> str:
    return create_token(member_user.id, "sdk")[1]


@pytest.fixture
def client(server, token) -> openai.OpenAI:
    """The official SDK, unchanged, pointed at the gateway (no SDK retries: one call, one task)."""
    return openai.OpenAI(base_url=f"{server}/v1", api_key=token, max_retries=0, timeout=60)


@pytest.fixture
def sim_row(app, simulator):  # noqa: F811
    """An enabled model row named "Sim" on the simulated endpoint (one attempt per call)."""
    model = LLMModel(
        name="Sim",
        base_url=simulator.url,
        model_name="sim-chat",
        simulated=True,
        max_attempts=1,
        max_concurrency=8,
    )
    db.session.add(model)
    db.session.commit()
    return model
