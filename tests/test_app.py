"""The application shell: the CLI and the error pages."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError, OperationalError

from llmadmin.extensions import db
from llmadmin.models import Person


def find_person(email: str) -> Person | None:
    db.session.expire_all()
    return db.session.execute(select(Person).where(Person.email == email)).scalar_one_or_none()


# --- create-user -------------------------------------------------------------------------------


def test_create_admin(runner):
    result = runner.invoke(
        args=["create-user", "Root@Example.com", "--password", "correct-horse", "--admin"]
    )
    assert result.exit_code == 0, result.output
    assert "Admin root@example.com ready" in result.output
    person = find_person("root@example.com")
    assert person.is_admin and person.active and person.name == "root"
    assert person.check_password("correct-horse")


def test_create_member_with_a_name(runner):
    result = runner.invoke(
        args=["create-user", "m@example.com", "--password", "12345678", "--name", "Mia"]
    )
    assert result.exit_code == 0, result.output
    person = find_person("m@example.com")
    assert person.role == "member" and person.name == "Mia"


def test_password_prompt_with_confirmation(runner):
    result = runner.invoke(
        args=["create-user", "p@example.com"], input="long-enough\nlong-enough\n"
    )
    assert result.exit_code == 0, result.output
    assert find_person("p@example.com").check_password("long-enough")


def test_existing_user_gets_new_password_and_role(runner):
    runner.invoke(args=["create-user", "x@example.com", "--password", "first-password"])
    result = runner.invoke(
        args=["create-user", "X@example.com", "--password", "second-password", "--admin"]
    )
    assert result.exit_code == 0, result.output
    assert db.session.query(Person).count() == 1
    person = find_person("x@example.com")
    assert person.is_admin and person.check_password("second-password")


def test_too_short_password_is_a_clear_error(runner):
    result = runner.invoke(args=["create-user", "s@example.com", "--password", "short", "--admin"])
    assert result.exit_code != 0
    assert "The password must have at least 8 characters." in result.output
    assert "Traceback" not in result.output
    assert find_person("s@example.com") is None


def test_invalid_email_is_a_clear_error(runner):
    result = runner.invoke(args=["create-user", "not-an-email", "--password", "long-enough"])
    assert result.exit_code != 0
    assert "Give a valid email address." in result.output
    assert db.session.query(Person).count() == 0


# --- error pages -------------------------------------------------------------------------------


def test_404_is_a_page_or_json(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found." in response.get_data(as_text=True)
    response = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not found.", "status": 404}


def test_405_page(client):
    response = client.get("/logout")
    assert response.status_code == 405
    assert "This action is not allowed here." in response.get_data(as_text=True)


def test_database_refusing_a_value_is_a_400(app, client):
    def refuse():
        raise DataError(
            "SELECT 1", {}, ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        )

    app.add_url_rule("/_refuse", "refuse", refuse)
    response = client.get("/_refuse")
    assert response.status_code == 400
    assert "cannot be used here" in response.get_data(as_text=True)


def test_server_error_rolls_the_session_back(app, client):
    """After a failed statement the error page and later hooks can still use the database."""
    seen = []

    def broken():
        db.session.execute(db.text("SELECT * FROM no_such_table"))

    @app.after_request
    def query_after(response):
        seen.append(db.session.execute(db.text("SELECT 1")).scalar())
        return response

    app.add_url_rule("/_broken", "broken", broken)
    response = client.get("/_broken")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.get_data(as_text=True)
    assert seen == [1]


@pytest.mark.parametrize(
    "message", ["database is locked", "server closed the connection unexpectedly"]
)
def test_a_busy_or_lost_database_is_a_503_with_a_clear_message(app, client, message):
    def busy():
        orig = sqlite3.OperationalError(message) if "locked" in message else RuntimeError(message)
        raise OperationalError("UPDATE task SET …", {}, orig)

    app.add_url_rule("/_busy", "busy", busy)
    response = client.get("/_busy")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "busy or unreachable right now; nothing was changed" in response.get_data(as_text=True)
    assert client.get("/_busy", headers={"Accept": "application/json"}).get_json()["status"] == 503


def test_bad_sql_on_sqlite_is_not_called_a_busy_database(app, client):
    def bad():
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: nope"))

    app.add_url_rule("/_bad", "bad", bad)
    assert client.get("/_bad").status_code == 500
