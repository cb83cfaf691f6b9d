"""Security headers on every response, and Flask-Admin's pages working under the CSP."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest

from llmadmin import security
from llmadmin.extensions import db
from llmadmin.models import AuditEntry
from llmadmin.models.code_outbox import CodeOutboxEntry
from tests.admin.helpers import make_download, make_task
from tests.conftest import login, make_test_app

BASE_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def csp_of(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part for part in (p.strip() for p in header.split(";")) if part}


def assert_secure_headers(response, label=""):
    for name, value in BASE_HEADERS.items():
        assert response.headers.get(name) == value, (label, name)
    policy = csp_of(response)
    assert policy["frame-ancestors"] == "frame-ancestors 'none'", label
    assert policy["object-src"] == "object-src 'none'", label
    assert "'unsafe-inline'" not in policy["script-src"], label


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class InlineCode(HTMLParser):
    """Collect inline event handler attributes and inline script texts, decoded as a browser does."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.handlers: list[tuple[str, str]] = []
        self.scripts: list[str] = []
        self._script = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.handlers += [
            (name, value or "") for name, value in attrs.items() if name.startswith("on")
        ]
        inline = tag == "script" and "src" not in attrs and attrs.get("type", "") != "text/template"
        self._script = [] if inline else None

    def handle_data(self, data):
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None


@pytest.fixture
def rows(app, admin_user, sim_model):
    task = make_task(admin_user, sim_model, name="t1")
    download = make_download(
        admin_user, status="RUNNING"
    )  # its page refreshes itself with a script
    db.session.add(
        AuditEntry(action="create", object_type="task", object_id=str(task.id), summary="x")
    )
    db.session.add(CodeOutboxEntry(person_id=admin_user.id, channel="log", body="code 123456"))
    db.session.commit()
    return {
        "task": task.id,
        "llmmodel": sim_model.id,
        "person": admin_user.id,
        "download": download.id,
    }


def admin_pages(rows) -> list[str]:
    pages = [
        "/admin/",
        "/admin/audit/",
        "/admin/code_outbox/",
        "/admin/task/new/",
        "/admin/task/new/?modal=True",
        "/admin/llmmodel/new/",
        "/admin/person/new/",
        f"/admin/task/duplicate/?ids={rows['task']}",
    ]
    for endpoint in ("task", "llmmodel", "person"):
        pages += [
            f"/admin/{endpoint}/",
            f"/admin/{endpoint}/details/?id={rows[endpoint]}",
            f"/admin/{endpoint}/edit/?id={rows[endpoint]}",
        ]
    return pages


# Owned by the Download Center: their inline <script> blocks still need the nonce attribute.
DOWNLOAD_PAGES = ["/admin/download/", "/admin/download/details/?id={download}"]


def test_every_kind_of_response_carries_the_headers(app, client, admin_user, rows):
    anonymous = [
        client.get("/login"),
        client.get("/healthz"),
        client.get("/no-such-page"),
        client.get("/admin/static/vendor/jquery.min.js"),
        client.get("/admin/task/"),
    ]
    login(client, "admin@example.com", "admin-password")
    signed_in = [
        client.get("/admin/task/"),
        client.get(f"/admin/task/status.json?ids={rows['task']}"),
        client.get("/admin/rq/"),
        client.get("/admin/rq/0/data/queues.json"),
        client.get("/admin/task/details/?id=999999"),
    ]
    for response in anonymous + signed_in:
        assert_secure_headers(response, response.request.path)
    assert "Strict-Transport-Security" not in signed_in[0].headers


def test_hsts_is_sent_when_cookies_are_marked_secure(migrated, redis_url):
    app = make_test_app(migrated, redis_url, SESSION_COOKIE_SECURE=True)
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_script_policy_is_self_a_fresh_nonce_and_exact_hashes(client):
    first, second = csp_of(client.get("/login")), csp_of(client.get("/login"))
    assert re.match(
        r"script-src 'self' 'nonce-[\w-]{20,}' 'unsafe-hashes' 'sha256-", first["script-src"]
    )
    assert first["script-src"] != second["script-src"]
    assert "'unsafe-eval'" not in first["script-src"]
    assert first["style-src"] == "style-src 'self' 'unsafe-inline'"  # styles cannot run code


def scripts_without_the_nonce(html: str, nonce: str) -> list[str]:
    bad = []
    for tag in re.findall(r"<script\b[^>]*>", html, re.I):
        if re.search(r"""type=["']text/template""", tag):
            continue
        if f'nonce="{nonce}"' not in tag:
            bad.append(tag)
    return bad


def test_every_script_on_the_admin_pages_carries_the_pages_nonce(client, admin_user, rows):
    login(client, "admin@example.com", "admin-password")
    for url in admin_pages(rows):
        response = client.get(url)
        assert response.status_code == 200, url
        nonce = re.search(r"'nonce-([\w-]+)'", response.headers["Content-Security-Policy"]).group(1)
        html = response.get_data(as_text=True)
        assert "<script" in html, url
        assert scripts_without_the_nonce(html, nonce) == [], url


@pytest.mark.parametrize("url", DOWNLOAD_PAGES)
def test_download_center_scripts_carry_the_nonce(client, admin_user, rows, url):
    login(client, "admin@example.com", "admin-password")
    response = client.get(url.format(**rows))
    nonce = re.search(r"'nonce-([\w-]+)'", response.headers["Content-Security-Policy"]).group(1)
    assert scripts_without_the_nonce(response.get_data(as_text=True), nonce) == []


def test_every_inline_handler_is_allowed_by_its_exact_hash(client, admin_user, rows):
    login(client, "admin@example.com", "admin-password")
    seen = set()
    for url in admin_pages(rows) + [u.format(**rows) for u in DOWNLOAD_PAGES]:
        response = client.get(url)
        script_src = csp_of(response)["script-src"]
        for name, code in InlineCode(response.get_data(as_text=True)).handlers:
            assert "'unsafe-hashes'" in script_src
            assert sha(code) in script_src, (
                f"{url}: inline {name}={code!r} would be blocked by the CSP"
            )
            seen.add(code)
    assert (
        "return modelActions.execute('cancel');" in seen
    )  # bulk actions were on the pages checked
    assert "return faHelpers.safeConfirm('Are you sure you want to delete this record?');" in seen
    assert "return false;" in seen


def test_modal_scripts_are_allowed_on_the_page_that_loads_them(client, admin_user, rows):
    """jQuery inserts the modal's script with the nonce of the modal's response: its hash must allow it."""
    login(client, "admin@example.com", "admin-password")
    page_policy = csp_of(client.get("/admin/task/"))["script-src"]
    scripts = InlineCode(client.get("/admin/task/new/?modal=True").get_data(as_text=True)).scripts
    assert scripts
    for body in scripts:
        assert sha(body) in page_policy, body


def test_hashes_allow_those_exact_texts_only():
    sources = security._admin_inline_sources(("run",))
    assert sha("return modelActions.execute('run');") in sources
    assert sha("return modelActions.execute('run'); alert(1)") not in sources
    assert sha("return modelActions.execute('drop');") not in sources
    assert "'unsafe-inline'" not in sources


def test_rq_dashboard_allows_exactly_its_own_inline_scripts(client, admin_user):
    login(client, "admin@example.com", "admin-password")
    for url in ("/admin/rq/", "/admin/rq/0/view/workers", "/admin/rq/0/view/jobs"):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        policy = csp_of(response)
        inline = InlineCode(response.get_data(as_text=True)).scripts
        assert inline, url
        for body in inline:
            assert sha(body) in policy["script-src"], url
        assert "'unsafe-inline'" not in policy["script-src"]
        assert "'unsafe-eval'" in policy["script-src"]  # underscore templates
        assert "'nonce-" not in policy["script-src"]


def test_inline_script_hashes_skip_templates_and_external_scripts():
    html = (
        '<script src="/a.js"></script><script type="text/template"><b></b></script>'
        '<script type="text/javascript">var a = 1;</script><script>b()</script>'
    )
    assert security.inline_script_hashes(html) == [sha("var a = 1;"), sha("b()")]


def test_a_view_may_send_its_own_policy(app):
    @app.route("/__own_policy")
    def own_policy():
        return "x", 200, {"Content-Security-Policy": "default-src 'none'"}

    response = app.test_client().get("/__own_policy")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
