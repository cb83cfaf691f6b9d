"""Sessions end on the server: sign-out, password, role and active changes, "sign out everywhere";
the remember-me cookie is new at each sign-in, dies with its session and lasts REMEMBER_COOKIE_DAYS.
Also: a new CSRF token at sign-in, and no caching of signed-in pages."""

from __future__ import annotations

from datetime import timedelta

import llmadmin.models as models
from llmadmin.extensions import db
from llmadmin.models import Person
from tests.conftest import csrf_token, login, post_form


def cookie(client, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def replay(app, **cookies: str):
    """A fresh client (another browser) holding only copies of ``cookies``."""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value)
    return other


def opens_tasks(client, user_agent: str = "probe/1.0") -> bool:
    response = client.get("/admin/task/", headers={"User-Agent": user_agent})
    return response.status_code == 200


def sign_out(client, path: str = "/logout") -> None:
    assert client.post(path, data={"csrf_token": csrf_token(client, "/admin/")}).status_code == 302


def login_remembered(client, email: str, password: str):
    token = csrf_token(client)
    return client.post(
        "/login", data={"email": email, "password": password, "remember": "y", "csrf_token": token}
    )


def set_password(person_id: int, password: str) -> None:
    person = db.session.get(Person, person_id)
    person.set_password(password)
    db.session.commit()


# --- finding 1: a session ends on the server ------------------------------------------------


def test_a_session_cookie_saved_before_sign_out_opens_nothing_afterwards(app, client, member_user):
    login(client, "member@example.com", "member-password")
    saved = cookie(client, "session")
    assert opens_tasks(replay(app, session=saved), "other-agent/2.0")
    sign_out(client)
    assert not opens_tasks(replay(app, session=saved))
    assert not opens_tasks(replay(app, session=saved), "other-agent/2.0")


def test_an_admin_changing_the_password_ends_the_persons_sessions(app, admin_client, member_user):
    member = app.test_client()
    login(member, "member@example.com", "member-password")
    saved = cookie(member, "session")
    response = post_form(
        admin_client,
        f"/admin/person/edit/?id={member_user.id}",
        {
            "name": "Max Member",
            "email": "member@example.com",
            "role": "member",
            "active": "y",
            "new_password": "a-brand-new-password",
        },
        token_from=f"/admin/person/edit/?id={member_user.id}",
    )
    assert response.status_code == 302
    assert not opens_tasks(member)
    assert not opens_tasks(replay(app, session=saved))
    assert opens_tasks(admin_client)  # the admin's own session is untouched


def test_role_change_and_deactivation_end_sessions(app, member_user, other_member):
    first, second = app.test_client(), app.test_client()
    login(first, "member@example.com", "member-password")
    login(second, "other@example.com", "other-password")
    db.session.get(Person, member_user.id).role = "admin"
    db.session.get(Person, other_member.id).active = False
    db.session.commit()
    assert not opens_tasks(first)
    db.session.get(Person, other_member.id).active = True
    db.session.commit()
    assert not opens_tasks(second)  # reactivating does not revive the old session


def test_changing_ones_own_password_keeps_only_the_current_session(app, admin_user):
    here, elsewhere = app.test_client(), app.test_client()
    login(here, "admin@example.com", "admin-password")
    login(elsewhere, "admin@example.com", "admin-password")
    response = post_form(
        here,
        f"/admin/person/edit/?id={admin_user.id}",
        {
            "name": "Ada Admin",
            "email": "admin@example.com",
            "role": "admin",
            "active": "y",
            "new_password": "another-admin-password",
        },
        token_from=f"/admin/person/edit/?id={admin_user.id}",
    )
    assert response.status_code == 302
    assert opens_tasks(here)
    assert not opens_tasks(elsewhere)


def test_sign_out_everywhere_ends_every_session_of_that_person_only(app, member_user, other_member):
    laptop, phone, colleague = app.test_client(), app.test_client(), app.test_client()
    login(laptop, "member@example.com", "member-password")
    login(phone, "member@example.com", "member-password")
    login(colleague, "other@example.com", "other-password")
    sign_out(laptop, "/logout/everywhere")
    assert not opens_tasks(phone)
    assert opens_tasks(colleague)


def test_admins_can_sign_people_out_everywhere(app, admin_client, member_user):
    member = app.test_client()
    login(member, "member@example.com", "member-password")
    response = post_form(
        admin_client,
        "/admin/person/action/",
        {"action": "sign_out", "rowid": [str(member_user.id)]},
        token_from="/admin/person/",
        follow_redirects=True,
    )
    assert "1 session(s) ended" in response.get_data(as_text=True)
    assert not opens_tasks(member)


# --- finding 2: the remember-me cookie -------------------------------------------------------


def test_the_remember_cookie_is_new_at_each_sign_in(client, member_user):
    login_remembered(client, "member@example.com", "member-password")
    first = cookie(client, "remember_token")
    sign_out(client)
    login_remembered(client, "member@example.com", "member-password")
    second = cookie(client, "remember_token")
    assert first and second and first != second


def test_a_saved_remember_cookie_opens_nothing_after_sign_out(app, client, member_user):
    login_remembered(client, "member@example.com", "member-password")
    saved = cookie(client, "remember_token")
    assert opens_tasks(replay(app, remember_token=saved))  # it works while the session lives
    sign_out(client)
    assert not opens_tasks(replay(app, remember_token=saved))


def test_a_saved_remember_cookie_opens_nothing_after_a_password_change(app, client, member_user):
    login_remembered(client, "member@example.com", "member-password")
    saved = cookie(client, "remember_token")
    set_password(member_user.id, "a-brand-new-password")
    assert not opens_tasks(replay(app, remember_token=saved))


def test_the_remember_cookie_lasts_fourteen_days_by_default_and_then_ends_on_the_server(
    app, client, member_user
):
    response = login_remembered(client, "member@example.com", "member-password")
    header = next(h for h in response.headers.getlist("Set-Cookie") if "remember_token=" in h)
    assert "Max-Age=1209600" in header or "Expires=" in header
    row = db.session.execute(db.select(models.LoginSession)).scalar_one()
    assert row.remember and row.expires_at - row.created_at == timedelta(days=14)
    saved = cookie(client, "remember_token")
    row.expires_at = row.created_at - timedelta(seconds=1)  # 14 days later
    db.session.commit()
    assert not opens_tasks(replay(app, remember_token=saved))


def test_remember_days_follow_the_setting(migrated, redis_url, member_user):
    from tests.conftest import make_test_app

    other = make_test_app(migrated, redis_url, REMEMBER_COOKIE_DAYS=3)
    with other.app_context():
        client = other.test_client()
        login_remembered(client, "member@example.com", "member-password")
        row = db.session.execute(db.select(models.LoginSession)).scalar_one()
        assert row.expires_at - row.created_at == timedelta(days=3)
        assert other.config["REMEMBER_COOKIE_DURATION"] == timedelta(days=3)


def test_only_a_hash_of_the_token_is_stored(client, member_user):
    login_remembered(client, "member@example.com", "member-password")
    row = db.session.execute(db.select(models.LoginSession)).scalar_one()
    assert row.token_hash not in (cookie(client, "session") or "")
    assert row.token_hash not in (cookie(client, "remember_token") or "")
    assert str(member_user.id) != (cookie(client, "remember_token") or "").split("|")[0]


# --- finding 8: CSRF token rotation and no caching -------------------------------------------


def test_the_csrf_token_changes_at_sign_in(client, member_user):
    from flask_wtf.csrf import generate_csrf  # noqa: F401  (the raw token sits in the session)

    before = csrf_token(client)
    with client.session_transaction() as state:
        raw_before = state.get("csrf_token")
    assert (
        client.post(
            "/login",
            data={
                "email": "member@example.com",
                "password": "member-password",
                "csrf_token": before,
            },
        ).status_code
        == 302
    )
    csrf_token(client, "/admin/")
    with client.session_transaction() as state:
        raw_after = state.get("csrf_token")
    assert raw_before and raw_after and raw_before != raw_after


def test_signed_in_html_and_json_are_not_stored_by_caches(member_client, sim_model):
    for url in ("/admin/", "/admin/task/", "/admin/task/status.json?ids=1"):
        response = member_client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response.headers.get("Cache-Control", ""), url
