"""A batch's details page follows the batch in a real browser, without a reload."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, QUEUED, RUNNING, SUCCESS
from llmadmin.services import batches
from tests.browser.conftest import sign_in
from tests.conftest import run_batch_jobs


def test_batch_details_follow_counts_status_finish_time_and_buttons(
    live, page, admin_user, sim_model, tmp_path
):
    source = tmp_path / "prompts.csv"
    source.write_text("prompt,model\nHello,Sim\nBye,Sim\n")
    batch = batches.create_batch_from_file(str(source), "csv", admin_user.id, name="Nightly")
    run_batch_jobs()
    first, second = [t.id for t in db.session.query(Task).order_by(Task.id)]
    sign_in(page, live.url)
    page.goto(f"{live.url}/admin/batch/details/?id={batch.id}")
    page.evaluate("window.__samePage = true")
    actions = page.locator("table.searchable")
    expect(actions.locator('form[action$="/cancel/"]')).to_have_count(1)

    transition([first, second], RUNNING, from_statuses=(QUEUED,))
    transition([first], FAILURE, error="boom")
    expect(page.locator('.js-count[data-field="failed"]')).to_have_text("1")
    expect(actions.locator('form[action$="/retry/"]')).to_have_count(1)
    transition([second], SUCCESS)
    expect(page.locator(".js-status")).to_have_attribute("data-status", "COMPLETED")
    expect(page.locator('.js-count[data-field="succeeded"]')).to_have_text("1")
    expect(page.locator('td[data-field="completed_at"]')).to_have_text(re.compile(r"\d"))
    expect(actions.locator('form[action$="/cancel/"]')).to_have_count(0)
    assert page.evaluate("window.__samePage") is True  # updated in place, not reloaded
