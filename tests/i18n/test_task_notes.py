"""What a Chinese speaker reads about a task's queue note, finish flags, filters and latency
(QA trial: "失败 parked", "成功 parked cut off", a UTC time on an Asia/Shanghai page)."""

from __future__ import annotations

from datetime import datetime

from llmadmin.admin import formatters
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, QUEUED, RUNNING
from tests.admin.helpers import make_task, text
from tests.api.conftest import Api
from tests.i18n.conftest import set_person

NOTE = "parked: circuit breaker of Sim open; waits until 01:46:13 UTC"
AT = datetime(2026, 11, 30, 1, 46, 13)  # naive UTC, as stored


def noted(task: Task) -> Task:
    task.queue_note, task.not_before = NOTE, AT
    db.session.commit()
    return task


def test_a_final_task_shows_no_stale_queue_note(zh_admin_client, admin_user, sim_model):
    failed = noted(make_task(admin_user, sim_model, name="failed", status=FAILURE))
    done = make_task(admin_user, sim_model, name="done")
    done.finish_reason = "length"
    noted(done)
    page = text(zh_admin_client.get("/admin/task/"))
    assert "parked" not in page and "circuit breaker" not in page
    details = text(zh_admin_client.get(f"/admin/task/details/?id={failed.id}"))
    assert "parked" not in details and "UTC" not in details


def test_a_waiting_tasks_note_is_translated_and_in_local_time(
    zh_admin_client, admin_user, sim_model
):
    set_person(admin_user, timezone="Asia/Shanghai")
    waiting = noted(make_task(admin_user, sim_model, name="waits", status=QUEUED))
    page = text(zh_admin_client.get("/admin/task/"))
    assert "等待中" in page and "parked" not in page
    details = text(zh_admin_client.get(f"/admin/task/details/?id={waiting.id}"))
    assert "等待中，直到 2026-11-30 09:46:13（Asia/Shanghai）" in details
    assert "parked" not in details and "01:46:13 UTC" not in details


def test_a_final_transition_clears_the_queue_note(app, admin_user, sim_model):
    task = noted(make_task(admin_user, sim_model, name="t", status=RUNNING))
    transition([task.id], FAILURE, error="x", error_kind="server_error")
    db.session.expire_all()
    assert db.session.get(Task, task.id).queue_note is None


def test_finish_flags_and_the_creator_filter_are_translated(zh_admin_client, admin_user, sim_model):
    done = make_task(admin_user, sim_model, name="long")
    done.finish_reason = "length"
    db.session.commit()
    page = text(zh_admin_client.get("/admin/task/"))
    assert "被截断" in page and "回答在达到模型的最大令牌数时被截断" in page
    assert ">cut off<" not in page and "max tokens: raise" not in page
    assert "创建人邮箱" in page and "Person / Email" not in page


def test_a_task_never_sent_has_no_latency(app, admin_client, admin_user, sim_model):
    """QA: "Not sent: the circuit breaker…" with calls 0 showed "1 ms" (latency_ms 0.97)."""
    never = make_task(admin_user, sim_model, name="never sent", status=FAILURE)
    never.calls, never.latency_ms = 0, 0.97
    sent = make_task(admin_user, sim_model, name="sent")
    sent.calls, sent.latency_ms = 1, 1234.0
    db.session.commit()
    assert formatters.milliseconds(None, None, never, "latency_ms") == ""
    assert formatters.milliseconds(None, None, sent, "latency_ms") == "1.23 s"
    from llmadmin.services.api_tokens import create_token

    api = Api(app.test_client(), create_token(admin_user.id, "t")[1])
    assert api.get(f"/api/v1/tasks/{never.id}").get_json()["latency_ms"] is None
    assert api.get(f"/api/v1/tasks/{sent.id}").get_json()["latency_ms"] == 1234.0


ENGINE_ERROR = "Not sent: circuit breaker of Sim open. Last failure on another call: HTTP 500"


def failed_by_breaker(admin_user, sim_model) -> Task:
    task = make_task(admin_user, sim_model, name="not sent", status=FAILURE)
    task.error, task.error_kind = ENGINE_ERROR, "circuit_open"
    db.session.commit()
    return task


def test_a_chinese_admin_reads_the_error_class_in_chinese_above_the_full_text(
    zh_admin_client, admin_user, sim_model
):
    task = failed_by_breaker(admin_user, sim_model)
    details = text(zh_admin_client.get(f"/admin/task/details/?id={task.id}"))
    summary = "此任务未发送"
    assert summary in details and ENGINE_ERROR in details
    assert details.index(summary) < details.index(ENGINE_ERROR)


def test_an_english_admin_reads_the_full_text_alone(admin_client, admin_user, sim_model):
    set_person(admin_user, locale="en")
    task = failed_by_breaker(admin_user, sim_model)
    details = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert ENGINE_ERROR in details
    assert "This task was not sent" not in details
