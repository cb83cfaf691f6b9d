"""Choosing the language: the switch in the navigation bar, My settings, the browser's wish."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.models import Person
from tests.admin.helpers import text
from tests.conftest import csrf_token, login, post_form
from tests.i18n.conftest import CHINESE, set_person

ZH_BROWSER = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}


def saved(person) -> Person:
    db.session.expire_all()
    return db.session.get(Person, person.id)


def test_the_navigation_bar_switch_saves_the_choice_and_applies_it_at_once(
    admin_client, admin_user
):
    page = text(admin_client.get("/admin/task/"))
    assert 'id="locale-switch"' in page and "中文" in page and "English" in page
    response = admin_client.post(
        "/locale",
        data={"locale": CHINESE, "next": "/admin/task/", "csrf_token": csrf_token(admin_client)},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/task/")
    assert saved(admin_user).locale == CHINESE
    page = text(
        admin_client.get("/admin/task/", headers=EN_BROWSER)
    )  # the choice beats the browser
    assert '<html lang="zh-CN">' in page or "任务" in page
    assert "退出登录" in page and "Sign out" not in page
    admin_client.post("/locale", data={"locale": "en", "csrf_token": csrf_token(admin_client)})
    assert saved(admin_user).locale == "en"
    assert "Sign out" in text(admin_client.get("/admin/", headers=ZH_BROWSER))


def test_the_switch_needs_the_csrf_token(admin_client, admin_user):
    response = admin_client.post("/locale", data={"locale": CHINESE})
    assert response.status_code in (302, 400)
    assert saved(admin_user).locale is None


def test_an_unknown_language_changes_nothing(admin_client, admin_user):
    admin_client.post("/locale", data={"locale": "xx", "csrf_token": csrf_token(admin_client)})
    assert saved(admin_user).locale is None


def test_the_next_target_must_be_local(admin_client):
    response = admin_client.post(
        "/locale",
        data={"locale": "en", "next": "//evil.example/", "csrf_token": csrf_token(admin_client)},
    )
    assert response.headers["Location"].endswith("/admin/")


def test_without_a_choice_the_browsers_language_decides(admin_client, admin_user):
    assert "退出登录" in text(admin_client.get("/admin/", headers=ZH_BROWSER))
    assert "Sign out" in text(admin_client.get("/admin/", headers=EN_BROWSER))
    zh_tw = {"Accept-Language": "zh-TW,zh;q=0.8"}  # Chinese of any region gets our Chinese
    assert "退出登录" in text(admin_client.get("/admin/", headers=zh_tw))


def test_without_any_hint_the_site_default_decides(app, client, admin_user):
    assert "Sign in" in text(client.get("/login"))
    app.config["DEFAULT_LOCALE"] = CHINESE
    assert "登录" in text(client.get("/login", headers={"Accept-Language": "fr"}))


def test_a_visitor_can_switch_on_the_sign_in_page(client, admin_user):
    token = csrf_token(client)
    response = client.post("/locale", data={"locale": CHINESE, "csrf_token": token})
    assert response.headers["Location"].endswith("/login")
    page = text(client.get("/login", headers=EN_BROWSER))
    assert "保持登录" in page and '<html lang="zh-CN">' in page


def test_flashes_and_validation_messages_follow_the_person(client, admin_user):
    set_person(admin_user, locale=CHINESE)
    page = text(
        client.post(
            "/login",
            data={"email": "admin@example.com", "password": "x", "csrf_token": csrf_token(client)},
            headers=ZH_BROWSER,
        )
    )
    assert "邮箱或密码错误。" in page
    login(client, "admin@example.com", "admin-password")
    page = text(client.get("/admin/no-such-page/"))
    assert "未找到" in page


def test_my_settings_saves_language_and_time_zone(admin_client, admin_user):
    page = text(admin_client.get("/admin/settings/"))
    assert "Asia/Shanghai" in page and "Europe/Berlin" in page
    response = admin_client.post(
        "/admin/settings/",
        data={
            "locale": CHINESE,
            "timezone": "Europe/Berlin",
            "csrf_token": csrf_token(admin_client, "/admin/settings/"),
        },
        follow_redirects=True,
    )
    assert "您的设置已保存。" in text(response)
    person = saved(admin_user)
    assert person.locale == CHINESE and person.timezone == "Europe/Berlin"


def test_my_settings_refuses_an_unknown_time_zone(admin_client, admin_user):
    admin_client.post(
        "/admin/settings/",
        data={
            "locale": "",
            "timezone": "Mars/Olympus",
            "csrf_token": csrf_token(admin_client, "/admin/settings/"),
        },
    )
    assert saved(admin_user).timezone is None


def test_the_sign_in_code_message_is_in_the_persons_language(app, admin_user):
    from llmadmin.queues import get_queue
    from llmadmin.services.otp import deliver_login_code, issue

    class Capture:
        sent = []

        def send(self, message):
            self.sent.append(message)

    set_person(admin_user, locale=CHINESE)
    issue(admin_user)
    (job,) = [j for j in get_queue("llm").get_jobs() if j.func_name.endswith("send_login_code")]
    capture = Capture()
    assert deliver_login_code(*job.args, notifier=capture) == "sent"
    (message,) = capture.sent
    assert "登录验证码" in message.subject and "秒内有效" in message.body


def test_flask_admins_own_flashes_are_in_the_persons_language(zh_admin_client):
    """Flask-Admin's "Failed to create record." comes from its admin-domain catalogue."""
    page = text(post_form(zh_admin_client, "/admin/person/new/", {"name": ""}))
    assert "创建记录失败。" in page
    assert "Failed to create record." not in page
