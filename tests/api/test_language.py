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


PROSE = ("description", "summary")


def _skeleton(value):
    """The document without its prose: what must be the same in every language."""
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items() if k not in PROSE}
    if isinstance(value, list):
        return [_skeleton(v) for v in value]
    return value


def _prose(value, found=None) -> list[str]:
    found = [] if found is None else found
    if isinstance(value, dict):
        for key, item in value.items():
            if key in PROSE and isinstance(item, str):
                found.append(item)
            else:
                _prose(item, found)
    elif isinstance(value, list):
        for item in value:
            _prose(item, found)
    return found


def test_the_openapi_document_speaks_the_readers_language(app):
    client = app.test_client()
    english = client.get("/api/v1/openapi.json")
    chinese = client.get("/api/v1/openapi.json", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert english.headers["Content-Language"] == "en"
    assert chinese.headers["Content-Language"] == "zh-Hans-CN"
    assert "Accept-Language" in chinese.headers["Vary"]
    en, zh = english.get_json(), chinese.get_json()
    assert zh["paths"]["/tasks"]["post"]["summary"].startswith(
        "创建一个任务，或一次创建最多 10,000 个"
    )
    assert zh["paths"]["/tasks"]["get"]["responses"]["401"]["description"].startswith("令牌缺失")
    limit = {p["name"]: p for p in zh["paths"]["/tasks"]["get"]["parameters"]}["limit"]
    assert limit["description"] == "每页行数（1 到 500，默认 50）。"
    task_input = zh["components"]["schemas"]["TaskInput"]
    assert task_input["properties"]["prompt"]["description"] == "发送给模型的提示词。"
    assert "每分钟最多" in zh["info"]["description"]
    # Only the prose differs: names, codes, statuses and shapes are one API in both languages.
    assert _skeleton(zh) == _skeleton(en)
    assert len(_prose(zh)) == len(_prose(en)) > 100
    # Every sentence is translated (names, codes and units may repeat, sentences may not).
    same = [t for t, e in zip(_prose(zh), _prose(en), strict=True) if t == e and " " in e]
    assert same == [], same


def test_the_docs_page_asks_for_the_signed_in_persons_language(app, admin_client, admin_user):
    admin_user.locale = CHINESE
    db.session.commit()
    page = admin_client.get("/api/v1/docs", headers={"Accept-Language": "en"})
    assert 'data-spec="/api/v1/openapi.json?lang=zh_Hans_CN"' in page.get_data(as_text=True)
    spec = app.test_client().get("/api/v1/openapi.json?lang=zh_Hans_CN").get_json()
    assert spec["paths"]["/tasks/{task_id}"]["get"]["summary"] == "获取一个任务。"
    asked = app.test_client().get("/api/v1/openapi.json?lang=en", headers={"Accept-Language": "zh"})
    assert asked.get_json()["paths"]["/tasks/{task_id}"]["get"]["summary"] == "Get one task."
    bogus = app.test_client().get("/api/v1/openapi.json?lang=xx")
    assert bogus.headers["Content-Language"] == "en"


def test_the_docs_page_is_in_chinese_for_a_chinese_reader(app):
    client = app.test_client()
    page = client.get("/api/v1/docs", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert '<html lang="zh-Hans-CN">' in page
    assert 'data-spec="/api/v1/openapi.json?lang=zh_Hans_CN"' in page
    assert 'data-parameter="参数"' in page and 'data-shapes="数据结构"' in page
    assert "兼容 OpenAI 的网关" in page and "<code>/v1</code>" in page
    english = client.get("/api/v1/docs").get_data(as_text=True)
    assert (
        'data-spec="/api/v1/openapi.json?lang=en"' in english
        and 'data-parameter="parameter"' in english
    )
