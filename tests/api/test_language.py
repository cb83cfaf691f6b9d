"""Every /api/v1 error speaks the token owner's language (QA: some were English for a zh token)."""

from __future__ import annotations

from llmadmin.extensions import db
from tests.admin.helpers import make_task
from tests.api.conftest import assert_error, bearer

CHINESE = "zh_Hans_CN"


def test_api_errors_follow_the_token_owners_language(app, member_user, member_api):
    member_user.locale = CHINESE
    db.session.commit()
    done = make_task(member_user, None, name="done")

    bogus = assert_error(member_api.get("/api/v1/tasks?status=BOGUS"), 422, "invalid")
    assert bogus["message"].startswith("未知状态 'BOGUS'"), bogus
    when = assert_error(member_api.get("/api/v1/tasks?created_after=yesterday"), 422)
    assert "ISO 8601 时间" in when["message"], when
    missing = assert_error(member_api.get("/api/v1/tasks/999999"), 404)
    assert missing["message"] == "任务 #999999 不存在。"
    finished = assert_error(member_api.post(f"/api/v1/tasks/{done.id}/cancel"), 409)
    assert finished["message"] == f"任务 #{done.id} 的状态为“成功”；只有未结束的任务可以取消。"
    malformed = assert_error(
        member_api.post(
            "/api/v1/tasks", data="{nope", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    assert malformed["message"].startswith("JSON 格式错误，位于第 1 行第 2 列"), malformed


def test_a_bad_token_is_answered_in_the_browsers_language(app):
    client = app.test_client()
    headers = {**bearer("lla_nope"), "Accept-Language": "zh-CN,zh;q=0.9"}
    error = assert_error(client.get("/api/v1/tasks", headers=headers), 401)
    assert error["message"] == "此 API 令牌无效。"
    english = assert_error(client.get("/api/v1/tasks", headers=bearer("lla_nope")), 401)
    assert english["message"] == "This API token is not valid."
