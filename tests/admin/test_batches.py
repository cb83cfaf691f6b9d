"""The Batches panel: upload, preview, confirm; errors; scoping; one-click actions."""

from __future__ import annotations

import io
import json

from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Batch, Download, Task
from llmadmin.models.batch import BatchStatus
from llmadmin.models.task import FAILURE, QUEUED, RUNNING
from tests.conftest import csrf_token, run_batch_jobs

CSV = "name,prompt,model,custom_id\nA,Hello,Sim,a1\nB,Bye,Sim,b1\nC,Oops,Nope,c1\n"


def upload(client, data: bytes, filename="prompts.csv", name=""):
    token = csrf_token(client, "/admin/batch/new/")
    return client.post(
        "/admin/batch/new/",
        data={"csrf_token": token, "name": name, "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def confirm(client, html: str):
    import re

    upload_id = re.search(r'name="upload_id" type="hidden" value="([0-9a-f]+)"', html).group(1)
    token = csrf_token(client, "/admin/batch/new/")
    return client.post(
        "/admin/batch/confirm/",
        data={"csrf_token": token, "upload_id": upload_id, "name": "Nightly"},
    )


def test_upload_preview_confirm(member_client, sim_model):
    page = upload(member_client, CSV.encode())
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "3 line(s) read: 2 valid, 1 invalid." in html
    assert "There is no model" in html and "Nope" in html
    assert db.session.query(Task).count() == 0 and db.session.query(Batch).count() == 0

    done = confirm(member_client, html)
    assert done.status_code == 302
    batch = db.session.query(Batch).one()
    assert batch.status == BatchStatus.VALIDATING and db.session.query(Task).count() == 0
    waiting = member_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "its tasks are being created in the background" in waiting
    assert "creating tasks: 0 of 3 line(s) read" in waiting and "location.reload" in waiting
    status = member_client.get(f"/admin/batch/status.json?ids={batch.id}").get_json()
    assert status[str(batch.id)]["progress"] == "creating tasks: 0 of 3 line(s) read"
    run_batch_jobs()
    batch = db.session.query(Batch).one()
    assert batch.name == "Nightly" and batch.total == 2 and batch.invalid_lines == 1
    assert {t.status for t in db.session.query(Task)} == {QUEUED}

    details = member_client.get(f"/admin/batch/details/?id={batch.id}").get_data(as_text=True)
    assert "Retry failed lines" not in details and "Results CSV" in details
    assert "There is no model &#39;Nope&#39;" in details or "There is no model 'Nope'" in details
    listing = member_client.get("/admin/batch/").get_data(as_text=True)
    assert "Nightly" in listing and 'data-field="queued">2<' in listing
    status = member_client.get(f"/admin/batch/status.json?ids={batch.id}").get_json()
    assert status[str(batch.id)]["queued"] == "2" and status[str(batch.id)]["progress"] == ""
    tasks = member_client.get(f"/admin/task/?flt0_batch_equals={batch.id}").get_data(as_text=True)
    assert "#1 A" in tasks or ">A<" in tasks
    none = member_client.get(f"/admin/task/?flt0_batch_equals={batch.id + 1}").get_data(
        as_text=True
    )
    assert ">A<" not in none and "#1 A" not in none


def test_bad_files_get_precise_messages(member_client, sim_model):
    html = upload(member_client, "prompt,model\n退款,Sim\n".encode("gbk")).get_data(as_text=True)
    assert "not UTF-8" in html
    html = upload(member_client, b"prompt,colour\nx,y\n").get_data(as_text=True)
    assert "Unknown column" in html
    html = upload(member_client, b"hello", filename="prompts.txt").get_data(as_text=True)
    assert ".csv, .xlsx or .jsonl" in html
    html = upload(member_client, b"{bad\n", filename="p.jsonl").get_data(as_text=True)
    assert "not JSON" in html and "nothing can be created" in html
    html = upload(member_client, b"prompt,model\n", filename="p.xlsx").get_data(as_text=True)
    assert "not a readable .xlsx" in html
    assert db.session.query(Batch).count() == 0


def test_confirm_of_someone_elses_upload_creates_nothing(
    client, member_user, other_member, sim_model
):
    from tests.conftest import login

    login(client, "member@example.com", "member-password")
    html = upload(client, CSV.encode()).get_data(as_text=True)
    client.get("/logout")
    login(client, "other@example.com", "other-password")
    answer = confirm(client, html)
    assert answer.status_code == 302
    assert db.session.query(Batch).count() == 0


def _make_batch(client):
    html = upload(client, CSV.encode()).get_data(as_text=True)
    confirm(client, html)
    run_batch_jobs()
    return db.session.query(Batch).one()


def test_members_see_only_their_batches(client, member_user, other_member, sim_model):
    from tests.conftest import login

    login(client, "member@example.com", "member-password")
    batch = _make_batch(client)
    client.get("/logout")
    login(client, "other@example.com", "other-password")
    assert "Nightly" not in client.get("/admin/batch/").get_data(as_text=True)
    assert client.get(f"/admin/batch/details/?id={batch.id}").status_code in (302, 404)
    token = csrf_token(client, "/admin/batch/")
    assert (
        client.post(f"/admin/batch/{batch.id}/cancel/", data={"csrf_token": token}).status_code
        == 404
    )
    assert client.get(f"/admin/batch/status.json?ids={batch.id}").get_json() == {}


def test_retry_cancel_and_results(member_client, sim_model):
    batch = _make_batch(member_client)
    ids = [t.id for t in db.session.query(Task).order_by(Task.id)]
    transition(ids[:1], RUNNING, from_statuses=(QUEUED,))
    transition(ids[:1], FAILURE, error="boom")
    token = csrf_token(member_client, "/admin/batch/")
    page = member_client.get(f"/admin/batch/details/?id={batch.id}").get_data(as_text=True)
    assert "Retry failed lines (1)" in page
    answer = member_client.post(f"/admin/batch/{batch.id}/retry/", data={"csrf_token": token})
    assert answer.status_code == 302
    assert db.session.get(Task, ids[0]).status == QUEUED

    answer = member_client.post(f"/admin/batch/{batch.id}/results/csv/", data={"csrf_token": token})
    assert answer.status_code == 302
    download = db.session.query(Download).one()
    assert download.source == "batch_results"
    assert json.loads(download.selection)["filters"] == [["batch", "equals", str(batch.id)]]

    member_client.post(f"/admin/batch/{batch.id}/cancel/", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Batch, batch.id).status == BatchStatus.CANCELLED
    again = member_client.post(
        f"/admin/batch/{batch.id}/cancel/", data={"csrf_token": token}, follow_redirects=True
    )
    assert "only a batch in progress can be canceled" in again.get_data(as_text=True)


def test_post_without_csrf_is_refused(member_client, sim_model):
    batch = _make_batch(member_client)
    answer = member_client.post(f"/admin/batch/{batch.id}/cancel/")
    assert answer.status_code == 400
    db.session.expire_all()
    assert db.session.get(Batch, batch.id).status == BatchStatus.IN_PROGRESS


def test_preview_speaks_chinese(member_client, member_user, sim_model):
    member_user.locale = "zh_Hans_CN"
    db.session.commit()
    html = upload(member_client, CSV.encode()).get_data(as_text=True)
    assert "共读取 3 行：2 行有效，1 行无效。" in html
    assert "创建 2 个任务" in html and "无效行" in html
    assert "Upload another file" not in html


def test_confirm_and_progress_speak_chinese(member_client, member_user, sim_model):
    member_user.locale = "zh_Hans_CN"
    db.session.commit()
    done = confirm(member_client, upload(member_client, CSV.encode()).get_data(as_text=True))
    page = member_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "正在后台创建其任务" in page and "正在创建任务：已读取 0 / 3 行" in page


def test_an_oversized_upload_is_refused_before_reading(member_client, app, sim_model):
    app.config["BATCH_MAX_UPLOAD_BYTES"] = 100
    html = upload(member_client, b"prompt,model\n" + b"x,Sim\n" * 50).get_data(as_text=True)
    assert "The file is larger than" in html
    assert db.session.query(Batch).count() == 0


def test_the_list_page_costs_the_same_statements_for_1_or_6_batches(
    member_client, member_user, sim_model
):
    from llmadmin.services import batches as service
    from tests.admin.test_lists_scale import count_statements

    def add():
        upload_id = service.store_upload(io.BytesIO(CSV.encode()), "p.csv", member_user.id)
        service.create_batch(upload_id, member_user.id)
        run_batch_jobs()

    add()
    one = count_statements(member_client, "/admin/batch/")
    for _ in range(5):
        add()
    six = count_statements(member_client, "/admin/batch/")
    assert one == six


def test_xlsx_upload(member_client, sim_model):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["提示词", "模型", "temperature"])
    book.active.append(["你好", "Sim", 0.3])
    book.active.append(["再见", "Sim", 5])
    data = io.BytesIO()
    book.save(data)
    html = upload(member_client, data.getvalue(), filename="p.xlsx").get_data(as_text=True)
    assert "2 line(s) read: 1 valid, 1 invalid." in html and "temperature" in html
    confirm(member_client, html)
    run_batch_jobs()
    task = db.session.query(Task).one()
    assert task.prompt == "你好" and task.temperature == 0.3


def test_admin_sees_and_acts_on_everyones_batches(client, member_user, admin_user, sim_model):
    from tests.conftest import login

    login(client, "member@example.com", "member-password")
    batch = _make_batch(client)
    client.get("/logout")
    login(client, "admin@example.com", "admin-password")
    assert "Nightly" in client.get("/admin/batch/").get_data(as_text=True)
    assert client.get(f"/admin/batch/details/?id={batch.id}").status_code == 200
    token = csrf_token(client, "/admin/batch/")
    client.post(f"/admin/batch/{batch.id}/cancel/", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Batch, batch.id).status == BatchStatus.CANCELLED


def test_an_openai_batch_file_with_conversations_is_previewed_and_made(member_client, sim_model):
    talk = {
        "custom_id": "talk",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "Sim",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello <there>"},
                {"role": "user", "content": "And now?"},
            ],
        },
    }
    bad = json.loads(json.dumps(talk))
    bad["custom_id"], bad["body"]["messages"] = "bad", bad["body"]["messages"][:2]
    data = (json.dumps(talk) + "\n" + json.dumps(bad) + "\n").encode()
    html = upload(member_client, data, "talk.jsonl").get_data(as_text=True)
    assert "After 2 earlier message(s) of a conversation:" in html and "And now?" in html
    assert "The last message must be a user message" in html
    confirm(member_client, html)
    run_batch_jobs()
    task = db.session.query(Task).filter_by(custom_id="talk").one()
    assert task.prompt == "And now?" and [m["role"] for m in task.messages] == ["user", "assistant"]
