"""List rows drawn by RowPainter are Flask-Admin's own rows: same cells, buttons, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from llmadmin import localtime
from llmadmin.admin import list_rows
from llmadmin.extensions import db
from llmadmin.models import Person
from llmadmin.models.task import FAILURE, PENDING
from tests.admin.helpers import fast_passwords, make_download, make_task  # noqa: F401

HOSTILE = "<script>alert(1)</script>\"' &amp; rowid"
CSRF = re.compile(r'(name="csrf_token"[^>]*value=")[^"]+|(value=")[^"]+("[^>]*name="csrf_token")')


def table_body(html: str) -> str:
    """The list's rows, whitespace and CSRF tokens (per render) made comparable."""
    start = html.index("</thead>")
    body = html[start : html.index("</table>", start)]
    body = CSRF.sub(lambda m: (m.group(1) or m.group(2)) + "T" + (m.group(3) or ""), body)
    return re.sub(r"\s*(<|>)\s*", r"\1", re.sub(r"\s+", " ", body))


def both_ways(client, monkeypatch, url: str) -> tuple[str, str]:
    # Both renders see the same "now": a second passing between them (a busy machine) would
    # turn "5 seconds ago" into "6 seconds ago" in one of them.
    frozen = datetime.now(UTC).replace(tzinfo=None)
    age = localtime.utc_age
    monkeypatch.setattr(localtime, "utc_age", lambda value, now=None: age(value, now or frozen))
    prepared = []
    prepare = list_rows.RowPainter._prepare
    monkeypatch.setattr(
        list_rows.RowPainter, "_prepare", lambda self, ctx: prepared.append(prepare(self, ctx))
    )
    painted = client.get(url).get_data(as_text=True)
    assert len(prepared) == 1  # the painter drew the rows, its shared parts prepared once
    monkeypatch.setattr(list_rows.RowPainter, "usable", lambda self: False)
    own = client.get(url).get_data(as_text=True)
    monkeypatch.undo()
    return table_body(painted), table_body(own)


@pytest.fixture
def rows(app, admin_user, member_user, sim_model):
    make_task(admin_user, sim_model, name=HOSTILE, prompt=HOSTILE)
    failed = make_task(member_user, sim_model, name="failed 失败", status=FAILURE, result=None)
    failed.error, failed.error_kind, failed.finish_reason = "HTTP 503 <b>", "server_error", "length"
    waiting = make_task(member_user, None, name="waiting", status=PENDING, result=None)
    waiting.queue_note = "<i>4 running</i>: model busy"  # an unknown note shows its first part
    db.session.commit()
    make_download(admin_user, name=HOSTILE)
    make_download(member_user, name="member export", status="FAILURE")


@pytest.mark.parametrize(
    "url",
    [
        "/admin/task/",
        "/admin/task/?flt1_status_equals=FAILURE",
        "/admin/llmmodel/",  # a row action of ours (test connection) besides Flask-Admin's
        "/admin/download/",
        "/admin/person/",
        "/admin/audit/",
    ],
)
def test_painted_rows_are_flask_admins_rows(admin_client, rows, monkeypatch, url):
    painted, own = both_ways(admin_client, monkeypatch, url)
    assert painted == own
    assert "<tr>" in painted


@pytest.mark.parametrize("locale", ["en", "zh_Hans_CN"])
def test_member_rows_in_each_language_and_zone(member_client, rows, monkeypatch, locale):
    person = db.session.execute(
        db.select(Person).where(Person.email == "member@example.com")
    ).scalar_one()
    person.locale, person.timezone = locale, "America/New_York"
    db.session.commit()
    painted, own = both_ways(member_client, monkeypatch, "/admin/task/")
    assert painted == own
    assert "America/New_York" in painted and "failed 失败" in painted
    assert ("前" in painted) == (locale == "zh_Hans_CN")


def test_hostile_text_stays_text(admin_client, rows):
    html = admin_client.get("/admin/task/").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39; &amp;amp; rowid" in html
    assert "&lt;i&gt;4 running&lt;/i&gt;" in html


def test_each_row_keeps_its_own_buttons(admin_client, rows):
    html = admin_client.get("/admin/task/").get_data(as_text=True)
    ids = re.findall(r'name="rowid" class="action-checkbox" value="(\d+)"', html)
    assert len(ids) == 3
    for row_id in ids:
        assert f"/admin/task/details/?id={row_id}&amp;" in html
        assert f"/admin/task/edit/?id={row_id}&amp;" in html
        assert f'<input id="id" name="id" type="hidden" value="{row_id}">' in html
    assert not re.search(r"rowid[0-9a-f]{16}", html)  # the page's marker never shows
