"""Prompts, outputs and names are inert: escaped wherever they are shown, data in status.json."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from markupsafe import escape

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import FAILURE, RUNNING, SUCCESS
from tests.conftest import login

PAYLOADS = [
    "<script>document.title='XSS'</script>",
    "<img src=x onerror=\"fetch('/xss-hit')\">",
    '<a href="javascript:alert(1)">click</a>',
    '"><svg onload=alert(1)>',
    "</pre></td><script>alert(2)</script>",
]
ALL = "\n".join(PAYLOADS)


@pytest.fixture
def hostile(app, admin_user):
    model = LLMModel(
        name="<b onmouseover=alert(3)>Evil model</b>",
        base_url="http://127.0.0.1:9/v1",
        model_name="<script>alert(4)</script>",
    )
    db.session.add(model)
    db.session.commit()
    rows = {}
    for status in (SUCCESS, FAILURE, RUNNING):
        task = Task(
            name=f"{status} {PAYLOADS[0]}",
            prompt=ALL,
            system_prompt=ALL,
            result=ALL,
            error=ALL if status == FAILURE else None,
            status=status,
            model_id=model.id,
            creator_id=admin_user.id,
            queue_note=f"re-queued: {PAYLOADS[1]}",
        )
        db.session.add(task)
        db.session.commit()
        rows[status] = task.id
    return rows


class Elements(HTMLParser):
    """Collect every element's attributes and the text of every script, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def assert_inert(html: str, where: str) -> None:
    """No payload became an element, an attribute, a script or a javascript: link."""
    for payload in PAYLOADS + ["<b onmouseover=alert(3)>", "<script>alert(4)</script>"]:
        assert payload not in html, (where, payload)
    parsed = Elements(html)
    for tag, attrs in parsed.tags:
        assert tag not in ("img", "svg") or "onerror" not in attrs and "onload" not in attrs, (
            where,
            tag,
        )
        for name, value in attrs.items():
            if name.startswith("on"):
                assert "alert" not in (value or "") and "fetch" not in (value or ""), (
                    where,
                    tag,
                    name,
                )
            if name == "href":
                assert not (value or "").startswith("javascript:alert"), (where, tag)
    for script in parsed.scripts:
        assert "alert(" not in script and "XSS" not in script, (where, script[:200])


def test_payloads_are_escaped_on_the_list_details_and_home_pages(client, admin_user, hostile):
    login(client, "admin@example.com", "admin-password")
    pages = {
        "task list": "/admin/task/",
        "home": "/admin/",
        "model list": "/admin/llmmodel/",
        "audit": "/admin/audit/",
    }
    for status, task_id in hostile.items():
        pages[f"details {status}"] = f"/admin/task/details/?id={task_id}"
    for where, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, where
        html = response.get_data(as_text=True)
        assert_inert(html, where)
    details = client.get(f"/admin/task/details/?id={hostile[FAILURE]}").get_data(as_text=True)
    assert str(escape(PAYLOADS[1])) in details  # shown, as text
    assert str(escape(PAYLOADS[0])) in client.get("/admin/task/").get_data(as_text=True)


def test_status_json_is_data_with_an_escaped_badge(client, admin_user, hostile):
    login(client, "admin@example.com", "admin-password")
    task_id = hostile[RUNNING]
    response = client.get(f"/admin/task/status.json?with_result=1&ids={task_id}")
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    row = json.loads(response.get_data(as_text=True))[str(task_id)]
    assert row["result"] == ALL  # raw text: the page puts it in with textContent
    assert_inert(row["badge"], "badge")  # inserted as HTML, like the row's cells
    assert "&lt;img" in row["badge"]
    listing = client.get(f"/admin/task/status.json?ids={','.join(map(str, hostile.values()))}")
    for value in json.loads(listing.get_data(as_text=True)).values():
        assert_inert(value["badge"], "badge")
        for name, cell in value["cells"].items():  # rendered and escaped by the server
            assert_inert(cell, name)


def test_the_pages_insert_live_text_as_text_not_html():
    """The live-refresh scripts must keep using textContent for outputs.

    innerHTML only for what the server rendered and escaped: badges and the list's row cells.
    """
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates" / "admin" / "model"
    details = (root / "llmadmin_details.html").read_text()
    assert "out.textContent = row.result" in details
    for template in ("llmadmin_details.html", "llmadmin_list.html"):
        source = (root / template).read_text()
        rendered = source.count("innerHTML = row.badge") + source.count("innerHTML = row.cells[")
        assert source.count("innerHTML") == rendered, template
