"""The migrations: one head, ``flask db upgrade`` reaches it on an empty database, and the
migrated schema is exactly what the models declare (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from llmadmin import create_app
from llmadmin.database import normalise_url
from llmadmin.extensions import db
from llmadmin.models.task import is_batch_column_fk, is_unmodelled_search_object

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_URL = os.environ.get("DATABASE_URL", "")


def script_directory() -> ScriptDirectory:
    config = Config(os.path.join(MIGRATIONS, "alembic.ini"))
    config.set_main_option("script_location", MIGRATIONS)
    return ScriptDirectory.from_config(config)


def test_there_is_exactly_one_head():
    heads = script_directory().get_heads()
    assert len(heads) == 1, f"several migration heads {heads}: merge them (flask db merge)"


def test_every_revision_can_be_reached_from_base():
    script = script_directory()
    revisions = list(script.walk_revisions("base", "heads"))
    assert revisions, "no migrations found"
    assert [r.down_revision for r in revisions].count(None) == 1, "more than one initial migration"


# --- upgrading empty databases ---------------------------------------------------------------


def _postgres_admin_url() -> str | None:
    """The server to create a throwaway database on, or None to test SQLite only."""
    if DATABASE_URL:
        return normalise_url(DATABASE_URL)  # CI: must work, never skipped
    url = normalise_url(LOCAL_POSTGRES)
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return url
    except OperationalError:
        return None
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """Yield the URL of a brand-new, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrate.db"
        return
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(f"no DATABASE_URL and no PostgreSQL at {LOCAL_POSTGRES}: SQLite only")
    name = f"llmadmin_migrate_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def migration_app(empty_database, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMADMIN_INSTANCE", str(tmp_path))
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": empty_database,
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "SECRET_KEY": "test",
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def flask_db(app, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, (args, result.output, result.exception)


def current_heads(app) -> tuple[str, ...]:
    with app.app_context(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_heads()


def schema_differences(app) -> list:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        return compare_metadata(context, db.metadata)


def include_object(object, name, type_, reflected, compare_to):
    """As migrations/env.py: the text-search objects are the migrations' own."""
    if is_batch_column_fk(object, type_):
        return False  # checked by test_batch_foreign_key_sets_null
    return not (reflected and is_unmodelled_search_object(name, type_))


def test_upgrade_reaches_head_and_matches_the_models(migration_app):
    flask_db(migration_app, "upgrade")
    assert current_heads(migration_app) == tuple(script_directory().get_heads())
    assert schema_differences(migration_app) == []


def test_downgrade_to_base_and_upgrade_again(migration_app):
    flask_db(migration_app, "upgrade")
    flask_db(migration_app, "downgrade", "base")
    assert current_heads(migration_app) == ()
    with migration_app.app_context(), db.engine.connect() as conn:
        tables = set(db.inspect(conn).get_table_names()) - {"alembic_version"}
    assert tables == set()
    flask_db(migration_app, "upgrade")
    assert schema_differences(migration_app) == []


def test_the_schema_check_notices_drift(migration_app):
    """Guard the guard: a schema that differs from the models must be reported."""
    flask_db(migration_app, "upgrade")
    with migration_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_task_status_id"))
    differences = schema_differences(migration_app)
    assert [d[0] for d in differences] == ["add_index"]


def test_0009_backfills_one_run_per_finished_task(migration_app):
    """Old rows keep working: each SUCCESS / FAILURE task gets the run its columns describe."""
    flask_db(migration_app, "upgrade", "0007")
    with migration_app.app_context(), db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO llm_model (id, name, base_url, model_name, enabled, simulated, stream,"
                " temperature, max_tokens, timeout_seconds, max_concurrency, rpm_limit,"
                " max_attempts, breaker_threshold, breaker_cooldown_seconds, created_at,"
                " updated_at) VALUES (1, 'Old', 'http://x/v1', 'm', true, false, false, 0.7,"
                " 64, 60, 4, 0, 3, 5, 30, '2026-01-01', '2026-01-01')"
            )
        )
        for task_id, status, result in (
            (1, "SUCCESS", "done"),
            (2, "FAILURE", None),
            (3, "PENDING", None),
        ):
            conn.execute(
                text(
                    "INSERT INTO task (id, name, model_id, prompt, status, result, error, attempts,"
                    " created_at, finished_at) VALUES (:id, 't', 1, 'p', :status, :result,"
                    " :error, 2, '2026-01-01', '2026-01-02')"
                ),
                {
                    "id": task_id,
                    "status": status,
                    "result": result,
                    "error": "HTTP 500" if status == "FAILURE" else None,
                },
            )
    flask_db(migration_app, "upgrade")
    with migration_app.app_context(), db.engine.connect() as conn:
        runs = conn.execute(
            text(
                "SELECT task_id, status, result, error, attempts, model_label, params"
                " FROM task_run ORDER BY task_id"
            )
        ).all()
        outdated = conn.execute(text("SELECT DISTINCT result_outdated FROM task")).scalars().all()
    assert [tuple(r) for r in runs] == [
        (1, "SUCCESS", "done", None, 2, "Old", None),
        (2, "FAILURE", None, "HTTP 500", 2, "Old", None),
    ]
    assert [bool(v) for v in outdated] == [False]


def test_batch_foreign_key_sets_null(migration_app):
    """task.batch_id -> batch.id ON DELETE SET NULL on both databases (see is_batch_column_fk)."""
    flask_db(migration_app, "upgrade")
    with migration_app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("PRAGMA foreign_key_list(task)").all()
            found = [(r[2], r[3], r[4], r[6]) for r in rows if r[3] == "batch_id"]
            assert found == [("batch", "batch_id", "id", "SET NULL")]
        else:
            fks = db.inspect(conn).get_foreign_keys("task")
            found = [fk for fk in fks if fk["constrained_columns"] == ["batch_id"]]
            assert [
                (fk["name"], fk["referred_table"], fk["options"].get("ondelete")) for fk in found
            ] == [("fk_task_batch_id_batch", "batch", "SET NULL")]
