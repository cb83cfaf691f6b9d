"""The model form's helpers: the endpoint's models, testing typed settings, stale test results."""

from __future__ import annotations

from datetime import datetime

import pytest

from llmadmin import crypto
from llmadmin.errors import LLMError, ValidationError
from llmadmin.extensions import db
from llmadmin.services import llm_models as model_service


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def fake_list(url, key, **kwargs):
        seen.append((url, key))
        return ["sim-chat"]

    monkeypatch.setattr(model_service.llm, "list_models", fake_list)
    return seen


def test_lists_with_the_typed_key(app, calls):
    assert model_service.endpoint_models("http://127.0.0.1:8099/v1/", " sk-typed ", None) == [
        "sim-chat"
    ]
    assert calls == [("http://127.0.0.1:8099/v1", "sk-typed")]


def test_the_stored_key_is_used_for_the_same_host_only(app, sim_model, calls):
    sim_model.api_key_encrypted = crypto.encrypt("sk-stored")
    db.session.commit()
    model_service.endpoint_models("http://127.0.0.1:9/other/v1", "", sim_model.id)
    assert calls[-1][1] == "sk-stored"
    with pytest.raises(ValidationError, match="type the API key"):
        model_service.endpoint_models("http://10.1.2.3:9/v1", "", sim_model.id)
    assert len(calls) == 1  # the stored key was not sent to the other host


def test_a_blocked_address_is_refused_before_any_call(app, calls):
    with pytest.raises(ValidationError):
        model_service.endpoint_models("http://169.254.169.254/v1", "", None)
    assert calls == []


def test_a_failing_endpoint_gives_a_clear_message(app, monkeypatch):
    def fail(url, key, **kwargs):
        raise LLMError("HTTP 404 from the endpoint.", kind="bad_request")

    monkeypatch.setattr(model_service.llm, "list_models", fail)
    with pytest.raises(ValidationError, match="did not list its models: HTTP 404"):
        model_service.endpoint_models("http://127.0.0.1:9/v1", "", None)


def test_probe_needs_a_model_name(app):
    with pytest.raises(ValidationError, match="model name"):
        model_service.probe_connection("http://127.0.0.1:9/v1", "", " ", None)


def mark_tested(model):
    model.last_test_at = datetime(2026, 1, 1)
    model.last_test_status = 200
    model.last_test_latency_ms = 12.0
    db.session.commit()


@pytest.mark.parametrize(
    ("url", "key", "cleared"),
    [
        ("http://127.0.0.1:9/v1", "", False),  # nothing that matters changed
        ("http://127.0.0.1:9/v2", "", True),  # another URL
        ("http://127.0.0.1:9/v1", "sk-new", True),  # another key
    ],
)
def test_a_test_result_is_cleared_when_url_or_key_change(app, sim_model, url, key, cleared):
    mark_tested(sim_model)
    old_url = sim_model.base_url
    sim_model.base_url = url
    assert model_service.note_saved_changes(sim_model, key, old_url) is cleared
    db.session.commit()
    db.session.expire_all()
    assert (sim_model.last_test_at is None) is cleared
    assert (sim_model.last_test_status is None) is cleared
