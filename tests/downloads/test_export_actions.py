"""Export actions on the lists: the request only records the download and enqueues it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Query

from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.models.download import PENDING, SUCCESS
from tests.conftest import post_form
from tests.downloads.conftest import add_tasks, filter_arg, queued_jobs, read_csv


def post_action(client, endpoint, action, ids=(), token_from=None, **extra):
    data = {"action": action, "rowid": [str(i) for i in ids], "url": f"/admin/{endpoint}/", **extra}
    return post_form(
        client, f"/admin/{endpoint}/action/", data, token_from=token_from or f"/admin/{endpoint}/"
    )


def only_download():
    rows = db.session.execute(db.select(Download)).scalars().all()
    assert len(rows) == 1
    return rows[0]


def test_lists_offer_the_export_actions(admin_client):
    tasks = admin_client.get("/admin/task/").get_data(as_text=True)
    assert "Export CSV to Download Center" in tasks and "Export ZIP" in tasks
    people = admin_client.get("/admin/person/").get_data(as_text=True)
    assert "Export XLSX to Download Center" in people and "Export ZIP" not in people
    assert "Export CSV to Download Center" in admin_client.get("/admin/llmmodel/").get_data(
        as_text=True
    )


def test_ticked_rows_create_a_pending_download_and_enqueue_after_commit(admin_client, admin_user):
    tasks = add_tasks(admin_user, n=4)
    r = post_action(admin_client, "task", "export_xlsx", [tasks[0].id, tasks[2].id])
    assert r.status_code == 302
    row = only_download()
    assert row.status == PENDING and row.file_format == "xlsx" and row.creator_id == admin_user.id
    assert row.name == "Tasks export — 2 ticked row(s)"
    stored = json.loads(row.selection)
    assert stored["list"] == "task" and stored["ids"] == [tasks[0].id, tasks[2].id]
    assert stored["person_id"] == admin_user.id
    (job,) = queued_jobs()
    assert job.func_name == "llmadmin.jobs.exports.export_download" and job.args == (row.id,)
    assert job.id == row.job_id
    page = admin_client.get("/admin/task/").get_data(as_text=True)
    assert "is being prepared" in page and "Download Center" in page


def test_all_matching_rows_store_the_list_query_and_export_the_filtered_set(
    admin_client, admin_user
):
    failed = add_tasks(admin_user, n=3, status="FAILURE")
    add_tasks(admin_user, n=5, status="SUCCESS")
    list_args = filter_arg("task", "Status", "equals") + "=FAILURE&sort=1&desc=1&page=1"
    r = post_action(
        admin_client, "task", "export_csv", [failed[0].id], all_matching="1", list_args=list_args
    )
    assert r.status_code == 302
    row = only_download()
    assert row.name == "Tasks export — status=FAILURE"
    stored = json.loads(row.selection)
    assert stored["list"] == "task" and stored["ids"] is None
    assert stored["filters"] == [["status", "equals", "FAILURE"]]
    assert (stored["sort"], stored["sort_desc"]) == ("name", True)  # sort=1: the name column
    (job,) = queued_jobs()
    assert job.func(*job.args) == SUCCESS  # run the job synchronously
    db.session.expire_all()
    row = db.session.get(Download, row.id)
    ids = [
        int(r[0])
        for r in read_csv(f"{admin_client.application.config['DOWNLOAD_DIR']}/{row.storage_path}")[
            1:
        ]
    ]
    assert ids == [t.id for t in reversed(failed)] and row.row_count == 3  # the list's order


def test_the_request_never_counts_or_reads_the_matching_rows(admin_client, admin_user, monkeypatch):
    add_tasks(admin_user, n=2)

    def forbidden(*args, **kwargs):
        raise AssertionError("the request must not count or read the matching rows")

    from llmadmin.services import selections

    monkeypatch.setattr(selections, "build_query", forbidden)
    monkeypatch.setattr(Query, "count", forbidden)
    r = post_action(admin_client, "task", "export_csv", [], all_matching="1", list_args="search=x")
    assert r.status_code == 302
    assert only_download().name == "Tasks export — search “x”"


def test_member_ticking_someone_elses_task_gets_404(member_client, member_user, other_member):
    theirs = add_tasks(other_member, n=1)
    mine = add_tasks(member_user, n=1)
    r = post_action(member_client, "task", "export_csv", [mine[0].id, theirs[0].id])
    assert r.status_code == 404
    assert db.session.execute(db.select(Download)).first() is None
    assert queued_jobs() == []


def test_zip_is_not_offered_for_people(admin_client, admin_user):
    r = post_action(
        admin_client, "person", "export_zip", [admin_user.id], all_matching="1", list_args=""
    )
    assert r.status_code == 302
    assert db.session.execute(db.select(Download)).first() is None


def test_members_cannot_export_people(member_client):
    r = post_action(
        member_client,
        "person",
        "export_csv",
        [],
        token_from="/admin/task/",
        all_matching="1",
        list_args="",
    )
    assert r.status_code == 403
    assert db.session.execute(db.select(Download)).first() is None


def test_queue_down_keeps_the_row_pending_and_the_sweep_sends_it(
    admin_client, admin_user, monkeypatch
):
    from datetime import timedelta

    import llmadmin.queues as queues
    from llmadmin.errors import QueueUnavailable
    from llmadmin.services import download_sweep

    real = queues.enqueue

    def down(*args, **kwargs):
        raise QueueUnavailable("The job queue (Redis) is unreachable right now.")

    monkeypatch.setattr(queues, "enqueue", down)
    r = post_action(admin_client, "task", "export_csv", [], all_matching="1", list_args="")
    assert r.status_code == 302
    assert "starts automatically" in admin_client.get("/admin/task/").get_data(as_text=True)
    row = only_download()
    assert row.status == PENDING and queued_jobs() == []
    monkeypatch.setattr(queues, "enqueue", real)
    assert download_sweep.recover_stuck(row.created_at + timedelta(seconds=10)) == {
        "resent": 0,
        "lost": 0,
    }
    assert download_sweep.recover_stuck(row.created_at + timedelta(minutes=5)) == {
        "resent": 1,
        "lost": 0,
    }
    (job,) = queued_jobs()
    db.session.expire_all()
    assert job.args == (row.id,) and job.id == db.session.get(Download, row.id).job_id


@pytest.mark.parametrize("endpoint", ["task", "llmmodel", "person"])
def test_export_name_and_file_name_are_readable(admin_client, admin_user, endpoint):
    post_action(admin_client, endpoint, "export_csv", [], all_matching="1", list_args="")
    row = only_download()
    assert row.name.endswith("export — all rows")
    assert row.file_name.endswith(".csv") and "-export-" in row.file_name
