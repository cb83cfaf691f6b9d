"""The "your download is ready" notice: shown once, on the next admin page, to its owner."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.models.download import FAILURE
from tests.downloads.conftest import make_download


def test_ready_notice_shows_once_with_a_link(member_client, member_user, storage):
    row = make_download(member_user, storage=storage, name="Tasks export — status=FAILURE")
    page = member_client.get("/admin/task/").get_data(as_text=True)
    assert "Your download “Tasks export — status=FAILURE” is ready" in page
    assert f'href="/downloads/{row.id}/file"' in page
    db.session.expire_all()
    assert db.session.get(Download, row.id).notified is True
    assert "is ready" not in member_client.get("/admin/task/").get_data(as_text=True)


def test_failure_notice_carries_the_error(member_client, member_user):
    make_download(
        member_user, content=None, status=FAILURE, error="The server ran out of disk space."
    )
    page = member_client.get("/admin/").get_data(as_text=True)
    assert "failed: The server ran out of disk space." in page


def test_no_notice_for_others_or_unfinished_downloads(
    member_client, member_user, other_member, storage
):
    theirs = make_download(other_member, storage=storage)
    running = make_download(member_user, content=None, status="RUNNING")
    page = member_client.get("/admin/").get_data(as_text=True)
    assert "Your download" not in page
    db.session.expire_all()
    assert not db.session.get(Download, theirs.id).notified
    assert not db.session.get(Download, running.id).notified


def test_json_and_file_requests_do_not_consume_the_notice(member_client, member_user, storage):
    row = make_download(member_user, storage=storage)
    member_client.get("/admin/task/status.json?ids=1")
    member_client.get(f"/downloads/{row.id}/file")
    db.session.expire_all()
    assert not db.session.get(Download, row.id).notified


def test_a_notice_waiting_after_a_quiet_page_is_shown_on_the_next(member_client, member_user):
    """Whether a notice waits is asked with the session check: a new one is not missed."""
    assert "Your download" not in member_client.get("/admin/task/").get_data(as_text=True)
    make_download(member_user, content=None, status=FAILURE, error="Disk full.")
    assert "failed: Disk full." in member_client.get("/admin/task/").get_data(as_text=True)
    assert "failed: Disk full." not in member_client.get("/admin/task/").get_data(as_text=True)
