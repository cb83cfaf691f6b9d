"""The LLM Models panel through its forms: CRUD, the encrypted key, validation."""

from __future__ import annotations

import pytest

from llmadmin import crypto
from llmadmin.extensions import db
from llmadmin.models import LLMModel
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    flashes,
    make_task,
    protected_urls,
    snapshot,
    text,
)
from tests.conftest import post_form

API_KEY = "sk-live-0123456789abcdefSECRET"
MASKED = "sk-…CRET"


def model_form(**overrides) -> dict:
    form = {
        "name": "DeepSeek",
        "base_url": "https://api.deepseek.com/v1",
        "new_api_key": API_KEY,
        "model_name": "deepseek-chat",
        "enabled": "y",
        "temperature": "0.7",
        "max_tokens": "1024",
        "timeout_seconds": "60",
        "max_concurrency": "8",
        "rpm_limit": "0",
        "max_attempts": "3",
        "breaker_threshold": "5",
        "breaker_cooldown_seconds": "30",
        "price_input_per_1k": "",
        "price_output_per_1k": "",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def stored_models() -> list[LLMModel]:
    db.session.expire_all()
    return db.session.query(LLMModel).order_by(LLMModel.id).all()


@pytest.fixture
def keyed_model(admin_client):
    """A model created through the form with API_KEY."""
    response = post_form(
        admin_client, "/admin/llmmodel/new/", model_form(temperature="0.2", timeout_seconds="30")
    )
    assert response.status_code == 302, text(response)[:3000]
    (model,) = stored_models()
    return model


def test_create_model_stores_the_key_encrypted(keyed_model, admin_user):
    row = snapshot(keyed_model)
    assert row["name"] == "DeepSeek" and row["base_url"] == "https://api.deepseek.com/v1"
    assert row["max_concurrency"] == 8 and row["enabled"] is True
    assert row["temperature"] == 0.2 and row["timeout_seconds"] == 30.0
    assert API_KEY not in (row["api_key_encrypted"] or "")
    assert crypto.decrypt(row["api_key_encrypted"]) == API_KEY
    raw = db.session.execute(db.text("SELECT api_key_encrypted FROM llm_model")).scalar_one()
    assert API_KEY not in raw


def test_base_url_is_normalised(admin_client, admin_user):
    post_form(
        admin_client, "/admin/llmmodel/new/", model_form(base_url="  http://localhost:11434/v1/ ")
    )
    assert stored_models()[0].base_url == "http://localhost:11434/v1"


def test_edit_without_typing_a_key_keeps_it(admin_client, keyed_model):
    before = snapshot(keyed_model)["api_key_encrypted"]
    response = post_form(
        admin_client,
        f"/admin/llmmodel/edit/?id={keyed_model.id}",
        model_form(name="DeepSeek V3", new_api_key="", max_concurrency="2"),
    )
    assert response.status_code == 302
    row = snapshot(keyed_model)
    assert row["name"] == "DeepSeek V3" and row["max_concurrency"] == 2
    assert row["api_key_encrypted"] == before


def test_edit_with_a_new_key_replaces_it(admin_client, keyed_model):
    post_form(
        admin_client,
        f"/admin/llmmodel/edit/?id={keyed_model.id}",
        model_form(new_api_key="sk-another-key-9876"),
    )
    assert crypto.decrypt(snapshot(keyed_model)["api_key_encrypted"]) == "sk-another-key-9876"


def test_delete_model_keeps_its_tasks(admin_client, keyed_model, admin_user):
    task = make_task(admin_user, keyed_model)
    response = post_form(
        admin_client, "/admin/llmmodel/delete/", {"id": str(keyed_model.id)}, follow_redirects=True
    )
    assert response.status_code == 200
    assert "Kept 1 task(s)" in flashes(text(response))
    assert stored_models() == []
    assert snapshot(task)["model_id"] is None


def test_bulk_delete_models(admin_client, keyed_model, sim_model, admin_user):
    task = make_task(admin_user, sim_model)
    response = post_form(
        admin_client,
        "/admin/llmmodel/action/",
        {"action": "delete", "rowid": [str(keyed_model.id), str(sim_model.id)]},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "2 model(s) deleted" in flashes(text(response))
    assert stored_models() == []
    assert snapshot(task)["model_id"] is None


def test_enable_disable_and_test_actions(admin_client, sim_model):
    response = post_form(
        admin_client,
        "/admin/llmmodel/action/",
        {"action": "disable", "rowid": str(sim_model.id)},
        follow_redirects=True,
    )
    assert "1 model(s) disabled" in flashes(text(response))
    assert snapshot(sim_model)["enabled"] is False
    post_form(
        admin_client, "/admin/llmmodel/action/", {"action": "enable", "rowid": str(sim_model.id)}
    )
    assert snapshot(sim_model)["enabled"] is True
    response = post_form(
        admin_client,
        "/admin/llmmodel/action/",
        {"action": "test", "rowid": [str(sim_model.id), "424242"]},
        follow_redirects=True,
    )
    assert "Connection test queued for 1 model(s)" in flashes(text(response))


def test_action_with_a_malformed_row_id_is_404(admin_client, sim_model):
    response = post_form(
        admin_client, "/admin/llmmodel/action/", {"action": "disable", "rowid": "x"}
    )
    assert response.status_code == 404
    assert snapshot(sim_model)["enabled"] is True


# --- the key is never rendered ---------------------------------------------------------------


def test_key_is_masked_in_list_and_details(admin_client, keyed_model):
    for url in ("/admin/llmmodel/", f"/admin/llmmodel/details/?id={keyed_model.id}"):
        page = text(admin_client.get(url))
        assert MASKED in page, url
        assert API_KEY not in page, url


def test_key_is_never_rendered_anywhere(app, admin_client, keyed_model, admin_user):
    make_task(admin_user, keyed_model)
    for method, url in protected_urls(app):
        if method != "GET" or url.startswith(("/admin/rq/", "/downloads/")):
            continue
        response = admin_client.get(url, query_string={"id": str(keyed_model.id)})
        page = response.get_data(as_text=True)
        assert API_KEY not in page, url
        assert API_KEY[3:-4] not in page, url
    edit = text(admin_client.get(f"/admin/llmmodel/edit/?id={keyed_model.id}"))
    assert 'name="new_api_key"' in edit


def test_member_sees_only_the_masked_key(admin_client, keyed_model, app, member_user):
    from tests.admin.helpers import make_client
    from tests.conftest import login

    member = make_client(app)
    login(member, "member@example.com", "member-password")
    page = text(member.get("/admin/llmmodel/"))
    assert MASKED in page and API_KEY not in page


def test_key_is_not_echoed_back_when_the_form_is_rejected(admin_client, admin_user):
    response = post_form(admin_client, "/admin/llmmodel/new/", model_form(base_url="ftp://x"))
    assert response.status_code == 200
    assert API_KEY not in text(response)
    assert stored_models() == []


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "", "The display name is required."),
        ("base_url", "", "The base URL is required."),
        ("model_name", "", "The model name is required."),
        ("base_url", "ftp://x", "must start with http:// or https://"),
        ("base_url", "not a url", "must not contain spaces"),
        ("base_url", "http://", "has no host name"),
        ("base_url", "https://user:pw@api.example.com/v1", "not in the URL"),
        ("base_url", "http://bad_host/v1", "is not valid"),
        ("base_url", "http://example.com:99999/v1", "invalid port"),
        ("max_concurrency", "-1", "Max concurrent requests must be between 1 and 1024."),
        ("max_concurrency", "", "Max concurrent requests is required."),
        ("rpm_limit", "-5", "Requests per minute must be between 0 and 1000000."),
        ("timeout_seconds", "0", "Timeout must be between 1 and 3600."),
        ("temperature", "abc", "Not a valid float value."),
        ("max_attempts", "0", "Max attempts must be between 1 and 20."),
        ("price_input_per_1k", "-0.5", "Input price must be between 0 and 10000."),
        ("name", "Deep\x00Seek", "NUL byte"),
        ("new_api_key", "sk-\x00", "NUL byte"),
    ],
)
def test_invalid_field_is_reported_next_to_it_and_nothing_saved(
    admin_client, admin_user, field, value, message
):
    response = post_form(admin_client, "/admin/llmmodel/new/", model_form(**{field: value}))
    assert response.status_code == 200
    errors = field_errors(text(response), field)
    assert any(message in e for e in errors), errors
    assert stored_models() == []


def test_invalid_edit_changes_nothing(admin_client, keyed_model):
    before = snapshot(keyed_model)
    response = post_form(
        admin_client,
        f"/admin/llmmodel/edit/?id={keyed_model.id}",
        model_form(name="Renamed", rpm_limit="-5", new_api_key="sk-should-not-be-stored"),
    )
    assert response.status_code == 200
    assert field_errors(text(response), "rpm_limit")
    assert snapshot(keyed_model) == before
