"""Per-token rate limit: 429 with Retry-After past the limit; the window is the Redis TTL."""

from __future__ import annotations

from sqlalchemy import select

from llmadmin.extensions import db
from llmadmin.models import ApiToken
from llmadmin.queues import get_redis
from llmadmin.services.api_tokens import rate_key
from tests.api.conftest import assert_error


def test_past_the_limit_429_with_retry_after_then_allowed_again(app, member_api, other_api):
    app.config["API_RATE_PER_MINUTE"] = 3
    for _ in range(3):
        assert member_api.get("/api/v1/tasks").status_code == 200
    response = member_api.get("/api/v1/tasks")
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert other_api.get("/api/v1/tasks").status_code == 200  # per token
    token_id = db.session.execute(
        select(ApiToken.id).where(ApiToken.name == "member script")
    ).scalar_one()
    get_redis().delete(rate_key(token_id))  # what the key's TTL does when the minute is over
    assert member_api.get("/api/v1/tasks").status_code == 200


def test_retry_after_is_the_windows_remaining_time(app, member_api):
    app.config["API_RATE_PER_MINUTE"] = 1
    member_api.get("/api/v1/tasks")
    token_id = db.session.execute(select(ApiToken.id)).scalar_one()
    get_redis().expire(rate_key(token_id), 17)
    response = member_api.get("/api/v1/tasks")
    assert response.status_code == 429 and response.headers["Retry-After"] == "17"


def test_zero_turns_the_limit_off(app, member_api):
    app.config["API_RATE_PER_MINUTE"] = 0
    assert all(member_api.get("/api/v1/tasks").status_code == 200 for _ in range(5))
