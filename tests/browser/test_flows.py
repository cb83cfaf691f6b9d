"""The main flows in a real browser, in English and in Chinese, against a real worker and the
simulated endpoint: add a model and test it, create a task in the modal and watch every
column fill in, a bulk action over a filter, export and download a file, language and zone.

Selectors are ids, names and data attributes, never visible text, so one test serves both
languages. Screenshots for the README are taken along the way with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import hashlib
import re

from playwright.sync_api import expect

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download, LLMModel, Task
from llmadmin.models.task import FAILURE, SUCCESS
from tests.browser.conftest import PHONE, choose_language, shot, sign_in, violations, wait_until


def sim_model(stack, name="Simulated chat") -> LLMModel:
    model = LLMModel(
        name=name,
        base_url=stack.simulator.url,
        model_name="sim-chat",
        simulated=True,
        max_concurrency=8,
    )
    db.session.add(model)
    db.session.commit()
    return model


def add_tasks(model, person, status, count, **fields) -> list[int]:
    tasks = [
        Task(
            name=f"{status.lower()} #{i} {fields.get('name', 'summarise the weekly report')}",
            prompt=f"Summarise report {i}",
            status=status,
            model_id=model.id,
            creator_id=person.id,
            attempts=1,
            latency_ms=420.0 + i,
            prompt_tokens=12,
            completion_tokens=30 + i,
        )
        for i in range(count)
    ]
    db.session.add_all(tasks)
    db.session.commit()
    return [t.id for t in tasks]


def fits(page) -> bool:
    """Tell whether the page and its list show everything without sideways scrolling."""
    return page.evaluate(
        """() => document.documentElement.scrollWidth <= window.innerWidth &&
           [...document.querySelectorAll('.table-responsive')]
             .every(t => t.scrollWidth <= t.clientWidth)"""
    )


def row(page, task_id: int):
    return page.locator(f"tr:has(input.action-checkbox[value='{task_id}'])")


def fresh(model, ident):
    db.session.expire_all()
    found = db.session.get(model, ident)
    db.session.commit()
    return found


def test_add_a_model_pick_its_name_from_the_endpoint_and_test_it(page, stack, admin_user, locale):
    sign_in(page, stack.url)
    choose_language(page, locale)
    page.goto(f"{stack.url}/admin/llmmodel/new/")
    page.fill("#name", "Team endpoint")
    page.fill("#base_url", stack.simulator.url)

    page.click("#list-models")
    expect(page.locator("#model-tools-note")).to_have_class(re.compile("text-success"))
    offered = page.eval_on_selector_all("#endpoint-models option", "os => os.map(o => o.value)")
    assert "sim-chat" in offered
    page.fill("#model_name", "sim-chat")
    page.click("#test-connection")
    expect(page.locator("#model-tools-note")).to_have_class(re.compile("text-success"))
    shot(page, "model-form", locale)

    with page.expect_navigation():
        page.click("form.admin-form input[type=submit]:not([name])")
    model = db.session.execute(db.select(LLMModel).filter_by(name="Team endpoint")).scalar_one()
    assert model.base_url == stack.simulator.url.rstrip("/")

    # The row's Test button tests the saved model now and shows the result in the row.
    with page.expect_navigation():
        page.click(f".js-test-row[data-id='{model.id}']")
    expect(page.locator(".alert-success")).to_have_count(1)
    expect(
        page.locator(f"tr:has(.js-test-row[data-id='{model.id}']) td.col-last_test .badge-success")
    ).to_be_visible()
    assert fits(page), "the model list scrolls sideways at 1366 px"

    # A wrong address gives a clear message, not a stack trace.
    page.goto(f"{stack.url}/admin/llmmodel/edit/?id={model.id}")
    page.fill("#base_url", "http://169.254.169.254/v1")
    page.click("#list-models")
    expect(page.locator("#model-tools-note")).to_have_class(re.compile("text-danger"))
    assert violations(page) == []


def test_create_a_task_in_the_modal_and_watch_every_column_fill_in(page, stack, admin_user, locale):
    model = sim_model(stack)
    sign_in(page, stack.url)
    choose_language(page, locale)
    page.goto(f"{stack.url}/admin/task/")

    page.click("a[data-target='#fa_modal_window']")
    page.wait_for_selector("#fa_modal_window select#model", state="attached")
    page.eval_on_selector(
        "#fa_modal_window select#model",
        "(s, v) => { s.value = v; s.dispatchEvent(new Event('change', {bubbles: true})); }",
        str(model.id),
    )
    # The simulator takes a few seconds, so the list shows the task before it has finished.
    page.fill(
        "#fa_modal_window textarea#prompt", "Write a haiku about queues [[sim: latency_ms=4000]]"
    )
    with page.expect_navigation():
        page.click("#fa_modal_window .modal-footer input[type=submit]")

    task = db.session.execute(db.select(Task).order_by(Task.id.desc())).scalars().first()
    expect(page.locator(".container-fluid > .alert")).to_have_count(1)  # one message per action
    page.evaluate("window.__same_page = true")
    cells = row(page, task.id)
    expect(cells.locator("td.col-latency_ms")).to_have_text("")

    expect(cells.locator("td.col-status [data-status]")).to_have_attribute(
        "data-status", SUCCESS, timeout=60_000
    )
    for column in ("latency_ms", "prompt_tokens", "completion_tokens", "finished_at"):
        expect(cells.locator(f"td.col-{column}")).not_to_have_text("")
    expect(cells.locator("td.col-attempts")).to_have_text("1")
    assert page.evaluate("window.__same_page === true"), "the list was reloaded"
    assert fits(page), "the task list scrolls sideways at 1366 px"
    shot(page, "tasks", locale)
    assert violations(page) == []

    page.set_viewport_size(PHONE)  # on a phone the list keeps its important columns
    assert fits(page)
    expect(cells.locator("td.col-status")).to_be_visible()
    expect(cells.locator("td.col-creator")).to_be_hidden()


def test_a_bulk_action_over_a_filter(page, stack, admin_user, locale):
    model = sim_model(stack)
    failed = add_tasks(model, admin_user, FAILURE, 4, name="timed out")
    succeeded = add_tasks(model, admin_user, SUCCESS, 2)
    sign_in(page, stack.url)
    choose_language(page, locale)
    page.goto(f"{stack.url}/admin/task/")

    with page.expect_navigation():
        page.click(f"#status-filter a[data-status='{FAILURE}']")  # one click, no Apply
    expect(page.locator("input.action-checkbox")).to_have_count(len(failed))
    page.check("#all-matching")
    with page.expect_navigation():
        page.evaluate('document.querySelector("[onclick*=\\"execute(\'retry\')\\"]").click()')

    operation = db.session.execute(db.select(BulkOperation)).scalar_one()
    expect(
        page.locator(f"a[href*='/admin/bulkoperation/details/?id={operation.id}']").first
    ).to_be_visible()
    wait_until(
        lambda: all(fresh(Task, i).status == SUCCESS for i in failed),
        timeout=60,
        message="the retried tasks to succeed",
    )
    assert all(fresh(Task, i).attempts == 1 for i in succeeded)  # outside the filter: untouched
    page.goto(f"{stack.url}/admin/bulkoperation/")
    expect(page.locator("td.col-status [data-status]").first).to_have_attribute(
        "data-status", "SUCCESS", timeout=60_000
    )


def test_export_and_download_a_file(page, stack, admin_user, locale):
    model = sim_model(stack)
    add_tasks(model, admin_user, SUCCESS, 5)
    sign_in(page, stack.url)
    choose_language(page, locale)
    page.goto(f"{stack.url}/admin/task/")
    page.evaluate("window.__same_page = true")
    page.check("input.action-toggle, th input[type=checkbox]")
    with page.expect_navigation():
        page.evaluate('document.querySelector("[onclick*=\\"execute(\'export_csv\')\\"]").click()')
    page.evaluate("window.__same_page = true")

    # The "ready" notice arrives while the page stays open.
    ready = page.locator("#live-notices a[href*='/downloads/']")
    expect(ready).to_be_visible(timeout=60_000)
    assert page.evaluate("window.__same_page === true")
    shot(page, "export-ready", locale)
    with page.expect_download() as arrived:
        ready.click()
    body = open(arrived.value.path(), "rb").read()
    download = db.session.execute(db.select(Download)).scalar_one()
    db.session.refresh(download)
    assert hashlib.md5(body).hexdigest() == download.md5
    assert body.count(b"\n") >= 6  # header and five rows

    page.goto(f"{stack.url}/admin/download/")


def test_switch_language_and_time_zone(page, live, admin_user, sim_model):
    add_tasks(sim_model, admin_user, SUCCESS, 1)
    sign_in(page, live.url)
    choose_language(page, "en")
    nav = page.locator("#admin-navbar-collapse")
    expect(nav).to_contain_text("Tasks")
    choose_language(page, "zh_Hans_CN")
    expect(nav).to_contain_text("任务")
    shot(page, "home", "zh_Hans_CN")

    page.goto(f"{live.url}/admin/settings/")
    page.select_option("#timezone", "America/New_York")
    with page.expect_navigation():
        page.click("form:has(#timezone) button[type=submit]")
    page.goto(f"{live.url}/admin/task/")
    expect(page.locator("td.col-created_at time").first).to_have_attribute(
        "title", re.compile("America/New_York")
    )
    choose_language(page, "en")
    expect(nav).to_contain_text("Tasks")
    page.goto(f"{live.url}/admin/")
    shot(page, "home", "en")
