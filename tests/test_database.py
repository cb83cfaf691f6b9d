"""Database helpers of the gateway's hot path: SQLite's write turn, PostgreSQL's commit wait."""

import threading

import pytest
from sqlalchemy import func, select, text

from llmadmin.database import relax_commit_durability, write_turn
from llmadmin.extensions import db
from llmadmin.models import AuditEntry


def _is_sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def test_a_failed_write_is_rolled_back_before_the_next_turn(app):
    """The next thread must not find SQLite's lock still held by a failed transaction."""
    with pytest.raises(RuntimeError), write_turn(db.session):
        db.session.add(AuditEntry(action="x", person_label="t"))
        db.session.flush()
        raise RuntimeError("the request failed mid-write")
    assert db.session.execute(select(func.count()).select_from(AuditEntry)).scalar() == 0


def test_writers_of_one_process_take_turns_on_sqlite_only(app):
    """On SQLite a thread waits for the turn of another; PostgreSQL has row locks: no wait."""
    release, entered = threading.Event(), []

    def second():
        with app.app_context(), write_turn(db.session):
            entered.append(release.is_set())

    with write_turn(db.session):
        other = threading.Thread(target=second)
        other.start()
        other.join(0.2)
        release.set()
    other.join(5)
    # SQLite: it entered only after the first turn ended; PostgreSQL: at once.
    assert entered == [_is_sqlite()]


def test_relaxed_commit_skips_the_flush_wait_for_this_transaction_only(app):
    if _is_sqlite():
        relax_commit_durability(db.session)  # a no-op there
        return
    relax_commit_durability(db.session)
    assert db.session.execute(text("SHOW synchronous_commit")).scalar() == "off"
    db.session.commit()
    assert db.session.execute(text("SHOW synchronous_commit")).scalar() == "on"
