"""Deleting downloads removes files only after the commit; the sweep removes expired and orphans."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.models.base import utcnow
from llmadmin.models.download import FAILURE, RUNNING
from llmadmin.services import download_cleanup, download_sweep
from tests.conftest import post_form
from tests.downloads.conftest import make_download, queued_jobs


def run_queued(kind: str = "reports"):
    """Run every job waiting on a queue, synchronously, and empty it."""
    from llmadmin.queues import get_queue

    results = []
    for job in queued_jobs(kind):
        results.append(job.func(*job.args, **job.kwargs))
        get_queue(kind).remove(job)
    db.session.expire_all()
    return results


def removal_jobs():
    return [j for j in queued_jobs() if j.func_name.endswith("remove_download_files")]


def test_session_delete_enqueues_removal_only_after_commit(member_user, storage):
    row = make_download(member_user, storage=storage)
    path = storage / row.storage_path
    db.session.delete(row)
    db.session.flush()
    assert removal_jobs() == []  # flushed, not committed: nothing may happen yet
    db.session.commit()
    (job,) = removal_jobs()
    assert job.args == ([row.storage_path],)
    assert path.exists()  # removed asynchronously, by the job
    assert run_queued() == [1]
    assert not path.exists()


def test_rolled_back_delete_keeps_the_file(member_user, storage):
    row = make_download(member_user, storage=storage)
    path, download_id = storage / row.storage_path, row.id
    db.session.delete(row)
    db.session.flush()
    db.session.rollback()
    db.session.commit()  # a later, unrelated commit must not remove it either
    assert removal_jobs() == [] and path.exists()
    assert db.session.get(Download, download_id) is not None


def test_failed_flush_keeps_the_file(member_user, storage):
    row = make_download(member_user, storage=storage)
    path = storage / row.storage_path
    db.session.delete(row)
    db.session.add(Download(name=None, file_name="x.csv"))  # NOT NULL violation
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
    db.session.commit()
    assert removal_jobs() == [] and path.exists()


def test_service_bulk_delete_removes_after_commit(member_user, storage):
    rows = [make_download(member_user, storage=storage) for _ in range(3)]
    paths = [storage / r.storage_path for r in rows]
    assert download_cleanup.delete_downloads([rows[0].id, rows[1].id, 999]) == 2
    assert run_queued() == [2]
    assert [p.exists() for p in paths] == [False, False, True]


def test_removal_never_touches_files_still_in_use_or_outside_the_root(
    member_user, storage, tmp_path
):
    row = make_download(member_user, storage=storage)
    outside = tmp_path / "keep.txt"
    outside.write_text("x")
    assert (
        download_cleanup.remove_files([row.storage_path, "../keep.txt", str(outside), "a\x00b"])
        == 0
    )
    assert (storage / row.storage_path).exists() and outside.exists()


def test_admin_delete_view_removes_the_file_after_commit(member_client, member_user, storage):
    row = make_download(member_user, storage=storage)
    path, download_id = storage / row.storage_path, row.id
    r = post_form(
        member_client,
        "/admin/download/delete/",
        {"id": download_id, "url": "/admin/download/"},
        token_from="/admin/download/",
    )
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(Download, download_id) is None and path.exists()
    assert len(removal_jobs()) == 1
    run_queued()
    assert not path.exists()


def test_delete_action_of_ticked_rows_is_scoped(member_client, member_user, other_member, storage):
    mine = make_download(member_user, storage=storage)
    theirs = make_download(other_member, storage=storage)
    mine_path, theirs_path = storage / mine.storage_path, storage / theirs.storage_path
    data = {"action": "delete", "rowid": [str(mine.id), str(theirs.id)], "url": "/admin/download/"}
    r = post_form(member_client, "/admin/download/action/", data, token_from="/admin/download/")
    assert r.status_code == 404
    db.session.expire_all()
    assert (
        db.session.get(Download, theirs.id) is not None
        and db.session.get(Download, mine.id) is not None
    )
    data["rowid"] = [str(mine.id)]
    assert (
        post_form(
            member_client, "/admin/download/action/", data, token_from="/admin/download/"
        ).status_code
        == 302
    )
    run_queued()
    assert not mine_path.exists() and theirs_path.exists()


def test_delete_of_someone_elses_row_is_404(member_client, other_member, storage):
    theirs = make_download(other_member, storage=storage)
    r = post_form(
        member_client,
        "/admin/download/delete/",
        {"id": theirs.id, "url": "/admin/download/"},
        token_from="/admin/download/",
    )
    assert r.status_code == 404
    assert db.session.get(Download, theirs.id) is not None


def test_delete_all_matching_is_scoped_and_removes_files(
    member_client, member_user, other_member, storage
):
    mine = [make_download(member_user, storage=storage, file_name=f"m{i}.csv") for i in range(2)]
    theirs = make_download(other_member, storage=storage)
    mine_paths, theirs_path = (
        [storage / r.storage_path for r in mine],
        storage / theirs.storage_path,
    )
    data = {
        "action": "delete",
        "rowid": [str(mine[0].id)],
        "url": "/admin/download/",
        "all_matching": "1",
        "list_args": "",
    }
    assert (
        post_form(
            member_client, "/admin/download/action/", data, token_from="/admin/download/"
        ).status_code
        == 302
    )
    run_queued("llm")  # the bulk job deletes the rows; their file removal is then queued
    run_queued()
    assert db.session.execute(db.select(Download.id)).scalars().all() == [theirs.id]
    assert not any(p.exists() for p in mine_paths) and theirs_path.exists()


def test_sweep_removes_expired_rows_and_their_files(member_user, storage):
    now = utcnow()
    old = make_download(member_user, storage=storage, expires_at=now - timedelta(minutes=1))
    fresh = make_download(member_user, storage=storage, expires_at=now + timedelta(days=1))
    old_id, old_path = old.id, storage / old.storage_path
    done = download_sweep.sweep(now)
    assert done["expired"] == 1 and done["orphans"] == 0
    assert db.session.get(Download, old_id) is None and not old_path.exists()
    assert (storage / fresh.storage_path).exists()


def test_sweep_removes_old_orphans_but_not_young_files_or_files_with_rows(member_user, storage):
    kept = make_download(member_user, storage=storage)
    month = storage / "2024" / "12"
    month.mkdir(parents=True)
    orphan, young, part = (
        month / "7-old.csv",
        storage / "2025" / "01" / "8-new.csv",
        month / "9.csv.part-ab",
    )
    for path in (orphan, young, part):
        path.write_text("x")
    two_hours_ago = time.time() - 7200
    for path in (orphan, part, storage / kept.storage_path, month):
        os.utime(path, (two_hours_ago, two_hours_ago))
    done = download_sweep.sweep(utcnow())
    assert done["orphans"] == 2
    assert not orphan.exists() and not part.exists()
    assert young.exists() and (storage / kept.storage_path).exists()


def test_sweep_fails_running_rows_whose_worker_is_gone(member_user):
    row = make_download(
        member_user,
        content=None,
        status=RUNNING,
        job_id="gone",
        started_at=utcnow() - timedelta(minutes=10),
    )
    done = download_sweep.sweep(utcnow())
    assert done["lost"] == 1
    db.session.expire_all()
    row = db.session.get(Download, row.id)
    assert row.status == FAILURE and "stopped or timed out" in row.error


def test_housekeeping_pass_runs_the_sweep(app, member_user, storage, monkeypatch):
    from llmadmin import maintenance

    monkeypatch.setattr(download_sweep, "_last_sweep", 0.0)
    old_id = make_download(
        member_user, storage=storage, expires_at=utcnow() - timedelta(minutes=1)
    ).id
    done = maintenance.run_pass()
    assert done["downloads"]["expired"] == 1
    assert db.session.get(Download, old_id) is None
    assert maintenance.run_pass()["downloads"] is None  # throttled: once a minute
