"""A task's details page acts on the task itself: re-run, retry, duplicate, cancel."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import CANCELED, FAILURE, PENDING, QUEUED
from tests.browser.conftest import choose_language, sign_in, violations
from tests.browser.test_security import add_task


def test_the_details_page_cancels_and_retries_its_task(page, live, admin_user, sim_model, locale):
    queued = add_task(admin_user, sim_model, QUEUED)
    failed = add_task(admin_user, sim_model, FAILURE, error="boom", error_kind="server_error")
    sign_in(page, live.url)
    choose_language(page, locale)

    page.goto(f"{live.url}/admin/task/details/?id={queued}")
    buttons = page.locator("#task-actions [data-action]")
    expect(buttons).to_have_count(2)  # duplicate, cancel: nothing to re-run yet
    # Refusing the confirmation changes nothing; accepting it cancels, back on this page.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#task-actions button[data-action='cancel']")
    db.session.expire_all()
    assert db.session.get(Task, queued).status == QUEUED
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#task-actions button[data-action='cancel']")
    assert re.search(rf"/admin/task/details/\?id={queued}\b", page.url), page.url
    expect(page.locator(".alert-success")).to_have_count(1)
    db.session.expire_all()
    assert db.session.get(Task, queued).status == CANCELED
    expect(page.locator("#task-actions [data-action='run']")).to_have_count(1)

    page.goto(f"{live.url}/admin/task/details/?id={failed}")
    with page.expect_navigation():
        page.click("#task-actions button[data-action='retry']")
    db.session.expire_all()
    assert db.session.get(Task, failed).status in (PENDING, QUEUED)
    page.click("#task-actions a[data-action='duplicate']")
    page.wait_for_url(re.compile(rf".*/admin/task/duplicate/\?ids={failed}&.*"))
    assert violations(page) == []
