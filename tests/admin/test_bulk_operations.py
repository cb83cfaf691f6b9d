"""Bulk operations are rows: recorded, run by an idempotent job, resumed, shown in a panel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import insert

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download, Task
from llmadmin.models.task import CANCELED, PENDING, SUCCESS
from llmadmin.queues import get_queue
from llmadmin.services import bulk, bulk_sweep
from llmadmin.services.selections import Selection
from tests.admin.helpers import flashes, make_client
from tests.conftest import login, post_form


def add_tasks(creator, n: int, status: str = PENDING, name: str = "t") -> list[int]:
    """Insert ``n`` tasks in one executemany INSERT; return their ids."""
    db.session.execute(
        insert(Task),
        [
            {"name": f"{name} {i}", "prompt": "p", "status": status, "creator_id": creator.id}
            for i in range(n)
        ],
    )
    db.session.commit()
    return list(db.session.execute(db.select(Task.id).where(Task.name.like(f"{name} %"))).scalars())


def only_operation() -> BulkOperation:
    db.session.expire_all()
    (row,) = db.session.execute(db.select(BulkOperation)).scalars().all()
    return row


def bulk_jobs():
    return [j for j in get_queue("llm").get_jobs() if j.func_name.endswith("apply_bulk_operation")]


def post_all_matching(client, action: str, list_args: str, endpoint: str = "task", **extra):
    data = {"action": action, "all_matching": "1", "list_args": list_args, "rowid": ["1"]}
    return post_form(
        client,
        f"/admin/{endpoint}/action/",
        {**data, **extra},
        token_from=f"/admin/{endpoint}/",
        follow_redirects=True,
    )


def cell(html: str, operation_id: int, field: str) -> str:
    found = re.search(rf'data-id="{operation_id}" data-field="{field}">([^<]*)<', html)
    return found.group(1) if found else ""


def test_ten_thousand_matching_rows_through_the_admin_the_job_and_the_panel(
    admin_client, admin_user
):
    wanted = add_tasks(admin_user, 10_000, PENDING, "bulk")
    add_tasks(admin_user, 5, SUCCESS, "done")
    page = post_all_matching(admin_client, "cancel", "flt0_status_equals=PENDING")
    operation = only_operation()
    assert operation.status == "PENDING" and operation.matched == 10_000
    assert f"Bulk operation #{operation.id}" in flashes(page.get_data(as_text=True))
    (job,) = bulk_jobs()
    assert job.args == (operation.id,) and job.id == operation.job_id
    assert job.description == f"bulk operation #{operation.id}"
    assert job.func(*job.args) == "SUCCESS"
    html = admin_client.get("/admin/bulkoperation/").get_data(as_text=True)
    assert cell(html, operation.id, "matched") == "10,000"
    assert cell(html, operation.id, "processed") == "10,000"
    assert cell(html, operation.id, "changed") == "10,000"
    assert cell(html, operation.id, "skipped") == "0"
    assert "status=PENDING" in html and "Cancel" in html  # the action, by its label
    remaining = db.session.execute(
        db.select(db.func.count()).where(Task.id.in_(wanted[:500]), Task.status != CANCELED)
    ).scalar()
    assert remaining == 0
    live = admin_client.get(f"/admin/bulkoperation/status.json?ids={operation.id}").get_json()
    assert live[str(operation.id)]["changed"] == "10,000"


def test_a_duplicate_delivery_is_a_no_op(app, admin_user):
    add_tasks(admin_user, 3)
    operation, queued = bulk.start_operation(Selection("task", admin_user.id), "cancel")
    assert queued
    assert bulk.run_operation(operation.id) == "SUCCESS"
    assert bulk.run_operation(operation.id) == "skipped"
    row = only_operation()
    assert (row.status, row.processed, row.changed) == ("SUCCESS", 3, 3)


class Crash(BaseException):
    """A worker dying mid-way (not an error the job could record)."""


def test_a_job_that_died_is_resumed_after_its_last_id_and_applies_nothing_twice(
    app, admin_user, monkeypatch
):
    ids = sorted(add_tasks(admin_user, 7))
    seen: list[int] = []
    real = bulk.ACTIONS["task"]["cancel"]

    def crash_on_second_chunk(chunk, person_id, **kw):
        if len(seen) == 3 and not getattr(crash_on_second_chunk, "crashed", False):
            crash_on_second_chunk.crashed = True
            raise Crash
        seen.extend(chunk)
        return real.apply(chunk, person_id, **kw)

    monkeypatch.setattr(bulk, "BULK_CHUNK", 3)
    monkeypatch.setitem(
        bulk.ACTIONS["task"], "cancel", bulk.BulkAction(crash_on_second_chunk, real.counts)
    )
    operation, _ = bulk.start_operation(Selection("task", admin_user.id), "cancel")
    with pytest.raises(Crash):
        bulk.run_operation(operation.id)
    db.session.rollback()
    row = only_operation()
    assert (row.status, row.last_id, row.processed) == ("RUNNING", ids[2], 3)
    assert bulk.run_operation(operation.id) == "skipped"  # the old job delivered again
    # Not yet stale: the sweep leaves it alone; later it hands it to a new job.
    assert bulk_sweep.sweep_operations(row.updated_at + timedelta(seconds=30))["resumed"] == 0
    get_queue("llm").empty()
    assert bulk_sweep.sweep_operations(row.updated_at + timedelta(minutes=5))["resumed"] == 1
    (job,) = bulk_jobs()
    assert job.func(*job.args) == "SUCCESS"
    row = only_operation()
    assert seen == ids and (row.processed, row.changed, row.last_id) == (7, 7, ids[-1])


def test_queue_down_at_request_time_keeps_the_row_pending_and_the_sweep_sends_it(
    admin_client, admin_user, monkeypatch
):
    import llmadmin.queues as queues
    from llmadmin.errors import QueueUnavailable

    add_tasks(admin_user, 4)
    real = queues.enqueue

    def down(*args, **kwargs):
        raise QueueUnavailable("The job queue (Redis) is unreachable right now.")

    monkeypatch.setattr(queues, "enqueue", down)
    page = post_all_matching(admin_client, "cancel", "")
    assert "starts automatically" in flashes(page.get_data(as_text=True))
    row = only_operation()
    assert row.status == "PENDING" and bulk_jobs() == []
    monkeypatch.setattr(queues, "enqueue", real)
    assert bulk_sweep.sweep_operations(row.created_at + timedelta(seconds=1))["resent"] == 0
    assert bulk_sweep.sweep_operations(row.created_at + timedelta(seconds=30))["resent"] == 1
    (job,) = bulk_jobs()
    assert job.id == only_operation().job_id
    assert job.func(*job.args) == "SUCCESS" and only_operation().changed == 4


def test_ticked_rows_are_recorded_and_the_flash_links_to_the_row(admin_client, admin_user):
    ids = add_tasks(admin_user, 3)
    page = post_form(
        admin_client,
        "/admin/task/action/",
        {"action": "cancel", "rowid": [str(i) for i in ids[:2]]},
        token_from="/admin/task/",
        follow_redirects=True,
    )
    row = only_operation()
    assert (row.status, row.matched, row.processed, row.changed, row.skipped) == (
        "SUCCESS",
        2,
        2,
        2,
        0,
    )
    assert row.description == "2 ticked row(s)" and row.action == "cancel"
    assert f"/admin/bulkoperation/details/?id={row.id}" in page.get_data(as_text=True)


def test_an_export_is_recorded_and_follows_its_download(admin_client, admin_user, app, tmp_path):
    app.config["DOWNLOAD_DIR"] = str(tmp_path)
    add_tasks(admin_user, 3, SUCCESS)
    page = post_all_matching(admin_client, "export_csv", "").get_data(as_text=True)
    row = only_operation()
    assert f"/admin/bulkoperation/details/?id={row.id}" in page
    assert row.action == "export_csv" and row.download_id is not None and row.status == "PENDING"
    (job,) = get_queue("reports").get_jobs()
    assert job.func(*job.args) == "SUCCESS"
    row = only_operation()
    assert (row.status, row.matched, row.changed) == ("SUCCESS", 3, 3)
    html = admin_client.get("/admin/bulkoperation/").get_data(as_text=True)
    assert f"/admin/download/details/?id={row.download_id}" in html
    # a download deleted before it ran settles its operation as failed
    post_all_matching(admin_client, "export_csv", "")
    download = db.session.execute(db.select(Download).order_by(Download.id.desc())).scalar()
    db.session.delete(download)
    db.session.commit()
    assert bulk_sweep.settle_exports() == 1


def test_members_see_only_their_operations(app, admin_user, member_user, other_member):
    add_tasks(member_user, 2, name="mine")
    add_tasks(other_member, 2, name="theirs")
    mine, _ = bulk.start_operation(Selection("task", member_user.id), "cancel")
    theirs, _ = bulk.start_operation(Selection("task", other_member.id), "cancel")
    assert bulk.run_operation(mine.id) == "SUCCESS"
    assert only_member_changes(mine.id) == 2  # a member's "all matching" is their rows only
    client = make_client(app)
    login(client, "member@example.com", "member-password")
    html = client.get("/admin/bulkoperation/").get_data(as_text=True)
    assert f"details/?id={mine.id}&" in html and f"details/?id={theirs.id}&" not in html
    assert client.get(f"/admin/bulkoperation/details/?id={theirs.id}").status_code == 404
    live = client.get(f"/admin/bulkoperation/status.json?ids={mine.id},{theirs.id}").get_json()
    assert set(live) == {str(mine.id)}
    admin = make_client(app)
    login(admin, "admin@example.com", "admin-password")
    html = admin.get("/admin/bulkoperation/").get_data(as_text=True)
    assert f"details/?id={theirs.id}&" in html


def only_member_changes(operation_id: int) -> int:
    db.session.expire_all()
    return db.session.get(BulkOperation, operation_id).changed


def test_a_deactivated_person_fails_the_operation_clearly(app, admin_user, member_user):
    add_tasks(member_user, 2)
    operation, _ = bulk.start_operation(Selection("task", member_user.id), "delete")
    member_user.active = False
    db.session.commit()
    assert bulk.run_operation(operation.id) == "FAILURE"
    row = only_operation()
    assert "deactivated" in row.error and row.finished_at is not None
