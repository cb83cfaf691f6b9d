"""Sign-in hardening: failures limited per account and per IP (Redis TTLs as the clock), cookies, SECRET_KEY."""

from __future__ import annotations

import pytest

from llmadmin import config as settings
from llmadmin.extensions import db
from llmadmin.services import login_guard
from tests.conftest import csrf_token, make_test_app
from tests.security.conftest import age, flash_text, page_text


def attempt(client, email: str, password: str, ip: str = "127.0.0.1"):
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    )


def signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def fail(client, email: str, times: int, ip: str = "127.0.0.1") -> None:
    for _ in range(times):
        response = attempt(client, email, "wrong-password", ip)
        assert "Wrong email or password." in flash_text(page_text(response))


def test_five_failures_lock_the_account_for_that_client_with_the_wait_time(client, member_user):
    fail(client, "member@example.com", 5)
    response = attempt(client, "member@example.com", "member-password")
    message = flash_text(page_text(response))
    assert (
        "Too many failed sign-ins for this account from your network address. "
        "Try again in 15 minutes" in message
    )
    assert not signed_in(client)


def test_a_lockout_does_not_check_the_password_and_is_not_extended(app, client, member_user, r):
    fail(client, "member@example.com", 5)
    key = login_guard.pair_key("member@example.com", "127.0.0.1")
    age(r, key, 14 * 60)  # 14 of the 15 minutes have passed
    response = attempt(client, "member@example.com", "still-wrong")
    assert "Try again in 60 seconds" in flash_text(page_text(response))
    assert 55 <= r.ttl(key) <= 60  # refused attempts do not renew the lockout


def test_the_account_opens_again_when_the_window_has_passed(client, member_user, r):
    fail(client, "member@example.com", 5)
    age(r, login_guard.pair_key("member@example.com", "127.0.0.1"), 15 * 60)
    response = attempt(client, "member@example.com", "member-password")
    assert response.status_code == 302 and signed_in(client)


def test_each_failure_renews_the_window(client, member_user, r):
    key = login_guard.pair_key("member@example.com", "127.0.0.1")
    fail(client, "member@example.com", 4)
    age(r, key, 10 * 60)
    fail(client, "member@example.com", 1)
    assert r.ttl(key) > 14 * 60
    assert "Too many failed" in flash_text(
        page_text(attempt(client, "member@example.com", "member-password"))
    )


def test_success_clears_the_account_counter(client, member_user, r):
    fail(client, "member@example.com", 4)
    assert attempt(client, "member@example.com", "member-password").status_code == 302
    assert r.get(login_guard.account_key("member@example.com")) is None
    assert r.get(login_guard.pair_key("member@example.com", "127.0.0.1")) is None
    client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    fail(client, "member@example.com", 4)  # a fresh allowance of failures
    assert attempt(client, "member@example.com", "member-password").status_code == 302


def test_unknown_accounts_are_limited_too(client):
    fail(client, "ghost@example.com", 5)
    response = attempt(client, "ghost@example.com", "anything-at-all")
    assert "Too many failed sign-ins for this account" in flash_text(page_text(response))


def test_twenty_failures_from_one_ip_lock_that_ip_for_every_account(client, member_user):
    for n in range(5):
        fail(client, f"user{n}@example.com", 4, ip="10.1.1.1")  # 20 failures, no account locked
    response = attempt(client, "member@example.com", "member-password", ip="10.1.1.1")
    assert "Too many failed sign-ins from your network address" in flash_text(page_text(response))
    response = attempt(client, "member@example.com", "member-password", ip="10.2.2.2")
    assert response.status_code == 302  # another address is not affected


def test_signing_into_ones_own_account_does_not_reset_the_ip_counter(client, member_user):
    fail(client, "victim@example.com", 4, ip="10.1.1.1")
    for n in range(4):
        fail(client, f"other{n}@example.com", 4, ip="10.1.1.1")  # 20 from this IP
    assert (
        attempt(client, "member@example.com", "member-password", ip="10.9.9.9").status_code == 302
    )
    client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    # The member's success from elsewhere forgave nothing at 10.1.1.1:
    response = attempt(client, "member@example.com", "member-password", ip="10.1.1.1")
    assert "from your network address" in flash_text(page_text(response))


def test_success_forgives_only_that_accounts_share_of_the_ip_counter(app, client, member_user, r):
    app.config["LOGIN_MAX_FAILURES_PER_IP"] = 6
    fail(client, "member@example.com", 3, ip="10.1.1.1")
    fail(client, "someone@example.com", 2, ip="10.1.1.1")
    assert (
        attempt(client, "member@example.com", "member-password", ip="10.1.1.1").status_code == 302
    )
    assert sum(int(v) for v in r.hvals(login_guard.ip_key("10.1.1.1"))) == 2


def test_wait_text_rounds_up_to_minutes():
    assert login_guard.wait_text(1) == "1 second"
    assert login_guard.wait_text(119) == "119 seconds"
    assert login_guard.wait_text(121) == "3 minutes"
    assert login_guard.wait_text(900) == "15 minutes"


def test_limits_follow_the_settings(app, client, member_user):
    app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] = 2
    app.config["LOGIN_LOCKOUT_SECONDS"] = 60
    fail(client, "member@example.com", 2)
    response = attempt(client, "member@example.com", "member-password")
    assert "Try again in 60 seconds" in flash_text(page_text(response))


def test_redis_down_lets_the_password_decide(app, client, member_user, monkeypatch):
    import redis

    def down():
        raise redis.ConnectionError("down")

    monkeypatch.setattr(login_guard, "get_redis", down)
    fail(client, "member@example.com", 6)
    assert attempt(client, "member@example.com", "member-password").status_code == 302


# --- cookies and the secret key -------------------------------------------------------------


def session_cookie_header(response) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return header


def test_session_cookie_is_httponly_and_samesite_lax(client, member_user):
    header = session_cookie_header(attempt(client, "member@example.com", "member-password"))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Secure" not in header  # plain HTTP in development


def test_cookies_are_secure_when_session_cookie_secure_is_set(migrated, redis_url, member_user):
    app = make_test_app(
        migrated, redis_url, SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True
    )
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={
            "email": "member@example.com",
            "password": "member-password",
            "remember": "y",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    for name in ("session=", "remember_token="):
        [header] = [c for c in cookies if c.startswith(name)]
        assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header, header


def test_secure_cookie_setting_comes_from_the_environment():
    config = settings.from_environment({"SESSION_COOKIE_SECURE": "true"})
    assert config["SESSION_COOKIE_SECURE"] is True and config["REMEMBER_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] and config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_production_refuses_to_start_without_a_secret_key():
    config = settings.from_environment({"LLMADMIN_ENV": "production"})
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        settings.validate(config)
    settings.validate(
        settings.from_environment({"LLMADMIN_ENV": "production", "SECRET_KEY": "x" * 64})
    )
    settings.validate(settings.from_environment({}))  # development may use the built-in key


def test_create_app_stops_with_a_clear_error_without_a_secret_key(monkeypatch):
    from llmadmin import create_app

    monkeypatch.setenv("LLMADMIN_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(
        RuntimeError, match="SECRET_KEY must be set when LLMADMIN_ENV is not 'development'"
    ):
        create_app()


# --- issue 13, finding 4: failures from elsewhere do not lock the owner out -----------------


def test_failures_from_another_address_do_not_lock_the_owner_out(client, member_user):
    fail(client, "member@example.com", 5, ip="203.0.113.9")
    assert "Too many failed" in flash_text(
        page_text(attempt(client, "member@example.com", "member-password", ip="203.0.113.9"))
    )
    response = attempt(client, "member@example.com", "member-password", ip="10.0.0.7")
    assert response.status_code == 302 and signed_in(client)


def test_many_failures_from_everywhere_ask_the_owner_for_a_code_not_lock_them_out(
    app, client, member_user, r
):
    from llmadmin.models import AuditEntry

    for n in range(10):  # ten addresses, one failure each: no client reaches its own limit
        fail(client, "member@example.com", 1, ip=f"198.51.100.{n}")
    response = attempt(client, "member@example.com", "member-password", ip="10.0.0.7")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")
    assert not signed_in(client)
    assert "a code is needed too" in flash_text(page_text(client.get("/login/code")))
    steps = db.session.execute(
        db.select(AuditEntry).where(AuditEntry.action == "login_step_up")
    ).scalars()
    assert len(list(steps)) == 1
    failures = db.session.execute(
        db.select(AuditEntry).where(AuditEntry.action == "login_failed")
    ).scalars()
    assert len(list(failures)) == 10  # every failure is still audited


def test_the_step_up_follows_its_setting(app, client, member_user):
    app.config["LOGIN_STEP_UP_FAILURES"] = 2
    fail(client, "member@example.com", 1, ip="198.51.100.1")
    assert attempt(client, "member@example.com", "member-password").status_code == 302
    assert signed_in(client)  # one failure: no code asked for


# --- issue 13, finding 3: no user enumeration by timing ------------------------------------


def test_unknown_and_existing_emails_cost_the_same_time(app, client, monkeypatch):
    """Median times of 20 wrong passwords each, interleaved: their ratio is near 1.

    A deliberately slow hash (PBKDF2, 60,000 rounds) makes the hash dominate the request, as
    scrypt does in production; before the fix, unknown emails skipped it.
    """
    import statistics
    import time

    from werkzeug.security import generate_password_hash

    import llmadmin.models.person as person_module
    from llmadmin.services.people import create_user

    monkeypatch.setattr(
        person_module,
        "generate_password_hash",
        lambda password: generate_password_hash(password, method="pbkdf2:sha256:60000"),
    )
    create_user("real@example.com", "real-password")
    app.config.update(LOGIN_MAX_FAILURES_PER_ACCOUNT=1000, LOGIN_MAX_FAILURES_PER_IP=1000)
    app.config["LOGIN_STEP_UP_FAILURES"] = 1000
    token = csrf_token(client)

    def timed(email: str) -> float:
        started = time.perf_counter()
        response = client.post(
            "/login", data={"email": email, "password": "wrong-password", "csrf_token": token}
        )
        elapsed = time.perf_counter() - started
        assert "Wrong email or password." in flash_text(page_text(response))
        return elapsed

    timed("real@example.com"), timed("nobody@example.com")  # warm-up (the throw-away hash)
    existing, unknown = [], []
    for _ in range(20):
        existing.append(timed("real@example.com"))
        unknown.append(timed("nobody@example.com"))
    ratio = statistics.median(existing) / statistics.median(unknown)
    assert 0.5 <= ratio <= 2, f"existing/unknown median time ratio {ratio:.2f}"
