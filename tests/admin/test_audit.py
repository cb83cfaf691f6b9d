"""Audit entries for form changes, row actions and deletes; secrets never stored."""

import json

from llmadmin.extensions import db
from llmadmin.models import AuditEntry, LLMModel, Task
from llmadmin.services import tasks as svc
from tests.conftest import post_form


def _entries(**filters):
    stmt = db.select(AuditEntry).filter_by(**filters).order_by(AuditEntry.id)
    return db.session.execute(stmt).scalars().all()


def test_model_create_and_edit_are_audited_with_masked_key(admin_client, app):
    r = post_form(
        admin_client,
        "/admin/llmmodel/new/",
        {
            "name": "DeepSeek",
            "base_url": "https://api.deepseek.com/v1",
            "new_api_key": "sk-supersecret-123456",
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
        },
        token_from="/admin/llmmodel/new/",
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    model = db.session.execute(db.select(LLMModel)).scalar_one()
    created = _entries(action="create", object_type="llm_model")
    assert len(created) == 1 and created[0].person_label.startswith("Ada Admin")
    changes = json.loads(created[0].changes)
    assert changes["api_key_encrypted"] == ["(hidden)", "(changed)"]
    assert changes["name"] == [None, "DeepSeek"]
    everything = " ".join((e.changes or "") + (e.summary or "") for e in _entries())
    assert "sk-supersecret-123456" not in everything

    post_form(
        admin_client,
        f"/admin/llmmodel/edit/?id={model.id}",
        {
            "name": "DeepSeek V3",
            "base_url": "https://api.deepseek.com/v1",
            "new_api_key": "",
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
        },
        token_from=f"/admin/llmmodel/edit/?id={model.id}",
    )
    updated = _entries(action="update", object_type="llm_model")
    assert len(updated) == 1
    assert json.loads(updated[0].changes)["name"] == ["DeepSeek", "DeepSeek V3"]
    assert "api_key_encrypted" not in json.loads(updated[0].changes)  # key kept, not changed


def test_row_actions_and_deletes_are_audited(admin_client, app, sim_model):
    ids = [
        svc.create_task(prompt=f"p{i}", model_id=sim_model.id, creator_id=None, run=False).id
        for i in range(3)
    ]
    r = post_form(
        admin_client,
        "/admin/task/action/",
        {"action": "cancel", "rowid": [str(i) for i in ids]},
        token_from="/admin/task/",
    )
    assert r.status_code == 302
    entry = _entries(action="action:cancel")[0]
    assert entry.object_type == "task" and entry.object_id == ",".join(map(str, ids))
    assert "3 row(s)" in entry.summary and entry.ip == "127.0.0.1"

    post_form(admin_client, "/admin/task/delete/", {"id": str(ids[0])}, token_from="/admin/task/")
    assert db.session.execute(db.select(Task.id).where(Task.id == ids[0])).first() is None
    deleted = _entries(action="delete", object_type="task")
    assert [e.object_id for e in deleted] == [str(ids[0])]


def test_audit_log_is_read_only(admin_client, app):
    from llmadmin.services.audit import record

    record("login", summary="x")
    entry_id = _entries()[0].id
    assert admin_client.get("/admin/audit/").status_code == 200
    assert admin_client.get(f"/admin/audit/edit/?id={entry_id}").status_code in (302, 403, 404)
    r = post_form(
        admin_client, "/admin/audit/delete/", {"id": str(entry_id)}, token_from="/admin/audit/"
    )
    assert r.status_code in (302, 403, 404, 405)
    assert db.session.get(AuditEntry, entry_id) is not None


def test_members_cannot_see_the_audit_log(member_client):
    assert member_client.get("/admin/audit/").status_code == 403
