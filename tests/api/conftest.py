"""Fixtures for the JSON API: tokens for a member, another member and an admin."""

from __future__ import annotations

import pytest

from llmadmin import policy
from llmadmin.services.api_tokens import create_token


@pytest.fixture(autouse=True)
def offline_dns(monkeypatch):
    """Model URLs are checked against the outbound policy: resolve every name, offline."""
    monkeypatch.setattr(policy, "resolve_host", lambda host: ["203.0.113.10"])


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """A test client that sends one person's token with every request."""

    def __init__(self, client, token: str) -> None:
        self.client, self.token = client, token

    def _open(self, method, url, **kwargs):
        headers = {**bearer(self.token), **kwargs.pop("headers", {})}
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def get(self, url, **kwargs):
        return self._open("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self._open("POST", url, **kwargs)

    def patch(self, url, **kwargs):
        return self._open("PATCH", url, **kwargs)


@pytest.fixture
def member_token(member_user):
    return create_token(member_user.id, "member script")[1]


@pytest.fixture
def admin_token(admin_user):
    return create_token(admin_user.id, "admin script")[1]


@pytest.fixture
def other_token(other_member):
    return create_token(other_member.id, "other script")[1]


@pytest.fixture
def member_api(app, member_token):
    return Api(app.test_client(), member_token)


@pytest.fixture
def admin_api(app, admin_token):
    return Api(app.test_client(), admin_token)


@pytest.fixture
def other_api(app, other_token):
    return Api(app.test_client(), other_token)


def assert_error(response, status: int, code: str | None = None, field=...):
    """Check the one error shape and status; return the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "field"} <= set(error)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if field is not ...:
        assert error["field"] == field
    return error
