"""The running API against its OpenAPI document (schemathesis): every operation, with valid
and invalid input, answers only documented statuses, with bodies and headers that match.

A few examples per operation keep this under a minute; the data it needs (a model, tasks,
a finished download) is made first, so success answers are checked as well as errors.
"""

from __future__ import annotations

import io

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llmadmin.services import batches
from llmadmin.services import downloads as download_service
from llmadmin.services.api_tokens import create_token
from tests.api.conftest import bearer
from tests.conftest import run_batch_jobs

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(app, admin_user, sim_model):
    app.config["API_RATE_PER_MINUTE"] = 0  # thousands of calls in a few seconds
    token = create_token(admin_user.id, "conformance")[1]
    client = app.test_client()
    ids = client.post(
        "/api/v1/tasks",
        json={"tasks": [{"prompt": f"p{i}", "model": "Sim"} for i in range(3)]},
        headers=bearer(token),
    ).get_json()["ids"]
    download = client.post("/api/v1/downloads", json={"format": "csv"}, headers=bearer(token))
    download_service.run_export(download.get_json()["id"])
    lines = b"prompt,model,custom_id\nHello,Sim,a\nBye,Nope,b\n"
    batches.create_batch(
        batches.store_upload(io.BytesIO(lines), "b.csv", admin_user.id), admin_user.id
    )
    run_batch_jobs()
    app.config["CONFORMANCE_TOKEN"] = token
    app.config["CONFORMANCE_IDS"] = ids

    def wsgi(environ, start_response):  # each request in its own app context, as a server
        with app.app_context():
            return list(app.wsgi_app(environ, start_response))

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi)


EXAMPLES = 6  # per operation and mode: the whole run stays well under a minute


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(api_schema, app, mode):
    headers = bearer(app.config["CONFORMANCE_TOKEN"])
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 22  # every documented operation (see the route test below)

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()


def test_the_document_is_openapi_3_1_and_covers_every_route(client, app):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    documented = {
        ("/api/v1" + path.replace("{", "<int:").replace("}", ">"), method.upper())
        for path, item in document["paths"].items()
        for method in item
    }
    served = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        and rule.endpoint not in {"api.static", "api.openapi_json", "api.docs"}
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == served


def test_the_docs_page_uses_only_its_own_assets(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/api/v1/static/docs.js").status_code == 200


def test_the_docs_page_links_back_mentions_the_gateway_and_describes_limit(client):
    """QA: no way back to the admin, no word of /v1, an empty meaning for ``limit``, and
    Markdown backticks shown literally (docs.js now renders `code` as <code>)."""
    html = client.get("/api/v1/docs").get_data(as_text=True)
    assert 'id="back-to-admin" href="/admin/"' in html
    assert 'id="gateway"' in html and "<code>/v1</code>" in html
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/v1/chat/completions" in spec["info"]["description"]
    for path in ("/tasks", "/batches"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert params["limit"].get("description"), path
    script = client.get("/api/v1/static/docs.js").get_data(as_text=True)
    assert 'split("`")' in script and 'prose("p", spec.info.description)' in script
