"""Sign-ins, failed sign-ins and sign-outs are audited: who, from where, never the password."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.models import AuditEntry
from tests.conftest import csrf_token, login


def entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return (
        db.session.execute(
            db.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        .scalars()
        .all()
    )


def every_audit_value() -> str:
    db.session.expire_all()
    rows = db.session.execute(db.select(AuditEntry)).scalars().all()
    return " ".join(str(getattr(row, c.key)) for row in rows for c in AuditEntry.__table__.columns)


def test_successful_sign_in_is_recorded_with_person_and_ip(client, member_user):
    response = login(client, "member@example.com", "member-password")
    assert response.status_code == 302
    [entry] = entries("login")
    assert entry.person_id == member_user.id
    assert "member@example.com" in entry.person_label
    assert entry.ip == "127.0.0.1"
    assert entry.object_type == "person" and entry.object_id == str(member_user.id)


def test_sign_out_is_recorded(client, member_user):
    login(client, "member@example.com", "member-password")
    token = csrf_token(client, "/admin/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    [entry] = entries("logout")
    assert entry.person_id == member_user.id and entry.ip == "127.0.0.1"


def test_wrong_password_records_the_email_tried_never_the_password(client, member_user):
    login(client, "Member@Example.com", "s3cret-guess-XYZ")
    [entry] = entries("login_failed")
    assert entry.person_id is None and entry.person_label == "anonymous"
    assert entry.ip == "127.0.0.1"
    assert "member@example.com" in entry.summary and "wrong password" in entry.summary
    assert "s3cret-guess-XYZ" not in every_audit_value()
    assert not entries("login")


def test_unknown_account_is_recorded_as_a_failure(client):
    login(client, "nobody@example.com", "whatever-password-123")
    [entry] = entries("login_failed")
    assert "nobody@example.com" in entry.summary and "unknown account" in entry.summary
    assert "whatever-password-123" not in every_audit_value()


def test_deactivated_account_is_recorded_as_a_failure(client, member_user):
    member_user.active = False
    db.session.commit()
    login(client, "member@example.com", "member-password")
    [entry] = entries("login_failed")
    assert "deactivated" in entry.summary
    assert "member-password" not in every_audit_value()


def test_refused_attempt_during_a_lockout_is_recorded(app, client, member_user):
    app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] = 1
    login(client, "member@example.com", "wrong-1")
    login(client, "member@example.com", "member-password")
    failures = entries("login_failed")
    assert len(failures) == 2 and "locked out" in failures[1].summary
    assert not entries("login")
