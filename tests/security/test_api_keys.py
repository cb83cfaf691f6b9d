"""API keys: rotation under a new ENCRYPTION_KEY, and never in full in jobs, logs, errors, audit, exports."""

from __future__ import annotations

import logging
import zipfile

import httpx
import pytest
from cryptography.fernet import Fernet

from llmadmin import crypto
from llmadmin.engine.executor import run_chunk
from llmadmin.extensions import db
from llmadmin.models import AuditEntry, LLMModel, Task
from llmadmin.models.task import FAILURE
from llmadmin.services import llm_models as model_service
from llmadmin.services import tasks as task_service
from tests.admin.test_llm_models import model_form
from tests.conftest import post_form
from tests.security.conftest import redis_dump

API_KEY = "sk-proj-LEAKCHECK-0123456789abcdefghij"

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
LOST_KEY = Fernet.generate_key().decode()


def add_model(
    name: str, key: str | None, fernet_key: str, base_url: str = "http://127.0.0.1:9/v1"
) -> LLMModel:
    token = crypto.encrypt(key, {"ENCRYPTION_KEY": fernet_key}) if key else None
    model = LLMModel(
        name=name,
        base_url=base_url,
        model_name="m",
        api_key_encrypted=token,
        max_concurrency=2,
        max_attempts=1,
    )
    db.session.add(model)
    db.session.commit()
    return model


# --- rotation ------------------------------------------------------------------------------


def test_rotation_re_encrypts_every_key_under_the_first_key(app, runner):
    a = add_model("A", "sk-a-0000000000000001", OLD_KEY)
    b = add_model("B", "sk-b-0000000000000002", OLD_KEY)
    add_model("No key", None, OLD_KEY)
    app.config["ENCRYPTION_KEY"] = f"{NEW_KEY},{OLD_KEY}"

    result = runner.invoke(args=["rotate-encryption-key"])

    assert result.exit_code == 0, result.output
    assert "2 key(s) re-encrypted" in result.output and "1 model(s) without a key" in result.output
    db.session.expire_all()
    only_new = {"ENCRYPTION_KEY": NEW_KEY}
    assert (
        crypto.decrypt(db.session.get(LLMModel, a.id).api_key_encrypted, only_new)
        == "sk-a-0000000000000001"
    )
    assert (
        crypto.decrypt(db.session.get(LLMModel, b.id).api_key_encrypted, only_new)
        == "sk-b-0000000000000002"
    )
    [entry] = (
        db.session.execute(
            db.select(AuditEntry).where(AuditEntry.action == "rotate_encryption_key")
        )
        .scalars()
        .all()
    )
    assert entry.person_label == "cli" and "re-encrypted: 2" in entry.summary
    assert "sk-a-0000000000000001" not in (entry.summary or "") + (entry.changes or "")


def test_an_undecryptable_key_is_reported_and_kept_unchanged(app, runner):
    good = add_model("Good", "sk-good-000000000001", OLD_KEY)
    lost = add_model("Lost", "sk-lost-000000000002", LOST_KEY)
    lost_token = lost.api_key_encrypted
    app.config["ENCRYPTION_KEY"] = f"{NEW_KEY},{OLD_KEY}"

    result = runner.invoke(args=["rotate-encryption-key"])

    assert result.exit_code == 1
    assert "1 key(s) re-encrypted" in result.output
    assert f"#{lost.id} Lost" in result.output and "left unchanged" in result.output
    db.session.expire_all()
    assert db.session.get(LLMModel, lost.id).api_key_encrypted == lost_token  # not lost
    assert crypto.decrypt(lost_token, {"ENCRYPTION_KEY": LOST_KEY}) == "sk-lost-000000000002"
    assert (
        crypto.decrypt(
            db.session.get(LLMModel, good.id).api_key_encrypted, {"ENCRYPTION_KEY": NEW_KEY}
        )
        == "sk-good-000000000001"
    )


def test_rotate_of_an_unreadable_token_raises_a_clear_error():
    token = crypto.encrypt("sk-x", {"ENCRYPTION_KEY": LOST_KEY})
    with pytest.raises(crypto.SecretUnreadable):
        crypto.rotate(token, {"ENCRYPTION_KEY": NEW_KEY})


# --- where a key must never appear in full --------------------------------------------------


def test_jobs_carry_ids_not_keys(app, r, admin_user):
    model = add_keyed_model(app)
    task = task_service.create_task(prompt="hi", model_id=model.id, creator_id=admin_user.id)
    assert model_service.request_connection_test([model.id]) == 1
    from llmadmin.queues import get_queue

    jobs = get_queue("llm").get_jobs()
    assert len(jobs) == 2
    for job in jobs:
        assert all(isinstance(a, (int, str, list)) for a in job.args), job.args
        assert API_KEY not in repr(job.args) + repr(job.kwargs) + (job.description or "")
    assert task.id in [i for job in jobs for a in job.args if isinstance(a, list) for i in a]
    dump = redis_dump(r)
    assert "execute_tasks" in dump  # the dump does see the job payloads
    assert API_KEY not in dump and API_KEY[-12:] not in dump


def add_keyed_model(app, **fields) -> LLMModel:
    model = LLMModel(
        name="Keyed",
        base_url="http://127.0.0.1:9/v1",
        model_name="m",
        api_key_encrypted=crypto.encrypt(API_KEY),
        max_concurrency=2,
        max_attempts=1,
        **fields,
    )
    db.session.add(model)
    db.session.commit()
    return model


@pytest.mark.parametrize("answer", ["echo_401", "connect_error"])
def test_a_failing_call_keeps_the_key_out_of_logs_and_the_task_error(
    app, admin_user, caplog, answer
):
    model = add_keyed_model(app)
    task = task_service.create_task(prompt="hi", model_id=model.id, creator_id=admin_user.id)
    db.session.refresh(task)

    def handler(request: httpx.Request) -> httpx.Response:
        assert (
            request.headers["Authorization"] == f"Bearer {API_KEY}"
        )  # the key does go to the provider
        if answer == "connect_error":
            raise httpx.ConnectError(f"cannot connect (sent {request.headers['Authorization']})")
        return httpx.Response(
            401, json={"error": {"message": f"Incorrect API key provided: {API_KEY}."}}
        )

    with caplog.at_level(logging.DEBUG):
        run_chunk(task.job_id, [task.id], transport=httpx.MockTransport(handler))
    db.session.expire_all()
    failed = db.session.get(Task, task.id)
    assert failed.status == FAILURE and failed.error
    assert API_KEY not in failed.error
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in repr(record.args) + str(record.exc_info)


def test_connection_test_error_and_logs_never_show_the_key(app, caplog, monkeypatch):
    import llmadmin.llm as llm

    model = add_keyed_model(app)
    real = llm.chat_blocking

    def echoing(request, transport=None):
        reply = httpx.Response(401, json={"error": {"message": f"bad key {API_KEY}"}})
        return real(request, transport=httpx.MockTransport(lambda req: reply))

    monkeypatch.setattr(llm, "chat_blocking", echoing)  # services call it through the module
    with caplog.at_level(logging.DEBUG):
        outcome = model_service.test_connection(model.id)
    assert outcome["status"] == 401 and outcome["error"]
    assert API_KEY not in outcome["error"] and API_KEY not in caplog.text
    db.session.expire_all()
    assert API_KEY not in db.session.get(LLMModel, model.id).last_test_error


def test_admin_pages_and_audit_entries_never_show_the_key(admin_client):
    response = post_form(admin_client, "/admin/llmmodel/new/", model_form(new_api_key=API_KEY))
    assert response.status_code == 302
    model = db.session.execute(db.select(LLMModel)).scalar_one()
    for url in (
        "/admin/llmmodel/",
        f"/admin/llmmodel/details/?id={model.id}",
        f"/admin/llmmodel/edit/?id={model.id}",
    ):
        page = admin_client.get(url).get_data(as_text=True)
        assert API_KEY not in page, url
    assert "sk-…ghij" in admin_client.get("/admin/llmmodel/").get_data(as_text=True)
    post_form(
        admin_client, f"/admin/llmmodel/edit/?id={model.id}", model_form(new_api_key=API_KEY + "2")
    )
    db.session.expire_all()
    audit_rows = db.session.execute(db.select(AuditEntry)).scalars().all()
    assert any(e.object_type == "llm_model" for e in audit_rows)
    dump = " ".join(f"{e.summary} {e.changes}" for e in audit_rows)
    assert "(changed)" in dump
    assert API_KEY not in dump


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_exports_of_the_models_list_mask_the_key(app, admin_user, tmp_path, fmt):
    from llmadmin.jobs.exports import export_download
    from llmadmin.models import Download
    from llmadmin.services import downloads as download_service
    from llmadmin.services.selections import Selection

    app.config["DOWNLOAD_DIR"] = str(tmp_path)
    model = add_keyed_model(app)
    row, _ = download_service.create_export(
        "llm_models", fmt, Selection("llmmodel", admin_user.id, ids=(model.id,))
    )
    export_download(row.id)
    db.session.expire_all()
    row = db.session.get(Download, row.id)
    assert row.status == "SUCCESS", row.error
    path = tmp_path / row.storage_path
    if fmt == "xlsx":
        with zipfile.ZipFile(path) as archive:
            content = "".join(
                archive.read(n).decode("utf-8", "replace") for n in archive.namelist()
            )
    else:
        content = path.read_text(encoding="utf-8-sig")
    assert "Keyed" in content and "sk-…ghij" in content
    assert API_KEY not in content


# --- issue 13, finding 6: a stored key does not follow a changed host -----------------------


def saved_model(admin_client) -> LLMModel:
    assert (
        post_form(admin_client, "/admin/llmmodel/new/", model_form(new_api_key=API_KEY)).status_code
        == 302
    )
    return db.session.execute(db.select(LLMModel)).scalar_one()


def edit(admin_client, model, **fields):
    url = f"/admin/llmmodel/edit/?id={model.id}"
    return post_form(admin_client, url, model_form(**{"new_api_key": "", **fields}), token_from=url)


def stored_url(model) -> str:
    db.session.expire_all()
    return db.session.get(LLMModel, model.id).base_url


@pytest.mark.parametrize(
    "new_url",
    [
        "https://collector.evil.example/v1",  # another host
        "https://api.deepseek.com:8443/v1",  # another port
        "http://api.deepseek.com/v1",  # another scheme
    ],
)
def test_changing_only_the_address_does_not_carry_the_stored_key_there(admin_client, new_url):
    model = saved_model(admin_client)
    response = edit(admin_client, model, base_url=new_url)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Type the API key again" in page
    assert stored_url(model) == "https://api.deepseek.com/v1"  # nothing saved: no test can send it


def test_a_new_path_on_the_same_host_keeps_the_key(admin_client):
    model = saved_model(admin_client)
    assert edit(admin_client, model, base_url="https://api.deepseek.com/beta").status_code == 302
    assert stored_url(model) == "https://api.deepseek.com/beta"


def test_typing_the_key_again_allows_the_new_host(admin_client):
    model = saved_model(admin_client)
    response = edit(
        admin_client,
        model,
        base_url="https://api.other.example/v1",
        new_api_key="sk-new-key-123456",
    )
    assert response.status_code == 302
    assert stored_url(model) == "https://api.other.example/v1"


def test_keeping_the_key_needs_the_new_host_named_and_is_audited(admin_client):
    model = saved_model(admin_client)
    wrong = edit(
        admin_client,
        model,
        base_url="https://api.other.example:8443/v1",
        keep_key_for_host="api.deepseek.com",
    )
    assert wrong.status_code == 200 and "api.other.example:8443" in wrong.get_data(as_text=True)
    response = edit(
        admin_client,
        model,
        base_url="https://api.other.example:8443/v1",
        keep_key_for_host="api.other.example:8443",
    )
    assert response.status_code == 302
    assert stored_url(model) == "https://api.other.example:8443/v1"
    [entry] = db.session.execute(
        db.select(AuditEntry).where(AuditEntry.action == "api_key_new_host")
    ).scalars()
    assert "api.deepseek.com -> api.other.example:8443" in entry.summary
    assert API_KEY not in (entry.summary or "")
