"""The Download Center panel: rows are made directly (exports are built by the worker)."""

from __future__ import annotations

import hashlib
import os

import pytest

from llmadmin.extensions import db
from llmadmin.models import Download
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    make_download,
    snapshot,
    text,
)
from tests.conftest import post_form

# Set when the owner's pages announce a finished file; not something a form changes.
SEEN = ("notified",)


def all_downloads() -> list[Download]:
    db.session.expire_all()
    return db.session.query(Download).order_by(Download.id).all()


def test_list_and_details(member_client, member_user):
    row = make_download(member_user, name="March results", file_name="march.csv")
    page = text(member_client.get("/admin/download/"))
    assert "March results" in page and "march.csv" in page
    assert "/admin/download/new/" not in page
    details = text(member_client.get(f"/admin/download/details/?id={row.id}"))
    assert "March results" in details and "42 B" in details


def test_finished_file_links_to_the_download_route(member_client, member_user):
    row = make_download(member_user, status="SUCCESS")
    assert f"/downloads/{row.id}/file" in text(member_client.get("/admin/download/"))
    pending = make_download(member_user, status="PENDING", file_name="later.csv")
    assert f"/downloads/{pending.id}/file" not in text(member_client.get("/admin/download/"))


def test_edit_task_name(member_client, member_user):
    row = make_download(member_user)
    response = post_form(
        member_client, f"/admin/download/edit/?id={row.id}", {"name": "Renamed export"}
    )
    assert response.status_code == 302
    after = snapshot(row)
    assert after["name"] == "Renamed export" and after["file_name"] == "export.csv"


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "required"),
        ("x" * 301, "too long"),
        ("bad\x00name", "NUL byte"),
    ],
)
def test_invalid_task_name(member_client, member_user, value, message):
    row = make_download(member_user)
    before = snapshot(row, ignore=SEEN)
    response = post_form(member_client, f"/admin/download/edit/?id={row.id}", {"name": value})
    assert response.status_code == 200
    assert any(message in e for e in field_errors(text(response), "name")), field_errors(
        text(response), "name"
    )
    assert snapshot(row, ignore=SEEN) == before


def test_delete(member_client, member_user):
    row = make_download(member_user)
    keep = make_download(member_user, name="keep")
    response = post_form(member_client, "/admin/download/delete/", {"id": str(row.id)})
    assert response.status_code == 302
    assert [d.id for d in all_downloads()] == [keep.id]


def test_bulk_delete_by_action(admin_client, admin_user):
    rows = [make_download(admin_user, name=f"export {i}") for i in range(2)]
    keep = make_download(admin_user, name="keep")
    response = post_form(
        admin_client,
        "/admin/download/action/",
        {"action": "delete", "rowid": [str(r.id) for r in rows]},
    )
    assert response.status_code == 302
    assert [d.id for d in all_downloads()] == [keep.id]


def test_create_is_not_offered(admin_client):
    response = admin_client.get("/admin/download/new/")
    assert response.status_code in (302, 403, 404)
    assert post_form(admin_client, "/admin/download/new/", {"name": "x"}).status_code in (
        302,
        403,
        404,
    )
    assert all_downloads() == []


def test_owner_fetches_the_file(app, member_client, member_user, tmp_path):
    app.config["DOWNLOAD_DIR"] = str(tmp_path)
    content = b"id,name\n1,hello\n"
    (tmp_path / "f.csv").write_bytes(content)
    row = make_download(member_user, file_name="results.csv")
    row.storage_path = "f.csv"
    row.size_bytes = len(content)
    row.md5 = hashlib.md5(content).hexdigest()
    db.session.commit()
    response = member_client.get(f"/downloads/{row.id}/file")
    assert response.status_code == 200
    assert response.data == content
    assert "results.csv" in response.headers["Content-Disposition"]
    os.remove(tmp_path / "f.csv")
    assert member_client.get(f"/downloads/{row.id}/file").status_code == 410
