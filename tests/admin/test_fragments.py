"""Kept page parts (llmadmin/admin/fragments.py) are the parts a fresh render makes, for anyone."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from babel import dates as babel_dates

from llmadmin.admin import list_rows
from llmadmin.extensions import db
from llmadmin.i18n import relative_key
from llmadmin.models import Person
from llmadmin.models.task import FAILURE
from tests.admin.helpers import fast_passwords, make_task  # noqa: F401
from tests.conftest import login

PER_REQUEST = [
    (re.compile(r'nonce="[^"]+"'), 'nonce="N"'),
    (re.compile(r'name="csrf_token"([^>]*)value="[^"]+"'), r'name="csrf_token"\1value="T"'),
    (re.compile(r'value="[^"]+"([^>]*)name="csrf_token"'), r'value="T"\1name="csrf_token"'),
    (re.compile(r"(<time [^>]*>)[^<]*(</time>)"), r"\1\2"),  # "3 seconds ago" moves on
]
URLS = [
    "/admin/task/",
    "/admin/task/?flt1_status_equals=FAILURE&sort=2&desc=1",
    "/admin/task/?search=hello&page_size=50",
    "/admin/llmmodel/",  # "Create" and row buttons for admins only
    "/admin/person/",  # admins only (403 for members)
    "/admin/",
    "/admin/settings/",
]


def comparable(response) -> str:
    html = response.get_data(as_text=True)
    for pattern, replacement in PER_REQUEST:
        html = pattern.sub(replacement, html)
    return f"{response.status_code}\n{html}"


def fresh(*_key, swap=None, caller):
    return caller()


@pytest.fixture
def people_and_rows(app, admin_user, member_user, sim_model):
    make_task(admin_user, sim_model, name="hello admin")
    make_task(member_user, sim_model, name="hello member", status=FAILURE, result=None)
    db.session.commit()


def set_locale(email: str, locale: str) -> None:
    person = db.session.execute(db.select(Person).where(Person.email == email)).scalar_one()
    person.locale = locale
    db.session.commit()


def test_kept_parts_are_what_a_fresh_render_makes(app, people_and_rows, monkeypatch):
    """People, languages and list URLs in turns: each page equals the page rendered anew."""
    admin, member = app.test_client(), app.test_client()
    login(admin, "admin@example.com", "admin-password")
    login(member, "member@example.com", "member-password")
    kept = app.jinja_env.globals["cached_fragment"]
    for locale in ("en", "zh_Hans_CN", "en"):
        set_locale("admin@example.com", locale)
        set_locale("member@example.com", "zh_Hans_CN" if locale == "en" else "en")
        for url in URLS:
            for client in (admin, member, admin):
                app.jinja_env.globals["cached_fragment"] = kept
                with_kept = comparable(client.get(url))
                app.jinja_env.globals["cached_fragment"] = fresh
                assert with_kept == comparable(client.get(url)), (url, locale)
    app.jinja_env.globals["cached_fragment"] = kept


def test_members_never_get_an_admins_parts(app, people_and_rows):
    admin, member = app.test_client(), app.test_client()
    login(admin, "admin@example.com", "admin-password")
    login(member, "member@example.com", "member-password")
    for _ in range(2):
        assert "/admin/llmmodel/new/" in admin.get("/admin/llmmodel/").get_data(as_text=True)
        page = member.get("/admin/llmmodel/").get_data(as_text=True)
        assert "/admin/llmmodel/new/" not in page  # no "Create" link
        assert 'href="/admin/person/"' not in page  # no People in the menu
        assert 'href="/admin/person/"' in admin.get("/admin/task/").get_data(as_text=True)


def test_each_response_carries_its_own_nonce(admin_client, people_and_rows):
    seen = set()
    for _ in range(3):
        response = admin_client.get("/admin/task/")
        nonce = re.search(r"'nonce-([\w-]+)'", response.headers["Content-Security-Policy"])[1]
        used = set(re.findall(r'nonce="([^"]+)"', response.get_data(as_text=True)))
        assert used == {nonce}
        seen.add(nonce)
    assert len(seen) == 3


def test_a_new_language_is_seen_at_once(admin_client, people_and_rows):
    menu_entry = re.compile(r'href="/admin/task/">\s*(\S+)</a>')
    set_locale("admin@example.com", "en")
    assert menu_entry.search(admin_client.get("/admin/task/").get_data(as_text=True))[1] == "Tasks"
    set_locale("admin@example.com", "zh_Hans_CN")
    assert menu_entry.search(admin_client.get("/admin/task/").get_data(as_text=True))[1] == "任务"


@pytest.mark.parametrize("locale", ["en", "zh_Hans_CN"])
def test_relative_time_key_decides_babels_text(locale):
    """Ages with one ``relative_key`` get one text from Babel (what TimeCells relies on)."""
    texts: dict[tuple, set[str]] = {}
    ages = [0, 0.4, 1, 29, 44.9, 45, 50, 59, 60, 89, 90, 3000, 3599, 3600, 86399, 86400]
    ages += [
        86400 * d + s for d in (2, 6, 7, 13, 29, 30, 200, 364, 365, 800) for s in (0, 1, 43_000)
    ]
    for seconds in ages:
        for sign in (1, -1):
            age = timedelta(seconds=sign * seconds)
            text = babel_dates.format_timedelta(
                age, "second", threshold=0.85, add_direction=True, locale=locale
            )
            texts.setdefault(relative_key(age.total_seconds()), set()).add(text)
    assert all(len(found) == 1 for found in texts.values()), texts
    assert len(texts) > 30


def test_painted_cells_follow_a_views_own_get_list_value(
    admin_client, people_and_rows, monkeypatch
):
    """A view overriding ``_get_list_value`` has it called for every cell (no shortcut)."""
    from llmadmin.admin.tasks import TaskView

    def shouting(self, context, model, name, formatters, type_formatters):
        return "LOUD-" + name

    monkeypatch.setattr(TaskView, "_get_list_value", shouting)
    page = admin_client.get("/admin/task/").get_data(as_text=True)
    assert '<td class="col-name">LOUD-name</td>' in page
    assert list_rows.RowPainter  # the painter drew them (same module the list uses)


def test_templates_are_not_reloaded_outside_debug(app):
    """Outside debug Jinja does not stat template files on every render."""
    assert not app.debug and not app.jinja_env.auto_reload
