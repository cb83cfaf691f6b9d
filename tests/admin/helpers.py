"""Helpers for the admin tests: rows made directly in the database, URL lists, HTML probes."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from llmadmin.extensions import db
from llmadmin.models import Download, LLMModel, Person, Task
from llmadmin.models.task import SUCCESS

# Endpoints anyone may reach: the login page, public assets, the health check and "/"
# (which only redirects to /admin/, itself covered).
PUBLIC_ENDPOINTS = {
    "static",
    "admin.static",
    "rq_dashboard.static",
    "auth.login",
    "auth.home",
    "health.healthz",
    "health.favicon",  # every browser asks for /favicon.ico, signed in or not
    "i18n.set_locale",  # the language switch of the sign-in page (saved in the session)
}

# Values for the URL converters of the routes in app.url_map.
URL_ARGS = {
    "instance_number": 0,
    "job_id": "no-such-job",
    "queue_name": "llm",
    "registry_name": "queued",
    "per_page": 10,
    "order": "asc",
    "page": 1,
    "export_type": "csv",
    "download_id": 1,
    "filename": "x.css",
    "task_id": 1,
    "model_id": 1,
    "name": "Sim",  # /v1/models/<name> (the gateway)
    "operation_id": 1,
    "batch_id": 1,
    "fmt": "csv",
    "file_id": "file-0",  # /v1/files/<file_id> (the gateway)
}


class ContextPerRequestClient(FlaskClient):
    """A test client that runs every request in its own app context, as a server does.

    The ``app`` fixture keeps one app context pushed for the whole test, and Flask reuses it
    for requests: ``g`` (Flask-Login's cached user, Flask-WTF's token) and the database
    session would then leak from one request, or one client, to the next.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def make_client(app) -> ContextPerRequestClient:
    """Return a cookie-keeping test client whose requests do not share ``g`` or a session."""
    return ContextPerRequestClient(app, app.response_class, use_cookies=True)


# --- fixtures: import them into a test module to use them there ----------------------------


@pytest.fixture(name="client")
def context_per_request_client(app):
    """The conftest ``client``, but with one app context per request (see above)."""
    return make_client(app)


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """Hash passwords with a single PBKDF2 round: scrypt costs 0.2 s per login and per person."""
    import llmadmin.models.person as person_module

    monkeypatch.setattr(
        person_module,
        "generate_password_hash",
        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1"),
    )


def protected_urls(app) -> list[tuple[str, str]]:
    """Return (method, url) for every route that needs a login, built from the URL map.

    The JSON API (``api.*``) is left out: it takes a token, never a session, so it answers 401
    rather than the login page and needs no CSRF token; tests/api checks both (every route
    refuses a request without a token, and one with only a session cookie). The same goes for
    the OpenAI-compatible gateway (``gateway.*``, tests/gateway).
    """
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.startswith(("api.", "gateway.")):
            continue
        url = rule.build({name: URL_ARGS[name] for name in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            urls.append((method, url))
    return urls


def send(client, method: str, url: str, **kwargs):
    """Make a request, following the URL map's own 307/308 canonical-URL redirects (not 302s)."""
    response = client.open(url, method=method, **kwargs)
    kwargs.pop("query_string", None)  # the Location keeps it
    for _ in range(3):
        if response.status_code not in (307, 308):
            break
        response = client.open(response.headers["Location"], method=method, **kwargs)
    return response


def redirect_path(response) -> str:
    """Return the path a redirect response points at."""
    return urlsplit(response.headers.get("Location", "")).path


def make_task(
    creator: Person | None,
    model: LLMModel | None,
    *,
    name: str = "a task",
    status: str = SUCCESS,
    prompt: str = "Say hi",
    result: str | None = "hi",
) -> Task:
    """Insert a task row directly (no queueing)."""
    task = Task(
        name=name,
        prompt=prompt,
        status=status,
        result=result,
        creator_id=creator.id if creator else None,
        model_id=model.id if model else None,
    )
    db.session.add(task)
    db.session.commit()
    return task


def make_download(
    creator: Person | None,
    *,
    name: str = "an export",
    status: str = "SUCCESS",
    file_name: str = "export.csv",
) -> Download:
    """Insert a Download Center row directly (exports are built elsewhere)."""
    row = Download(
        name=name,
        file_name=file_name,
        status=status,
        row_count=3,
        size_bytes=42,
        creator_id=creator.id if creator else None,
    )
    db.session.add(row)
    db.session.commit()
    return row


def snapshot(row, ignore: tuple[str, ...] = ()) -> dict | None:
    """Return a row's column values as freshly read from the database (None if gone)."""
    db.session.expire_all()
    fresh = db.session.get(type(row), row.id)
    if fresh is None:
        return None
    return {c.key: getattr(fresh, c.key) for c in fresh.__table__.columns if c.key not in ignore}


def text(response) -> str:
    return response.get_data(as_text=True)


def field_errors(page: str, field: str) -> list[str]:
    """Return the error messages rendered next to the input ``field`` of an admin form."""
    match = re.search(rf'<(?:input|textarea|select)[^>]*\bid="{re.escape(field)}"', page)
    assert match, f"no field {field!r} on the page"
    rest = page[match.end() :]
    end = rest.find('<div class="form-group')
    block = rest if end < 0 else rest[:end]
    feedback = block.find('class="invalid-feedback"')
    if feedback < 0:
        return []
    return [html.unescape(m.strip()) for m in re.findall(r"<li>(.*?)</li>", block[feedback:], re.S)]


def flashes(page: str) -> str:
    """Return the text of the flash alerts on a page, for assertions."""
    return " ".join(
        html.unescape(m)
        for m in re.findall(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', page, re.S)
    )
