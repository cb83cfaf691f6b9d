"""Database setup: SQLite defaults (WAL, busy timeout, foreign keys) and engine options."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from llmadmin.extensions import db, migrate

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 32
# Ids per ``IN (...)`` list: well under every database's parameter limit.
IN_LIST_BATCH = 500


def in_batches(ids: Iterable[int], size: int = IN_LIST_BATCH) -> Iterator[list[int]]:
    """Yield ``ids`` in lists of at most ``size``, for queries with ``IN (...)``."""
    ids = list(ids)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, connection_record) -> None:
    """WAL lets readers and one writer work at once; busy_timeout waits instead of failing."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# SQLite reports bad SQL as OperationalError too; only these messages mean "try again".
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "disk i/o error",
    "unable to open database file",
)


def is_transient_error(exc: BaseException) -> bool:
    """Tell whether a database error is worth retrying (lock, busy, lost connection)."""
    if isinstance(exc, InterfaceError) or getattr(exc, "connection_invalidated", False):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return any(text in str(exc.orig).lower() for text in _SQLITE_TRANSIENT)
    return True  # PostgreSQL: connection failures, lock and statement timeouts, serialization


_SQLITE_WRITE_TURN = threading.Lock()


@contextmanager
def write_turn(session) -> Iterator[None]:
    """Let one thread of this process at a time hold SQLite's write lock (no-op elsewhere).

    SQLite has one writer; a thread that finds the lock taken sleeps 1, 2, 5, 10… ms before
    it looks again (its busy handler), and nobody wakes it when the lock is free. With 32
    web threads inserting gateway calls at once, most of a call's time went into those
    sleeps (sampled: half of the web threads' busy time). Queued on this lock instead,
    a thread starts as soon as the one before it commits; only other processes still
    meet SQLite's busy handler. Wrap a whole write transaction (first write to commit); it
    is rolled back at once when it fails.
    """
    turn = _SQLITE_WRITE_TURN if session.get_bind().dialect.name == "sqlite" else nullcontext()
    with turn:
        try:
            yield
        except BaseException:
            session.rollback()  # give SQLite's lock back before the next thread's turn
            raise


def relax_commit_durability(session) -> None:
    """Let this transaction's commit return before its WAL record is on disk (PostgreSQL).

    Only for a step whose loss in a database crash is recovered anyway and that a later,
    durable commit of the same work follows: WAL is flushed in order, so that commit makes
    this one durable too (a gateway call's row and claim, then its outcome). The commit
    no longer waits for a flush of its own (about 4 ms per commit on the shared machine).
    Nothing changes on SQLite (WAL with synchronous=NORMAL does not flush on commit).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgresql:// URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def init_app(app) -> None:
    """Default to an SQLite file in the instance folder and bind SQLAlchemy and Alembic."""
    url = app.config.get("SQLALCHEMY_DATABASE_URI") or (
        "sqlite:///" + os.path.join(app.instance_path, "llmadmin.db")
    )
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_url(url)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database not in (None, "", ":memory:"):
            # A web process has up to 32 threads: keep their connections instead of opening
            # (and tuning) a new one for each request past QueuePool's default 5.
            options.setdefault("pool_size", SQLITE_POOL_SIZE)
            options.setdefault("max_overflow", SQLITE_POOL_SIZE)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    migrations = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
    migrate.init_app(app, db, directory=migrations, render_as_batch=True)
