"""The gateway's errors speak the token owner's language, else the browser's (QA: the bad-token
answer was English while the unknown-model one was Chinese)."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.services.api_tokens import create_token

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


def test_gateway_errors_follow_the_token_owners_language(app, member_user):
    member_user.locale = "zh_Hans_CN"
    db.session.commit()
    secret = create_token(member_user.id, "zh script")[1]
    client = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    assert _error(client.get("/v1/models/nope", headers=auth), 404)["message"] == (
        "模型 'nope' 不存在或已停用。"
    )
    bad_body = client.post(
        "/v1/chat/completions", data="{nope", headers={**auth, "Content-Type": "application/json"}
    )
    assert _error(bad_body, 400)["message"] == "无法解析请求的 JSON 正文（第 1 行，第 2 列）。"


def test_a_bad_gateway_token_is_answered_in_the_browsers_language(app):
    client = app.test_client()
    headers = {"Authorization": "Bearer lla_nope", **ZH}
    error = _error(client.get("/v1/models", headers=headers), 401)
    assert error["message"] == "此 API 令牌无效。" and error["code"] == "invalid_api_key"
    english = _error(client.get("/v1/models", headers={"Authorization": "Bearer lla_nope"}), 401)
    assert english["message"] == "This API token is not valid."
