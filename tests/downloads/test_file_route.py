"""Serving files: per-person isolation, checksums, Range, non-ASCII names, bad URLs."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest

from llmadmin.extensions import db
from tests.conftest import login
from tests.downloads.conftest import make_download

CONTENT = b"ID,Name\r\n" + b"".join(f"{i},row {i}\r\n".encode() for i in range(2000))


@pytest.fixture
def other_client(app, other_member):
    client = app.test_client()
    login(client, "other@example.com", "other-password")
    return client


def test_owner_gets_the_file_with_md5_etag_and_length(member_client, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    r = member_client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 200 and r.data == CONTENT
    assert hashlib.md5(r.data).hexdigest() == row.md5 and len(r.data) == row.size_bytes
    assert r.headers["ETag"] == f'"{row.md5}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == "attachment; filename=tasks-export.csv"
    again = member_client.get(
        f"/downloads/{row.id}/file", headers={"If-None-Match": f'"{row.md5}"'}
    )
    assert again.status_code == 304 and again.data == b""


def test_range_requests_return_exact_bytes(member_client, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    r = member_client.get(f"/downloads/{row.id}/file", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.data == CONTENT[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(CONTENT)}"
    tail = member_client.get(f"/downloads/{row.id}/file", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == CONTENT[-50:]
    resumed = member_client.get(
        f"/downloads/{row.id}/file", headers={"Range": "bytes=1000-", "If-Range": f'"{row.md5}"'}
    )
    assert resumed.status_code == 206 and resumed.data == CONTENT[1000:]
    stale = member_client.get(
        f"/downloads/{row.id}/file", headers={"Range": "bytes=1000-", "If-Range": '"changed"'}
    )
    assert stale.status_code == 200 and stale.data == CONTENT
    bad = member_client.get(
        f"/downloads/{row.id}/file", headers={"Range": f"bytes={len(CONTENT) + 5}-"}
    )
    assert bad.status_code == 416


def test_chinese_file_name_uses_rfc5987(member_client, member_user, storage):
    name = "任务导出-2025年1月.csv"
    row = make_download(member_user, storage=storage, content=CONTENT, file_name=name)
    r = member_client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 200
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert f"filename*=UTF-8''{quote(name)}" in disposition
    disposition.encode("latin-1")  # a valid header value


def test_others_get_404_on_every_download_route(member_client, member_user, other_client, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    missing = row.id + 1000
    for download_id in (row.id, missing):
        for url in (
            f"/downloads/{download_id}/file",
            f"/admin/download/details/?id={download_id}",
            f"/admin/download/edit/?id={download_id}",
        ):
            r = other_client.get(url)
            assert r.status_code == 404, url
            assert "tasks-export" not in r.get_data(as_text=True)
    listing = other_client.get("/admin/download/").get_data(as_text=True)
    assert "tasks-export.csv" not in listing
    assert (
        member_client.get("/admin/download/").get_data(as_text=True).count("tasks-export.csv") >= 1
    )
    assert member_client.get(f"/admin/download/details/?id={row.id}").status_code == 200


def test_admin_sees_everyones_file(app, admin_user, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    client = app.test_client()
    login(client, "admin@example.com", "admin-password")
    assert client.get(f"/downloads/{row.id}/file").data == CONTENT


def test_anonymous_is_sent_to_login(client, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    r = client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


@pytest.mark.parametrize(
    "url",
    [
        "/downloads/../../etc/passwd/file",
        "/downloads/%2e%2e/%2e%2e/etc/passwd/file",
        "/downloads/..%2f..%2fetc%2fpasswd/file",
        "/downloads/%2e%2e%2f1/file",
        "/downloads/1%00/file",
        "/downloads/%00/file",
        "/downloads//etc/passwd/file",
        "/downloads/1/file/..%2f..%2fx",
        "/downloads/1/file%00.csv",
        "/downloads/-1/file",
        "/downloads/1.0/file",
        "/downloads/%2Fetc%2Fpasswd/file",
        "/downloads/1/..%5c..%5cwin.ini",
    ],
)
def test_traversal_and_nul_urls_are_404(member_client, member_user, storage, url):
    make_download(member_user, storage=storage, content=CONTENT)
    assert member_client.get(url).status_code == 404


def test_stored_path_outside_the_root_is_refused(member_client, member_user, storage, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    stored_paths = [str(secret), "../secret.txt", "2025/../../secret.txt"]
    if db.engine.dialect.name == "sqlite":  # PostgreSQL cannot even store a NUL
        stored_paths.append("2025/01/a\x00b")
    for stored in stored_paths:
        row = make_download(member_user, content=None, storage_path=stored, size_bytes=10)
        r = member_client.get(f"/downloads/{row.id}/file")
        assert r.status_code == 410 and b"top secret" not in r.data


def test_missing_file_gives_a_clear_message(member_client, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    (storage / row.storage_path).unlink()
    r = member_client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 410 and "missing from storage" in r.get_data(as_text=True)


def test_truncated_file_is_not_served(member_client, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    (storage / row.storage_path).write_bytes(CONTENT[:10])
    r = member_client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 409 and "does not match" in r.get_data(as_text=True)


def test_unfinished_file_is_not_ready(member_client, member_user):
    row = make_download(member_user, content=None, status="RUNNING")
    r = member_client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 409 and "not ready" in r.get_data(as_text=True)


def test_download_center_details_shows_the_download_button(member_client, member_user, storage):
    row = make_download(member_user, storage=storage, content=CONTENT)
    html = member_client.get(f"/admin/download/details/?id={row.id}").get_data(as_text=True)
    assert f"/downloads/{row.id}/file" in html
    db.session.expire_all()


def test_details_of_running_and_failed_downloads(member_client, member_user):
    running = make_download(member_user, content=None, status="RUNNING", progress_rows=15000)
    failed = make_download(member_user, content=None, status="FAILURE", error="Disk <full>")
    html = member_client.get(f"/admin/download/details/?id={running.id}").get_data(as_text=True)
    assert "15,000 rows so far" in html and "/file" not in html.split("being prepared")[0][-300:]
    html = member_client.get(f"/admin/download/details/?id={failed.id}").get_data(as_text=True)
    assert "Disk &lt;full&gt;" in html and "<full>" not in html
    listing = member_client.get("/admin/download/").get_data(as_text=True)
    assert "15,000…" in listing
