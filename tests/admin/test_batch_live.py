"""The batch pages show one consistent, live state; upload preview notes; double confirm."""

from __future__ import annotations

import re

from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Batch, BulkOperation, Task
from llmadmin.models.batch import BatchStatus
from llmadmin.models.task import FAILURE, QUEUED, RUNNING, SUCCESS
from tests.admin.test_batches import CSV, _make_batch, confirm, upload


def _finish(ids, status):
    transition(ids, RUNNING, from_statuses=(QUEUED,))
    transition(ids, status, **({"error": "boom"} if status == FAILURE else {}))


def _badge(html: str) -> str:
    return re.search(r'class="badge [^"]*js-status" data-id="\d+" data-status="(\w+)"', html)[1]


def test_details_page_right_after_the_last_task_shows_it_completed(member_client, sim_model):
    batch = _make_batch(member_client)
    _finish([t.id for t in db.session.query(Task)], SUCCESS)
    assert db.session.get(Batch, batch.id).status == BatchStatus.IN_PROGRESS  # not swept yet
    html = member_client.get(f"/admin/batch/details/?id={batch.id}").get_data(as_text=True)
    assert _badge(html) == BatchStatus.COMPLETED
    assert "In progress" not in html and ">Cancel<" not in html


def test_details_page_refreshes_counts_status_finished_time_and_buttons(member_client, sim_model):
    batch = _make_batch(member_client)
    html = member_client.get(f"/admin/batch/details/?id={batch.id}").get_data(as_text=True)
    assert 'data-field="completed_at"' in html and 'data-field="actions"' in html
    assert "status.json?view=details&ids=" in html
    url = f"/admin/batch/status.json?view=details&ids={batch.id}"
    row = member_client.get(url).get_json()[str(batch.id)]
    assert row["cells"]["completed_at"] == "" and ">Cancel<" in row["cells"]["actions"]

    first, second = [t.id for t in db.session.query(Task).order_by(Task.id)]
    _finish([first], FAILURE)
    row = member_client.get(url).get_json()[str(batch.id)]
    assert row["status"] == BatchStatus.IN_PROGRESS and row["failed"] == "1"
    assert "Retry failed lines (1)" in row["cells"]["actions"]
    _finish([second], SUCCESS)
    row = member_client.get(url).get_json()[str(batch.id)]
    assert row["status"] == BatchStatus.COMPLETED and row["succeeded"] == "1"
    assert row["cells"]["completed_at"] != "" and ">Cancel<" not in row["cells"]["actions"]
    assert "Completed" in row["badge"]


def test_confirming_twice_lands_on_the_batch(member_client, sim_model):
    html = upload(member_client, CSV.encode()).get_data(as_text=True)
    first = confirm(member_client, html)
    second = confirm(member_client, html)
    batch = db.session.query(Batch).one()
    assert second.status_code == 302
    assert second.headers["Location"] == first.headers["Location"]
    page = member_client.get(second.headers["Location"]).get_data(as_text=True)
    assert f"Batch #{batch.id} was already created from this upload." in page
    assert "does not exist or has expired" not in page


def _invalid_csv(count: int) -> bytes:
    return ("prompt,model\n" + "Hello,Nope\n" * count).encode()


def test_preview_says_how_many_invalid_lines_it_lists(member_client, member_user, sim_model):
    html = upload(member_client, _invalid_csv(250)).get_data(as_text=True)
    assert "The first 200 of 250 invalid lines are listed." in html
    assert html.count("There is no model") == 200
    html = upload(member_client, _invalid_csv(5000)).get_data(as_text=True)
    assert "The first 200 of 5,000 invalid lines are listed." in html
    assert "The first 1000" not in html
    member_user.locale = "zh_Hans_CN"
    db.session.commit()
    html = upload(member_client, _invalid_csv(5000)).get_data(as_text=True)
    assert "列出了 5,000 个无效行中的前 200 个。" in html


def test_chinese_headers_are_accepted(member_client, member_user, sim_model):
    member_user.locale = "zh_Hans_CN"
    db.session.commit()
    data = "提示词,模型,温度,最大 token 数\n你好,Sim,0.5,10\n"
    html = upload(member_client, data.encode()).get_data(as_text=True)
    assert "共读取 1 行：1 行有效，0 行无效。" in html
    html = upload(member_client, "提示词,模型,颜色\n你好,Sim,红\n".encode()).get_data(as_text=True)
    assert "颜色" in html and "温度" in html and "提示词" in html


def test_progress_without_a_total_has_no_question_mark(member_client, member_user):
    op = BulkOperation(
        creator_id=member_user.id,
        list_name="task",
        action="export",
        selection="{}",
        status="RUNNING",
        matched=None,
        processed=0,
        description="Results",
    )
    db.session.add(op)
    db.session.commit()
    (shown,) = member_client.get("/downloads/notices.json").get_json()["operations"]
    assert "of ?" not in shown["html"] and "Results: 0 rows done so far" in shown["html"]
