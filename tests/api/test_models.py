"""Models over the API: everyone lists (keys masked); admins create, update, disable, test."""

from __future__ import annotations

from unittest import mock

from sqlalchemy import select

from llmadmin import queues
from llmadmin.extensions import db
from llmadmin.models import LLMModel
from tests.api.conftest import assert_error

NEW = {
    "name": "DeepSeek",
    "base_url": "https://api.deepseek.com/v1",
    "model_name": "deepseek-chat",
    "api_key": "sk-secret-value-1234",
    "max_concurrency": 16,
    "temperature": 0.3,
}


def test_admin_creates_a_model_201_key_masked(admin_api):
    response = admin_api.post("/api/v1/models", json=NEW)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["name"] == "DeepSeek" and body["max_concurrency"] == 16
    assert "sk-secret-value-1234" not in response.get_data(as_text=True)
    assert body["api_key"].endswith("1234") and body["api_key"] != NEW["api_key"]
    row = db.session.get(LLMModel, body["id"])
    assert row.api_key_encrypted and "sk-secret" not in row.api_key_encrypted


def test_members_read_models_but_may_not_change_them(member_api, sim_model):
    listing = member_api.get("/api/v1/models").get_json()["data"]
    assert [m["name"] for m in listing] == ["Sim"]
    assert_error(member_api.post("/api/v1/models", json=NEW), 403, "forbidden")
    assert_error(member_api.patch(f"/api/v1/models/{sim_model.id}", json={"rpm_limit": 5}), 403)
    assert_error(member_api.post(f"/api/v1/models/{sim_model.id}/disable"), 403)
    assert_error(member_api.post(f"/api/v1/models/{sim_model.id}/test"), 403)


def test_the_forms_rules_apply(admin_api, sim_model):
    cases = [
        ({**NEW, "name": "Sim"}, "name", "already called"),
        ({**NEW, "base_url": "ftp://x"}, "base_url", "http"),
        ({**NEW, "base_url": "http://169.254.169.254/v1"}, "base_url", None),
        ({**NEW, "max_concurrency": 0}, "max_concurrency", None),
        ({**NEW, "temperature": "hot"}, "temperature", None),
        ({**NEW, "max_tokens": 1.5}, "max_tokens", None),
        ({**NEW, "colour": "red"}, "colour", None),
        ({k: v for k, v in NEW.items() if k != "model_name"}, "model_name", None),
        ({**NEW, "name": "  "}, "name", None),
    ]
    for body, field, words in cases:
        error = assert_error(admin_api.post("/api/v1/models", json=body), 422)
        assert error["field"] == field, (body, error)
        if words:
            assert words in error["message"]
    assert db.session.execute(select(LLMModel.name)).scalars().all() == ["Sim"]


def test_update_disable_enable(admin_api, sim_model):
    response = admin_api.patch(f"/api/v1/models/{sim_model.id}", json={"rpm_limit": 60})
    assert response.status_code == 200 and response.get_json()["rpm_limit"] == 60
    assert admin_api.post(f"/api/v1/models/{sim_model.id}/disable").get_json()["enabled"] is False
    assert admin_api.post(f"/api/v1/models/{sim_model.id}/enable").get_json()["enabled"] is True
    assert_error(admin_api.patch("/api/v1/models/999", json={}), 404)


def test_moving_the_url_keeps_the_key_only_when_confirmed(admin_api):
    model_id = admin_api.post("/api/v1/models", json=NEW).get_json()["id"]
    url = f"/api/v1/models/{model_id}"
    error = assert_error(admin_api.patch(url, json={"base_url": "https://evil.example/v1"}), 422)
    assert "API key" in error["message"]
    response = admin_api.patch(
        url, json={"base_url": "https://new.example/v1", "keep_key_for_host": "new.example"}
    )
    assert response.status_code == 200


def test_connection_test_is_queued(admin_api, sim_model):
    with mock.patch.object(queues, "enqueue") as enqueue:
        response = admin_api.post(f"/api/v1/models/{sim_model.id}/test")
    assert response.status_code == 202
    assert enqueue.call_args.args[:2] == ("llmadmin.jobs.tasks.test_model_connection", sim_model.id)


def test_admin_form_refuses_a_duplicate_name(admin_client, sim_model):
    from tests.conftest import post_form

    page = post_form(
        admin_client,
        "/admin/llmmodel/new/",
        {
            "name": "Sim",
            "base_url": "http://127.0.0.1:8/v1",
            "model_name": "m",
            "temperature": "0.5",
            "max_tokens": "10",
            "timeout_seconds": "10",
            "max_concurrency": "1",
            "rpm_limit": "0",
            "max_attempts": "1",
            "breaker_threshold": "1",
            "breaker_cooldown_seconds": "1",
        },
        token_from="/admin/llmmodel/new/",
    ).get_data(as_text=True)
    assert "already called" in page
    assert db.session.execute(select(LLMModel.name)).scalars().all() == ["Sim"]
