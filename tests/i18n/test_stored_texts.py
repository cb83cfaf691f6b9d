"""Texts written by a worker or a service and read later are rendered in the reader's language
(issue 11: "Chinese and English on every screen"): a task's final failure around the
provider's unchanged words, why a task was canceled, a download's name, a bulk operation's rows.
Rows written before migration 0018 (no frame) still show their stored text."""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest
from flask_babel import force_locale

from llmadmin.engine import final_error
from llmadmin.errors import CircuitOpen, LLMError
from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download, Task, TaskRun
from llmadmin.models.task import FAILURE
from llmadmin.services import downloads as download_service
from llmadmin.services import tasks as task_service
from llmadmin.services.selections import Selection
from llmadmin.texts import TASK_TEXTS, english, render_task_error
from tests.admin.helpers import make_task, text
from tests.engine.test_executor import Recorder, make_tasks, run_all
from tests.i18n.conftest import CHINESE, set_person

PROVIDER = "上游过载 upstream exploded"  # the provider's own words, in whatever language


def page(client, url: str) -> str:
    return html.unescape(text(client.get(url)))


@pytest.fixture
def failed_task(app, sim_model, monkeypatch):
    """A task the engine failed after three 500s: its frame written by the real executor."""
    ids, _ = make_tasks(sim_model, 1, max_attempts=3, breaker_threshold=100)
    handler = Recorder(lambda p, n, b: httpx.Response(500, json={"error": {"message": PROVIDER}}))
    task = run_all(ids, handler, [], monkeypatch)[ids[0]]
    assert task.status == FAILURE
    return task


def test_the_engine_stores_the_frame_on_the_task_and_its_run(failed_task):
    frame = failed_task.error_frame
    assert frame["frame"] == "calls" and frame["calls"] == 3 and frame["stop"] == "attempts"
    assert PROVIDER in frame["cause"] and frame["advice"] == "server_error"
    assert render_task_error(frame) == failed_task.error  # the English column is the frame's
    run = db.session.execute(db.select(TaskRun).filter_by(task_id=failed_task.id)).scalar_one()
    assert run.error_frame == frame and run.error == failed_task.error


def test_a_chinese_admin_reads_the_frame_in_chinese_with_the_providers_words(
    zh_admin_client, failed_task
):
    details = page(zh_admin_client, f"/admin/task/details/?id={failed_task.id}")
    assert "共调用 3 次，均失败；不再重试：该模型每次运行最多允许尝试 3 次" in details
    assert "请等模型接口恢复正常响应后重新运行任务。" in details
    assert PROVIDER in details and "HTTP 500" in details  # the cause, unchanged
    assert "calls made" not in details and "not tried again" not in details
    assert "Run the task again" not in details
    # The run history (details page, "Runs") says the same.
    runs = details[details.index('id="runs"') :]
    assert "共调用 3 次" in runs and PROVIDER in runs


def test_an_english_admin_reads_the_stored_english_text(admin_client, admin_user, failed_task):
    set_person(admin_user, locale="en")
    details = page(admin_client, f"/admin/task/details/?id={failed_task.id}")
    assert failed_task.error in details and "共调用" not in details


def test_a_chinese_member_reads_the_frame_in_chinese_without_the_endpoints_reply(
    member_client, member_user, failed_task
):
    set_person(member_user, locale=CHINESE)
    failed_task.creator_id = member_user.id
    db.session.commit()
    details = page(member_client, f"/admin/task/details/?id={failed_task.id}")
    assert "模型接口出现服务器错误" in details
    assert "共调用 3 次，均失败；不再重试：该模型每次运行最多允许尝试 3 次" in details
    assert PROVIDER not in details and "127.0.0.1" not in details  # members never see it
    assert "calls made" not in details


def test_an_english_member_reads_english(member_client, member_user, failed_task):
    set_person(member_user, locale="en")
    failed_task.creator_id = member_user.id
    db.session.commit()
    details = page(member_client, f"/admin/task/details/?id={failed_task.id}")
    assert "(3 calls made, all failed; not tried again: the model allows 3 attempt(s)" in details
    assert PROVIDER not in details and "共调用" not in details


def test_a_row_from_before_the_frames_shows_its_stored_text(zh_admin_client, admin_user, sim_model):
    old = make_task(admin_user, sim_model, name="old", status=FAILURE)
    old.error, old.error_kind = (
        "HTTP 500 from the endpoint (3 calls made, all failed)",
        "server_error",
    )
    db.session.commit()
    details = page(zh_admin_client, f"/admin/task/details/?id={old.id}")
    assert (
        old.error in details and "模型接口出现服务器错误" in details
    )  # the class in Chinese, as before


def test_a_frame_the_code_cannot_read_falls_back_to_the_stored_text(
    zh_admin_client, admin_user, sim_model
):
    task = make_task(admin_user, sim_model, name="odd", status=FAILURE)
    task.error, task.error_kind = "Something English.", "server_error"
    task.error_frame = {"v": 9, "frame": "from-the-future"}
    db.session.commit()
    assert "Something English." in page(zh_admin_client, f"/admin/task/details/?id={task.id}")


def test_the_breaker_frames_render_in_both_languages(app):
    never = final_error.breaker_gave_up(
        CircuitOpen("open", threshold=5, cause=f"HTTP 500: {PROVIDER}"), None, 0, 45.2, "Qwen"
    )
    assert render_task_error(never.frame) == never.message
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        from flask_babel import gettext

        zh = render_task_error(never.frame, gettext)
    assert zh.startswith("未发送：模型 Qwen 的熔断器在连续 5 次失败后断开")
    assert "本任务等待 45 秒后它仍处于断开状态" in zh and PROVIDER in zh
    own = final_error.breaker_gave_up(
        CircuitOpen("open"), LLMError(PROVIDER, kind="timeout"), 2, 0.0, "Sim"
    )
    assert render_task_error(own.frame) == own.message and own.kind == "timeout"
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        zh = render_task_error(own.frame, gettext)
    assert zh.startswith(PROVIDER) and "共调用 2 次，均失败" in zh and "因此没有再发起调用" in zh


def test_a_wait_too_long_is_framed_with_its_numbers(app):
    exc = LLMError("rate limited", kind="rate_limited", retryable=True, retry_after=900)
    final = final_error.after_calls(exc, 1, 3)
    assert final.frame["stop"] == "wait" and render_task_error(final.frame) == final.message
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        from flask_babel import gettext

        zh = render_task_error(final.frame, gettext)
    assert "服务器要求等待 900 秒" in zh and "调低该模型的每分钟请求数" in zh


@pytest.mark.parametrize("key", sorted(TASK_TEXTS))
def test_every_task_text_is_translated(app, key):
    values = {"attempts": 3, "window": "24h", "seconds": 600, "model": "Sim"}
    needed = {k: v for k, v in values.items() if f"%({k})s" in TASK_TEXTS[key]}
    frame = {"v": 1, "frame": "text", "key": key, **needed}
    assert render_task_error(frame) == english(TASK_TEXTS[key], **needed)
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        from flask_babel import gettext

        zh = render_task_error(frame, gettext)
    assert zh != render_task_error(frame) and not any(c.isascii() and c.isalpha() for c in zh[:3])


def test_a_task_canceled_in_english_reads_chinese_for_a_chinese_admin(
    zh_admin_client, admin_user, sim_model
):
    task = task_service.create_task(
        prompt="p", model_id=sim_model.id, creator_id=admin_user.id, run=False
    )
    task_service.cancel_tasks([task.id])
    db.session.expire_all()
    row = db.session.get(Task, task.id)
    assert row.error == "Canceled by a person." and row.error_frame["key"] == "canceled_by_person"
    details = page(zh_admin_client, f"/admin/task/details/?id={task.id}")
    assert "已被人工取消。" in details and "Canceled by a person." not in details


def test_running_again_clears_the_frame(app, admin_user, sim_model):
    task = task_service.create_task(
        prompt="p", model_id=sim_model.id, creator_id=admin_user.id, run=False
    )
    task_service.cancel_tasks([task.id])
    task_service.run_tasks([task.id])
    db.session.expire_all()
    row = db.session.get(Task, task.id)
    assert row.error is None and row.error_frame is None


def _export(person, **selection) -> Download:
    row, _queued = download_service.create_export(
        "tasks", "csv", Selection("task", person.id, **selection)
    )
    return row


def test_a_download_named_in_english_reads_chinese_in_the_download_center(
    app, admin_client, admin_user
):
    set_person(admin_user, locale="en")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        row = _export(admin_user, filters=(("status", "equals", "FAILURE"),))
    assert row.name.startswith("Tasks export — ") and row.name_frame["source"] == "tasks"
    set_person(admin_user, locale=CHINESE)
    listing = page(admin_client, "/admin/download/")
    assert "任务导出" in listing or "任务 导出" in listing
    assert "Tasks export" not in listing
    assert row.name == "Tasks export — status=FAILURE"
    operations = page(admin_client, "/admin/bulkoperation/")  # the export's operation row
    assert "状态=FAILURE" in operations and "status=FAILURE" not in operations


def test_a_renamed_download_keeps_the_persons_words(app, admin_client, admin_user):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        row = _export(admin_user)
    from tests.conftest import post_form

    post_form(
        admin_client,
        f"/admin/download/edit/?id={row.id}",
        {"name": "My quarterly file"},
        token_from=f"/admin/download/edit/?id={row.id}",
    )
    db.session.expire_all()
    fresh = db.session.get(Download, row.id)
    assert fresh.name == "My quarterly file" and fresh.name_frame is None
    set_person(admin_user, locale=CHINESE)
    assert "My quarterly file" in page(admin_client, "/admin/download/")


def test_a_bulk_operations_rows_are_described_in_the_readers_language(
    app, admin_client, admin_user
):
    selection = Selection("task", admin_user.id, ids=(1, 2, 3))
    op = BulkOperation(
        creator_id=admin_user.id,
        list_name="task",
        action="cancel",
        selection=json.dumps(selection.to_dict()),
        description="3 ticked row(s)",  # as an English speaker's request stored it
        status="SUCCESS",
    )
    db.session.add(op)
    db.session.commit()
    set_person(admin_user, locale=CHINESE)
    listing = page(admin_client, "/admin/bulkoperation/")
    assert "ticked row(s)" not in listing and "3" in listing
    set_person(admin_user, locale="en")
    assert "3 ticked row(s)" in page(admin_client, "/admin/bulkoperation/")


def test_a_batchs_rejected_lines_are_read_in_the_readers_language(
    member_client, member_user, sim_model
):
    from llmadmin.models import Batch
    from tests.admin.test_batches import CSV, confirm, upload
    from tests.conftest import run_batch_jobs

    set_person(member_user, locale="en")
    confirm(member_client, upload(member_client, CSV.encode()).get_data(as_text=True))
    run_batch_jobs()
    batch = db.session.query(Batch).one()
    stored = json.loads(batch.line_errors)
    assert stored[0]["message"] == "There is no model 'Nope'."  # the API keeps the words
    assert stored[0]["text"] == {"id": "There is no model %(name)r.", "values": {"name": "Nope"}}
    english_page = page(member_client, f"/admin/batch/details/?id={batch.id}")
    assert "There is no model 'Nope'." in english_page
    set_person(member_user, locale=CHINESE)
    chinese = page(member_client, f"/admin/batch/details/?id={batch.id}")
    assert "没有模型 'Nope'。" in chinese and "There is no model" not in chinese


ENGINE_NOTES = (  # as engine/calls.py, parking, chunk_rows, dispatch and reconcile write them
    ("parked: rate limit of Sim (60/min) reached; waits until 01:46:13 UTC", "Sim", "60"),
    ("parked: all 4 slots of Sim busy; waits until 01:46:13 UTC", "Sim", "4"),
    ("parked: circuit breaker of Qwen (prod) open; waits until 01:46:13 UTC", "Qwen (prod)", ""),
    ("parked: call 2 failed (server_error); waits until 01:46:13 UTC", "server_error", "2"),
    ("parked: call 1 failed (rate_limited, Retry-After 30 s); waits until 01:46:13 UTC", "", "30"),
    ("parked: Sim asked for a pause (Retry-After 2.5 s); waits until 01:46:13 UTC", "Sim", "2.5"),
    ("re-queued: worker shut down", "", ""),
    ("re-queued: Redis was unreachable", "Redis", ""),
    ("re-queued: its worker was lost", "", ""),
    ("re-queued: its job vanished from the queue", "", ""),
    ("waiting for queue: Redis was unreachable; will be sent automatically", "Redis", ""),
)


@pytest.mark.parametrize(("note", "kept", "number"), ENGINE_NOTES)
def test_every_queue_note_the_engine_writes_reads_chinese(app, note, kept, number):
    from llmadmin.admin import formatters

    task = Task(status="QUEUED", queue_note=note)
    with app.test_request_context(), force_locale(CHINESE):
        shown = formatters.queue_note_text(task)
    words = ("parked", "slots", "busy", "failed", "asked", "worker", "queue", "unreachable")
    assert not any(word in shown for word in words), shown
    assert kept in shown and number in shown, shown
    with app.test_request_context(), force_locale("en"):
        english = formatters.queue_note_text(task)
    assert kept in english and number in english and not re.search("[\u4e00-\u9fff]", english)
