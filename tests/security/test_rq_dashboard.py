"""The RQ dashboard shows what RQ stores as text: our job descriptions and results are ids and
counts, and every dashboard template escapes what it interpolates (the browser side of this
is in tests/browser/test_security.py)."""

from __future__ import annotations

import re

import pytest
from rq.job import Job

from llmadmin.extensions import db
from llmadmin.models import LLMModel
from llmadmin.queues import get_queue
from tests.conftest import post_form

CRAFTED = "<b id=wk>bold</b><img src=x onerror=alert(1)>"
DASHBOARD_PAGES = (
    "/admin/rq/",
    "/admin/rq/0/view/queues",
    "/admin/rq/0/view/workers",
    "/admin/rq/0/view/jobs",
    "/admin/rq/0/view/jobs/llm/failed/8/asc/1",
)


def only_jobs(r) -> list[Job]:
    queue = get_queue("llm")
    return [Job.fetch(job_id, connection=queue.connection) for job_id in queue.get_job_ids()]


def test_every_dashboard_template_escapes_what_it_interpolates(admin_client, r):
    job = get_queue("llm").enqueue("llmadmin.jobs.tasks.test_model_connection", 1)
    pages = [*DASHBOARD_PAGES, f"/admin/rq/0/view/job/{job.id}"]
    for url in pages:
        html = admin_client.get(url).get_data(as_text=True)
        templates = re.findall(
            r'<script name="[^"]+" type="text/template">(.*?)</script>', html, re.S
        )
        assert "<%=" not in "".join(templates), f"{url}: an unescaped <%= interpolation"
    workers = admin_client.get("/admin/rq/0/view/workers").get_data(as_text=True)
    assert "<%- d.current_job.call_string %>" in workers  # our override is the one served


def test_an_all_matching_bulk_job_is_described_by_numbers_only(app, admin_client, sim_model, r):
    response = post_form(
        admin_client,
        "/admin/llmmodel/action/",
        {"action": "disable", "all_matching": "1", "list_args": ""},
        token_from="/admin/llmmodel/",
    )
    assert response.status_code == 302
    [job] = only_jobs(r)
    assert re.fullmatch(r"bulk operation #\d+", job.description)


@pytest.fixture
def failing_endpoint(monkeypatch):
    """A model whose endpoint answers with an HTML body (an internal service, say)."""
    from llmadmin.errors import LLMError
    from llmadmin.services import llm_models

    def fail(request):
        raise LLMError(f"HTTP 500: {CRAFTED}", kind="server_error", status_code=500)

    monkeypatch.setattr("llmadmin.llm.chat_blocking", fail)
    return llm_models


def test_a_connection_test_job_returns_ids_and_numbers_not_the_reply(app, failing_endpoint):
    from llmadmin.jobs.tasks import test_model_connection

    model = LLMModel(name=CRAFTED, base_url="http://127.0.0.1:9/v1", model_name=CRAFTED)
    db.session.add(model)
    db.session.commit()
    result = test_model_connection(model.id)
    assert set(result) == {"model_id", "status", "latency_ms"}
    assert CRAFTED not in repr(result)
