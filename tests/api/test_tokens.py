"""Personal API tokens: shown once, stored hashed, revocable at once, expiring, attributed."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import select

from llmadmin.extensions import db
from llmadmin.models import ApiToken, AuditEntry, Task
from llmadmin.models.base import utcnow
from llmadmin.services import api_tokens
from tests.api.conftest import assert_error, bearer
from tests.conftest import csrf_token, login, post_form


def test_a_token_is_stored_only_as_its_hash(app, member_user):
    row, token = api_tokens.create_token(member_user.id, "script", expires_days=30)
    assert token.startswith("lla_") and len(token) > 40
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = db.session.execute(select(ApiToken)).scalar_one()
    assert token not in repr(stored.__dict__)
    assert stored.prefix == token[:8] and stored.expires_at > utcnow() + timedelta(days=29)


def test_missing_unknown_and_malformed_tokens_are_401(client, member_token):
    for headers in ({}, bearer("lla_nope"), bearer("x"), {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/tasks", headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/tasks", headers=bearer(member_token)).status_code == 200


def test_a_browser_session_cookie_is_refused(member_client, sim_model):
    # Signed in through the login form: the admin works, the API does not.
    assert member_client.get("/admin/task/").status_code == 200
    assert_error(member_client.get("/api/v1/tasks"), 401)
    response = member_client.post("/api/v1/tasks", json={"prompt": "x", "model": "Sim"})
    assert_error(response, 401)
    assert db.session.execute(select(Task)).first() is None


def test_an_api_response_sets_no_cookie_and_is_not_cached(member_api):
    response = member_api.get("/api/v1/tasks")
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_revoking_stops_the_token_at_once(app, member_user, member_api):
    assert member_api.get("/api/v1/tasks").status_code == 200
    row = db.session.execute(select(ApiToken)).scalar_one()
    assert api_tokens.revoke_tokens([row.id], member_user) == 1
    error = assert_error(member_api.get("/api/v1/tasks"), 401)
    assert "revoked" in error["message"]


def test_an_expired_token_is_refused(app, member_user, member_api):
    row = db.session.execute(select(ApiToken)).scalar_one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert "expired" in assert_error(member_api.get("/api/v1/tasks"), 401)["message"]


def test_a_deactivated_persons_tokens_stop(app, member_user, member_api):
    member_user.active = False
    db.session.commit()
    assert_error(member_api.get("/api/v1/tasks"), 401)


def test_last_used_is_written_at_most_once_a_minute(app, member_api):
    member_api.get("/api/v1/tasks")
    row = db.session.execute(select(ApiToken)).scalar_one()
    first = row.last_used_at
    assert first is not None
    member_api.get("/api/v1/tasks")
    db.session.refresh(row)
    assert row.last_used_at == first
    row.last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    member_api.get("/api/v1/tasks")
    db.session.refresh(row)
    assert row.last_used_at > first - timedelta(minutes=2)


def test_use_is_attributed_to_the_tokens_person(app, member_user, member_api, sim_model):
    response = member_api.post("/api/v1/tasks", json={"prompt": "hello", "model": "Sim"})
    assert response.status_code == 201
    assert response.get_json()["creator_id"] == member_user.id
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "create_tasks")
    ).scalar_one()
    assert entry.person_id == member_user.id
    assert "via API token “member script”" in entry.person_label


def test_members_see_only_their_own_rows(member_api, other_api, admin_api, sim_model):
    task_id = member_api.post("/api/v1/tasks", json={"prompt": "mine", "model": "Sim"}).get_json()[
        "id"
    ]
    assert_error(other_api.get(f"/api/v1/tasks/{task_id}"), 404, "not_found")
    assert_error(other_api.post(f"/api/v1/tasks/{task_id}/cancel"), 404)
    assert other_api.get("/api/v1/tasks").get_json()["data"] == []
    assert admin_api.get(f"/api/v1/tasks/{task_id}").status_code == 200


# --- the admin panel -------------------------------------------------------------------------


def test_a_member_makes_a_token_in_the_admin_and_sees_it_once(member_client, member_user):
    page = post_form(
        member_client,
        "/admin/apitoken/new/",
        {"name": "laptop", "expires_days": "7"},
        token_from="/admin/apitoken/new/",
    ).get_data(as_text=True)
    token = re.search(r"(lla_[A-Za-z0-9_-]{40,})", page).group(1)
    row = db.session.execute(select(ApiToken)).scalar_one()
    assert row.person_id == member_user.id and row.name == "laptop"
    assert row.token_hash == api_tokens.token_hash(token)
    listing = member_client.get("/admin/apitoken/").get_data(as_text=True)
    assert "laptop" in listing and token not in listing
    assert token not in member_client.get(f"/admin/apitoken/details/?id={row.id}").get_data(
        as_text=True
    )


def test_members_revoke_their_own_tokens_only_admins_anyones(
    app, client, member_user, other_member, admin_user
):
    mine, _ = api_tokens.create_token(member_user.id, "mine")
    theirs, _ = api_tokens.create_token(other_member.id, "theirs")
    mine_id, theirs_id = mine.id, theirs.id
    login(client, "member@example.com", "member-password")
    listing = client.get("/admin/apitoken/").get_data(as_text=True)
    assert "mine" in listing and "theirs" not in listing
    token = csrf_token(client, "/admin/apitoken/")
    response = client.post(
        "/admin/apitoken/action/",
        data={"action": "revoke", "rowid": [str(theirs_id)], "csrf_token": token},
    )
    assert response.status_code == 404
    client.post(
        "/admin/apitoken/action/",
        data={"action": "revoke", "rowid": [str(mine_id)], "csrf_token": token},
    )
    db.session.expire_all()
    assert db.session.get(ApiToken, mine_id).revoked_at is not None
    assert db.session.get(ApiToken, theirs_id).revoked_at is None
    assert api_tokens.revoke_tokens([theirs_id], admin_user) == 1


# --- the CLI ------------------------------------------------------------------------------------


def test_create_token_cli_prints_the_token_alone_on_the_last_line(app, runner, member_user, client):
    result = runner.invoke(
        args=["create-token", "MEMBER@example.com", "--name", "ci", "--expires-days", "3"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"lla_[A-Za-z0-9_-]{43}", token)
    row = db.session.execute(select(ApiToken)).scalar_one()
    assert row.name == "ci" and row.expires_at is not None
    assert client.get("/api/v1/tasks", headers=bearer(token)).status_code == 200


def test_create_token_cli_refuses_an_unknown_person(runner, app):
    result = runner.invoke(args=["create-token", "nobody@example.com"])
    assert result.exit_code != 0 and "No person" in result.output


def test_every_api_route_refuses_a_request_without_a_token(app, member_client, sim_model):
    """Signed in with a cookie, no token: every route but the document and docs says 401."""
    public = {"api.openapi_json", "api.docs", "api.static"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint in public:
            continue
        url = rule.build({name: 1 for name in rule.arguments}, append_unknown=False)[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = member_client.open(url, method=method, json={})
            assert_error(response, 401)
            checked += 1
    assert checked == 22


def test_the_token_decides_who_acts_not_a_cookie_sent_along(
    admin_client, member_token, member_user, sim_model
):
    response = admin_client.post(
        "/api/v1/tasks", json={"prompt": "x", "model": "Sim"}, headers=bearer(member_token)
    )
    assert response.status_code == 201
    assert response.get_json()["creator_id"] == member_user.id
    assert_error(
        admin_client.post(f"/api/v1/models/{sim_model.id}/disable", headers=bearer(member_token)),
        403,
    )
