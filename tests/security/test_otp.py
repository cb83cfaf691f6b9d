"""One-time sign-in codes: the second step, hashed storage, expiry, resend, tries, single use, delivery."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from llmadmin import crypto
from llmadmin.extensions import db
from llmadmin.jobs.notify import send_login_code
from llmadmin.models import AuditEntry
from llmadmin.models.code_outbox import CodeOutboxEntry
from llmadmin.notifiers import NotifyError, get_notifier
from llmadmin.notifiers.channels import SmsNotifier, SmtpNotifier
from llmadmin.queues import get_queue
from llmadmin.services import otp
from tests.conftest import csrf_token
from tests.security.conftest import age, flash_text, page_text, redis_dump

CODE = "402913"


@pytest.fixture(autouse=True)
def fixed_code(monkeypatch):
    """Make the codes predictable so the tests can look for them anywhere."""
    codes = iter([CODE, "718264", "530971", "264580"])
    monkeypatch.setattr(otp, "generate_code", lambda: next(codes))


@pytest.fixture
def codes_for_admins(app):
    app.config["OTP_REQUIRED_FOR_ADMINS"] = True


def password_step(client, email="admin@example.com", password="admin-password", **kwargs):
    token = csrf_token(client)
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs
    )


def code_step(client, code):
    token = csrf_token(client)  # the session's token; /login/code itself may redirect
    return client.post("/login/code", data={"code": code, "csrf_token": token})


def resend(client):
    token = csrf_token(client, "/login/code")
    return client.post("/login/code/resend", data={"csrf_token": token}, follow_redirects=True)


def signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def queued_code_jobs():
    return [j for j in get_queue("llm").get_jobs() if j.func_name.endswith("send_login_code")]


def run_code_jobs() -> list[str]:
    """Run the queued delivery jobs in this process, like a worker would."""
    return [send_login_code(*job.args) for job in queued_code_jobs()]


# --- the second step through the web ------------------------------------------------------------


def test_admin_gets_the_code_step_and_is_not_signed_in_before_it(
    client, admin_user, codes_for_admins
):
    response = password_step(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login/code"
    assert not signed_in(client)
    page = page_text(client.get("/login/code"))
    assert "type the 6-digit code" in page and "valid for" in page
    with client.session_transaction() as session:
        assert "pending_2fa" in session and "_user_id" not in session


def test_the_code_is_sent_by_a_job_and_the_right_code_signs_in(
    client, admin_user, codes_for_admins, caplog
):
    password_step(client)
    [job] = queued_code_jobs()
    assert job.args[0] == admin_user.id and CODE not in repr(job.args)
    assert crypto.decrypt(job.args[1]) == CODE  # encrypted in the job, not hashed: it must be sent
    with caplog.at_level(logging.INFO):
        assert run_code_jobs() == ["sent"]
    assert CODE in caplog.text  # the log notifier writes it to the log...
    [entry] = db.session.execute(db.select(CodeOutboxEntry)).scalars().all()
    assert CODE in entry.body and entry.destination == "admin@example.com"  # ...and to the outbox
    assert entry.person_id == admin_user.id and entry.channel == "log"

    response = code_step(client, CODE)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert signed_in(client)
    [login] = (
        db.session.execute(db.select(AuditEntry).where(AuditEntry.action == "login"))
        .scalars()
        .all()
    )
    assert "one-time code" in login.summary and login.person_id == admin_user.id


def test_the_code_is_stored_hashed_never_in_plain_text(client, admin_user, codes_for_admins, r):
    password_step(client)
    stored = r.get(otp.code_key(admin_user.id)).decode()
    assert stored == otp.digest(admin_user.id, CODE) and CODE not in stored
    dump = redis_dump(r)
    assert "send_login_code" in dump  # the dump includes the unpacked job payload
    assert CODE not in dump


def test_members_without_the_flag_sign_in_with_the_password_only(
    client, member_user, codes_for_admins
):
    response = password_step(client, "member@example.com", "member-password")
    assert response.headers["Location"] == "/admin/" and signed_in(client)
    assert not queued_code_jobs()


def test_a_person_can_be_asked_for_a_code_individually(app, client, member_user, runner):
    result = runner.invoke(args=["require-code", "MEMBER@example.com"])
    assert result.exit_code == 0 and "now needs" in result.output
    db.session.expire_all()
    [change] = (
        db.session.execute(
            db.select(AuditEntry).where(
                AuditEntry.action == "update", AuditEntry.object_type == "person"
            )
        )
        .scalars()
        .all()
    )
    assert change.person_label == "cli" and '"otp_required": [false, true]' in change.changes
    assert (
        password_step(client, "member@example.com", "member-password").headers["Location"]
        == "/login/code"
    )
    run_code_jobs()
    assert code_step(client, CODE).headers["Location"] == "/admin/"
    runner.invoke(args=["require-code", "member@example.com", "--off"])
    db.session.expire_all()
    assert not otp.required_for(member_user)


def test_the_page_never_waits_for_the_sending(client, admin_user, codes_for_admins, monkeypatch):
    def broken(self, message):
        raise AssertionError("the web request must not send")

    monkeypatch.setattr("llmadmin.notifiers.channels.LogNotifier.send", broken)
    assert password_step(client).headers["Location"] == "/login/code"
    assert len(queued_code_jobs()) == 1


def test_a_wrong_code_says_how_many_tries_are_left(client, admin_user, codes_for_admins):
    password_step(client)
    page = page_text(code_step(client, "000000"))
    assert "Wrong code. 4 tries left." in flash_text(page)
    assert not signed_in(client)


def test_code_step_without_a_password_step_goes_back_to_login(client, admin_user):
    response = client.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_the_pending_step_expires(app, client, admin_user, codes_for_admins):
    password_step(client)
    with client.session_transaction() as session:
        pending = session["pending_2fa"]
        pending["until"] = 0
        session["pending_2fa"] = pending
    response = code_step(client, CODE)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert not signed_in(client)


# --- expiry, resend, tries, single use ----------------------------------------------------------


def test_an_expired_code_is_refused(client, admin_user, codes_for_admins, r):
    password_step(client)
    age(r, otp.code_key(admin_user.id), 60)
    page = page_text(code_step(client, CODE))
    assert "This code has expired or was already used. Ask for a new code." in flash_text(page)
    assert not signed_in(client)


def test_the_code_lives_sixty_seconds(client, admin_user, codes_for_admins, r):
    password_step(client)
    assert 55 <= r.ttl(otp.code_key(admin_user.id)) <= 60
    age(r, otp.code_key(admin_user.id), 59)
    run_code_jobs()
    assert code_step(client, CODE).headers["Location"] == "/admin/"


def test_resend_is_refused_while_the_code_is_live_with_the_seconds_left(
    client, admin_user, codes_for_admins, r
):
    password_step(client)
    age(r, otp.code_key(admin_user.id), 18)
    page = page_text(resend(client))
    seconds = int(
        re.search(
            r"valid for (\d+) more seconds; you can ask for a new one", flash_text(page)
        ).group(1)
    )
    assert 40 <= seconds <= 42
    assert len(queued_code_jobs()) == 1  # nothing new was sent


def test_resend_after_expiry_sends_a_new_code(client, admin_user, codes_for_admins, r):
    password_step(client)
    age(r, otp.code_key(admin_user.id), 60)
    page = page_text(resend(client))
    assert "A sign-in code was sent to you" in flash_text(page)
    assert len(queued_code_jobs()) == 2
    assert code_step(client, CODE).status_code == 200  # the old code is gone
    assert code_step(client, "718264").headers["Location"] == "/admin/"


def test_five_tries_at_most_then_even_the_right_code_fails(
    app, client, admin_user, codes_for_admins
):
    app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] = 100  # look at the code's own limit only
    password_step(client)
    for left in (4, 3, 2, 1):
        assert f"{left} tr" in flash_text(page_text(code_step(client, "111111")))
    assert "that was the last try" in flash_text(page_text(code_step(client, "111111")))
    page = page_text(code_step(client, CODE))
    assert "expired or was already used" in flash_text(page)
    assert not signed_in(client)


def test_wrong_codes_count_as_failed_sign_ins(client, admin_user, codes_for_admins):
    password_step(client)
    for _ in range(5):
        code_step(client, "111111")
    page = page_text(code_step(client, CODE))
    assert "Too many failed sign-ins for this account" in flash_text(page)
    failures = (
        db.session.execute(db.select(AuditEntry).where(AuditEntry.action == "login_failed"))
        .scalars()
        .all()
    )
    assert sum("wrong one-time code" in e.summary for e in failures) == 5


def test_a_code_works_once(app, admin_user, codes_for_admins):
    otp.issue(admin_user)
    otp.verify(admin_user.id, CODE)
    with pytest.raises(otp.CodeExpired):
        otp.verify(admin_user.id, CODE)


def test_service_limits_tries(app, admin_user):
    otp.issue(admin_user)
    for _ in range(4):
        with pytest.raises(otp.WrongCode):
            otp.verify(admin_user.id, "999999")
    with pytest.raises(otp.CodeLocked):
        otp.verify(admin_user.id, "999999")
    with pytest.raises(otp.CodeExpired):
        otp.verify(admin_user.id, CODE)


def test_issue_refuses_a_second_code_while_one_is_live(app, admin_user):
    otp.issue(admin_user)
    with pytest.raises(otp.CodeStillLive) as caught:
        otp.issue(admin_user)
    assert 1 <= caught.value.seconds <= 60


# --- delivery -----------------------------------------------------------------------------------


def test_the_job_skips_a_code_that_was_used_or_expired(client, admin_user, codes_for_admins):
    password_step(client)
    [job] = queued_code_jobs()
    otp.verify(admin_user.id, CODE)
    assert send_login_code(*job.args) == "stale"
    assert not db.session.execute(db.select(CodeOutboxEntry)).scalars().all()


def test_the_job_delivers_through_the_configured_notifier(app, admin_user, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "llmadmin.notifiers.channels.LogNotifier.send", lambda self, message: sent.append(message)
    )
    otp.issue(admin_user)
    run_code_jobs()
    assert sent and CODE in sent[0].body and sent[0].destination == "admin@example.com"


class FakeSMTP:
    instances: list = []

    def __init__(self, host, port, timeout=None):
        self.host, self.port, self.calls = host, port, []
        FakeSMTP.instances.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.calls.append("quit")

    def starttls(self, context=None):
        self.calls.append("starttls")

    def login(self, user, password):
        self.calls.append(("login", user, password))

    def send_message(self, message):
        self.calls.append(("send", message["To"], message["From"], message.get_content()))


def test_smtp_notifier_uses_starttls_and_logs_in(app, admin_user, monkeypatch):
    monkeypatch.setattr("smtplib.SMTP", FakeSMTP)
    FakeSMTP.instances.clear()
    app.config.update(
        OTP_NOTIFIER="smtp",
        SMTP_HOST="mail.example.com",
        SMTP_PORT=587,
        SMTP_USER="bot",
        SMTP_PASSWORD="pw",
        SMTP_FROM="llmadmin@example.com",
    )
    otp.issue(admin_user)
    assert run_code_jobs() == ["sent"]
    [smtp] = FakeSMTP.instances
    assert (smtp.host, smtp.port) == ("mail.example.com", 587)
    assert smtp.calls[0] == "starttls" and smtp.calls[1] == ("login", "bot", "pw")
    kind, to, sender, body = smtp.calls[2]
    assert (kind, to, sender) == (
        "send",
        "admin@example.com",
        "llmadmin@example.com",
    ) and CODE in body


def test_smtp_failure_is_a_clear_error_without_the_code(app):
    class Refusing(FakeSMTP):
        def starttls(self, context=None):
            import smtplib

            raise smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server.")

    notifier = SmtpNotifier("mail.example.com", 587, "", "", "x@example.com")
    import smtplib

    original, smtplib.SMTP = smtplib.SMTP, Refusing
    try:
        from llmadmin.notifiers import Message

        with pytest.raises(NotifyError) as caught:
            notifier.send(Message(1, "p", "a@example.com", "s", f"code {CODE}"))
    finally:
        smtplib.SMTP = original
    assert "mail.example.com:587" in str(caught.value) and CODE not in str(caught.value)


def test_sms_notifier_posts_json_to_the_gateway(app, admin_user):
    admin_user.phone = "+41 79 000 00 00"
    db.session.commit()
    seen = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"queued": True})

    app.config.update(
        OTP_NOTIFIER="sms", SMS_GATEWAY_URL="https://sms.example.com/send", SMS_GATEWAY_TOKEN="t0k"
    )
    notifier = get_notifier(transport=httpx.MockTransport(gateway))
    otp.issue(admin_user)
    from llmadmin.services.otp import deliver_login_code

    [job] = queued_code_jobs()
    assert deliver_login_code(*job.args, notifier=notifier) == "sent"
    [request] = seen
    assert request.method == "POST" and str(request.url) == "https://sms.example.com/send"
    assert request.headers["Authorization"] == "Bearer t0k"
    payload = __import__("json").loads(request.content)
    assert payload["to"] == "+41 79 000 00 00" and CODE in payload["message"]


def test_sms_gateway_refusal_fails_the_job(app):
    notifier = SmsNotifier(
        "https://sms.example.com/send",
        transport=httpx.MockTransport(lambda request: httpx.Response(500)),
    )
    from llmadmin.notifiers import Message

    with pytest.raises(NotifyError, match="HTTP 500"):
        notifier.send(Message(1, "p", "+1", "s", "b"))


def test_no_phone_number_means_no_code_and_a_clear_message(
    app, client, admin_user, codes_for_admins
):
    app.config.update(OTP_NOTIFIER="sms", SMS_GATEWAY_URL="https://sms.example.com/send")
    response = password_step(client)
    assert response.headers["Location"].endswith("/login")
    assert "nowhere to send a sign-in code" in flash_text(page_text(client.get("/login")))
    assert not queued_code_jobs() and not signed_in(client)
    with client.session_transaction() as session:
        assert "pending_2fa" not in session


def test_queue_down_means_a_clear_message_and_no_live_code(
    app, client, admin_user, codes_for_admins, monkeypatch, r
):
    from llmadmin.errors import QueueUnavailable

    def down(*args, **kwargs):
        raise QueueUnavailable("The job queue (Redis) is unreachable right now.")

    monkeypatch.setattr("llmadmin.queues.enqueue", down)
    response = password_step(client)
    assert response.headers["Location"].endswith("/login")
    assert "cannot be sent right now" in flash_text(page_text(client.get("/login")))
    assert r.get(otp.code_key(admin_user.id)) is None  # a retry can send a fresh code at once


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"OTP_NOTIFIER": "pigeon"}, "OTP_NOTIFIER must be one of log, smtp, sms"),
        ({"OTP_NOTIFIER": "smtp"}, "OTP_NOTIFIER=smtp needs SMTP_HOST and SMTP_FROM"),
        ({"OTP_NOTIFIER": "sms"}, "OTP_NOTIFIER=sms needs SMS_GATEWAY_URL"),
    ],
)
def test_bad_notifier_settings_stop_the_start_up(database_uri, redis_url, overrides, message):
    from tests.conftest import make_test_app

    with pytest.raises(RuntimeError, match=message):
        make_test_app(database_uri, redis_url, **overrides)


# --- the Code outbox panel ----------------------------------------------------------------------


def test_code_outbox_panel_is_admin_only_and_read_only(app, admin_user, member_user):
    from tests.conftest import login

    db.session.add(
        CodeOutboxEntry(
            person_id=admin_user.id,
            person_label="Ada",
            channel="log",
            destination="admin@example.com",
            subject="s",
            body=f"code {CODE}",
        )
    )
    db.session.commit()
    member = app.test_client()
    login(member, "member@example.com", "member-password")
    assert member.get("/admin/code_outbox/").status_code == 403
    admin = app.test_client()
    login(admin, "admin@example.com", "admin-password")
    page = page_text(admin.get("/admin/code_outbox/"))
    assert "Code outbox" in page and CODE in page
    assert admin.get("/admin/code_outbox/new/").status_code in (302, 403, 404)
    assert "/admin/code_outbox/delete/" not in page and "/admin/code_outbox/edit/" not in page
