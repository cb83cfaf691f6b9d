"""Shared fixtures.

The suite runs on SQLite + the embedded Redis by default; with DATABASE_URL it uses a
fresh PostgreSQL database created for the session, with REDIS_URL a real Redis
(database number TEST_REDIS_DB, default 13, flushed between tests).
"""

from __future__ import annotations

import os
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from llmadmin import create_app
from llmadmin.extensions import db

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("instance")
    os.environ["LLMADMIN_INSTANCE"] = str(path)
    return path


@pytest.fixture(scope="session")
def database_uri(instance_dir):
    if not DATABASE_URL:
        yield f"sqlite:///{instance_dir}/test.db"
        return
    from llmadmin.database import normalise_url

    admin_url = normalise_url(DATABASE_URL)
    name = f"llmadmin_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(admin_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url(instance_dir):
    if REDIS_URL:
        parts = urlsplit(REDIS_URL)
        yield urlunsplit(parts._replace(path=f"/{os.environ.get('TEST_REDIS_DB', '13')}"))
        return
    from llmadmin.queues import ensure_embedded_redis, stop_embedded_redis

    directory = str(instance_dir / "redis")
    yield ensure_embedded_redis(directory)
    stop_embedded_redis(directory)


@pytest.fixture(scope="session")
def migrated(database_uri, redis_url):
    """Upgrade the session database to head once (the real migrations, not create_all)."""
    from flask_migrate import upgrade

    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_uri, "REDIS_URL": redis_url}
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_uri


class ContextPerRequestClient(FlaskClient):
    """A test client that runs every request in its own app context, as a server does.

    The ``app`` fixture keeps one app context pushed for the whole test; without this,
    Flask would reuse it for requests and ``g`` (Flask-Login's cached user, the CSRF
    token) and the database session would leak from one request or client to the next.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def make_test_app(database_uri: str, redis_url: str, **overrides):
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "REDIS_URL": redis_url,
        "SERVER_NAME": None,
        **overrides,
    }
    app = create_app(config)
    app.test_client_class = ContextPerRequestClient
    return app


@pytest.fixture
def app(migrated, redis_url):
    app = make_test_app(migrated, redis_url)
    with app.app_context():
        _empty_tables()
        redis.Redis.from_url(redis_url).flushdb()
        yield app
        db.session.remove()
        db.engine.dispose()


def _empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- people and logins ------------------------------------------------------------------


@pytest.fixture
def admin_user(app):
    from llmadmin.services.people import create_user

    return create_user("admin@example.com", "admin-password", name="Ada Admin", admin=True)


@pytest.fixture
def member_user(app):
    from llmadmin.services.people import create_user

    return create_user("member@example.com", "member-password", name="Max Member")


@pytest.fixture
def other_member(app):
    from llmadmin.services.people import create_user

    return create_user("other@example.com", "other-password", name="Olga Other")


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(client, url: str = "/login") -> str:
    """Fetch a page and return the CSRF token rendered in it."""
    html = client.get(url).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no csrf token on {url}"
    return match.group(1) or match.group(2)


def login(client, email: str, password: str):
    token = csrf_token(client)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def post_form(client, url: str, data: dict, token_from: str = "/admin/", **kwargs):
    """POST ``data`` with a valid CSRF token taken from ``token_from``."""
    payload = dict(data)
    payload["csrf_token"] = csrf_token(client, token_from)
    return client.post(url, data=payload, **kwargs)


@pytest.fixture
def admin_client(client, admin_user):
    login(client, "admin@example.com", "admin-password")
    return client


@pytest.fixture
def member_client(client, member_user):
    login(client, "member@example.com", "member-password")
    return client


@pytest.fixture
def sim_model(app, admin_user):
    """A model row pointing at a simulated endpoint URL (no server needed unless called)."""
    from llmadmin.models import LLMModel

    model = LLMModel(
        name="Sim",
        base_url="http://127.0.0.1:9/v1",
        model_name="sim-chat",
        simulated=True,
        max_concurrency=4,
        maintainer_id=admin_user.id,
    )
    db.session.add(model)
    db.session.commit()
    return model


def run_batch_jobs() -> list[str]:
    """Do what a worker does with the queued batch-creation jobs: run each once, by its id."""
    from llmadmin.models import Batch
    from llmadmin.models.batch import BatchStatus
    from llmadmin.services.batch_creation import run_creation

    waiting = db.session.execute(
        db.select(Batch.id, Batch.job_id).where(Batch.status == BatchStatus.VALIDATING)
    ).all()
    db.session.commit()
    outcomes = [run_creation(batch_id, job_id) for batch_id, job_id in waiting]
    db.session.expire_all()
    return outcomes
