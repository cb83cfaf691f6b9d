"""Signing in and out: messages, inactive accounts, redirects after login."""

from __future__ import annotations

import pytest

from llmadmin.extensions import db
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    flashes,
    redirect_path,
    text,
)
from tests.conftest import csrf_token, login


def signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_right_password_signs_in(client, member_user):
    response = login(client, "member@example.com", "member-password")
    assert response.status_code == 302 and redirect_path(response) == "/admin/"
    assert signed_in(client)


def test_email_is_case_insensitive(client, member_user):
    assert login(client, "  MEMBER@Example.com", "member-password").status_code == 302
    assert signed_in(client)


@pytest.mark.parametrize(
    "email, password",
    [
        ("member@example.com", "wrong-password"),
        ("nobody@example.com", "member-password"),
        ("member@example.com", "MEMBER-PASSWORD"),
    ],
)
def test_wrong_credentials_flash_one_message(client, member_user, email, password):
    response = login(client, email, password)
    assert response.status_code == 200
    assert "Wrong email or password." in flashes(text(response))
    assert not signed_in(client)


def test_empty_fields_are_reported(client):
    response = client.post(
        "/login", data={"email": "", "password": "", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 200
    assert "This field is required." in text(response)
    assert not signed_in(client)


def test_nul_byte_in_email_is_not_a_server_error(client, member_user):
    response = login(client, "member\x00@example.com", "member-password")
    assert response.status_code == 200
    assert not signed_in(client)


def test_inactive_person_cannot_sign_in(client, member_user):
    member_user.active = False
    db.session.commit()
    response = login(client, "member@example.com", "member-password")
    assert response.status_code == 200
    assert "deactivated" in flashes(text(response))
    assert not signed_in(client)


def test_inactive_person_with_wrong_password_learns_nothing(client, member_user):
    member_user.active = False
    db.session.commit()
    page = text(login(client, "member@example.com", "bad-password"))
    assert "Wrong email or password." in flashes(page) and "deactivated" not in page


def test_deactivation_ends_an_open_session(client, member_user):
    login(client, "member@example.com", "member-password")
    assert signed_in(client)
    member_user.active = False
    db.session.commit()
    response = client.get("/admin/task/")
    assert response.status_code == 302 and redirect_path(response) == "/login"


def test_deleting_a_person_ends_their_session(client, member_user):
    login(client, "member@example.com", "member-password")
    db.session.delete(member_user)
    db.session.commit()
    assert not signed_in(client)


def test_next_page_is_honoured(client, member_user):
    token = csrf_token(client)
    response = client.post(
        "/login?next=/admin/task/%3Fsearch%3Dx",
        data={"email": "member@example.com", "password": "member-password", "csrf_token": token},
    )
    assert response.headers["Location"] == "/admin/task/?search=x"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "///evil.com",
        "////evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com/",
        "http:evil.com",
        "javascript:alert(1)",
        "/\t/evil.com",
        "/\n/evil.com",
        " //evil.com",
        "evil.com",
    ],
)
def test_open_redirect_is_ignored(client, member_user, target):
    token = csrf_token(client)
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"email": "member@example.com", "password": "member-password", "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_login_link_from_a_protected_page_comes_back(client, member_user):
    response = client.get("/admin/task/?search=hello")
    login_url = response.headers["Location"]
    token = csrf_token(client)
    response = client.post(
        login_url,
        data={"email": "member@example.com", "password": "member-password", "csrf_token": token},
    )
    assert response.headers["Location"] == "/admin/task/?search=hello"


def test_logout_needs_a_post(client, member_user):
    login(client, "member@example.com", "member-password")
    assert client.get("/logout").status_code == 405
    assert signed_in(client)
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert response.status_code == 302 and redirect_path(response) == "/login"
    assert not signed_in(client)
    assert "You are signed out." in flashes(text(client.get("/login")))


def test_sign_out_button_is_a_form(client, member_user):
    login(client, "member@example.com", "member-password")
    page = text(client.get("/admin/"))
    assert 'action="/logout"' in page and 'method="post"' in page
