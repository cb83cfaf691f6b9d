"""Layout in a real browser, in English and in Chinese: at 1366 px the navigation bar stays on
one line and every list fits without sideways scrolling; on a phone (390 px) the task list keeps
its status column.

Every list gets at least one row with long text, so a column that cannot wrap shows up here.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download, Task
from llmadmin.models.task import FAILURE
from llmadmin.services import api_tokens, audit
from tests.browser.conftest import PHONE, choose_language, sign_in, violations

LONG = "summarise the quarterly revenue report for the regional sales teams " * 3
LISTS = ("task", "llmmodel", "download", "bulkoperation", "person", "apitoken", "audit")

NAV_ROWS = """() => {
  const nav = document.querySelector('nav.navbar');
  const items = [...nav.querySelectorAll('.navbar-nav > li, .navbar-brand')]
    .filter(e => e.offsetParent !== null);
  const tops = items.map(e => e.getBoundingClientRect().top);
  return {spread: Math.max(...tops) - Math.min(...tops), count: items.length,
          overflow: nav.scrollWidth - nav.clientWidth};
}"""

FITS = """() => ({page: document.documentElement.scrollWidth - window.innerWidth,
  tables: [...document.querySelectorAll('.table-responsive')]
    .map(t => t.scrollWidth - t.clientWidth)})"""

# Cells whose number, time or e-mail was broken across lines (more than one line box).
BROKEN_TOKENS = """() => [...document.querySelectorAll(
    'table.model-list td.col-id, table.model-list td.col-email, td time')]
  .filter(e => { const r = document.createRange(); r.selectNodeContents(e);
    return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size > 1; })
  .map(e => e.textContent.trim())"""


def some_of_everything(person, model) -> None:
    """One row of each list, with long texts where a list shows text."""
    task = Task(
        name=LONG[:200],
        prompt=LONG,
        status=FAILURE,
        model_id=model.id,
        creator_id=person.id,
        attempts=3,
        error=LONG,
        error_kind="http_error",
    )
    db.session.add(task)
    db.session.add(
        Download(
            name=f"Tasks export — {LONG[:120]}",
            file_name="tasks-2026-11-29.csv",
            status="FAILURE",
            error=LONG,
            creator_id=person.id,
        )
    )
    db.session.add(
        BulkOperation(
            creator_id=person.id,
            list_name="task",
            action="retry",
            selection=json.dumps({"list_name": "task", "ids": [1]}),
            description=LONG[:300],
            status="SUCCESS",
            matched=1,
            processed=1,
            changed=1,
        )
    )
    db.session.commit()
    api_tokens.create_token(person.id, "nightly batch importer for the finance team")
    audit.record("update", "task", task.id, LONG, person=person)


@pytest.mark.parametrize("lang", ["en", "zh_Hans_CN"])
def test_the_navigation_bar_is_one_line_and_lists_fit_at_1366(
    page, live, admin_user, sim_model, lang
):
    some_of_everything(admin_user, sim_model)
    sign_in(page, live.url)
    choose_language(page, lang)  # an admin sees every menu entry
    for endpoint in LISTS:
        page.goto(f"{live.url}/admin/{endpoint}/")
        expect(page.locator("table.model-list")).to_be_visible()
        nav = page.evaluate(NAV_ROWS)
        assert nav["count"] > 5 and nav["spread"] < 8, (endpoint, nav)
        assert nav["overflow"] <= 0, (endpoint, nav)
        fit = page.evaluate(FITS)
        assert fit["page"] <= 0 and all(t <= 0 for t in fit["tables"]), (endpoint, fit)
        assert page.evaluate(BROKEN_TOKENS) == [], endpoint
    page.goto(f"{live.url}/admin/")
    assert page.evaluate(NAV_ROWS)["spread"] < 8
    assert page.evaluate(FITS)["page"] <= 0
    assert violations(page) == []


@pytest.mark.parametrize("lang", ["en", "zh_Hans_CN"])
def test_a_phone_keeps_the_status_column(page, live, admin_user, sim_model, lang):
    some_of_everything(admin_user, sim_model)
    sign_in(page, live.url)
    choose_language(page, lang)
    page.set_viewport_size(PHONE)
    page.goto(f"{live.url}/admin/task/")
    row = page.locator("table.model-list tbody tr").first
    expect(row.locator("td.col-status")).to_be_visible()
    expect(row.locator("td.col-name")).to_be_visible()
    status = row.locator("td.col-status").bounding_box()
    assert status is not None and status["x"] + status["width"] <= PHONE["width"], status
    assert page.evaluate(FITS)["page"] <= 0


def test_the_menus_open_and_sign_out_works(page, live, admin_user, member_user):
    sign_in(page, live.url)
    page.click("a.dropdown-toggle:has-text('Administration')")
    expect(page.locator("a.dropdown-item[href='/admin/rq/']")).to_be_visible()
    expect(page.locator("a.dropdown-item[href^='/admin/person/']")).to_be_visible()
    page.click("#user-menu-toggle")
    expect(page.locator("#user-menu a[href$='/admin/settings/']")).to_be_visible()
    with page.expect_navigation():
        page.click("#sign-out")
    page.goto(f"{live.url}/admin/task/")
    expect(page.locator("#password")).to_be_visible()  # signed out: the sign-in form

    # A member has no Administration menu (none of its panels are open to them).
    sign_in(page, live.url, email="member@example.com", password="member-password")
    expect(page.locator("a.dropdown-toggle:has-text('Administration')")).to_have_count(0)
    expect(page.locator("nav a[href^='/admin/apitoken/']")).to_be_visible()
    assert violations(page) == []
