"""In a real browser: hostile text never runs, and the admin still works under the
Content-Security-Policy (bulk actions, row delete, modals, the RQ dashboard).

The page records every CSP violation (``window.__violations``, set up in conftest); the live
server counts requests to ``/__xss_hit``, which every payload would call if it ran.
"""

from __future__ import annotations

import json

from playwright.sync_api import expect

from llmadmin.extensions import db
from llmadmin.lifecycle import TASKS
from llmadmin.models import Task
from llmadmin.models.task import CANCELED, QUEUED, RUNNING, SUCCESS
from tests.browser.conftest import sign_in, violations, wait_until

HOSTILE = (
    "<script>window.__xss='script';fetch('/__xss_hit?via=script')</script>"
    "<img src=x onerror=\"window.__xss='img';fetch('/__xss_hit?via=img')\">"
    "<svg onload=\"window.__xss='svg';fetch('/__xss_hit?via=svg')\"></svg>"
    "<a id=evil href=\"javascript:fetch('/__xss_hit?via=link')\">x</a>"
)

# Task names and queue notes are at most 200 characters.
HOSTILE_NAME = "<img src=x onerror=\"window.__xss='name';fetch('/__xss_hit?via=name')\">"


def add_task(admin, model, status, **fields) -> int:
    task = Task(
        name=fields.pop("name", f"{status} task"),
        prompt=fields.pop("prompt", "Say hi"),
        status=status,
        creator_id=admin.id,
        model_id=model.id,
        **fields,
    )
    db.session.add(task)
    db.session.commit()
    return task.id


def assert_nothing_ran(page, live, where: str) -> None:
    assert page.evaluate("window.__xss === undefined"), (where, page.evaluate("window.__xss"))
    assert page.locator("img[onerror], svg[onload], a#evil").count() == 0, where
    assert live.hits == [], where


def test_hostile_text_never_runs_in_the_browser(page, live, admin_user, sim_model):
    done = add_task(
        admin_user,
        sim_model,
        SUCCESS,
        name=f"done {HOSTILE_NAME}",
        prompt=HOSTILE,
        system_prompt=HOSTILE,
        result=HOSTILE,
    )
    running = add_task(
        admin_user,
        sim_model,
        RUNNING,
        name=f"running {HOSTILE_NAME}",
        prompt=HOSTILE,
        result=HOSTILE,
    )
    sign_in(page, live.url)

    # The list page: names are text; the live refresh swaps every cell of the row in.
    page.goto(f"{live.url}/admin/task/")
    title = page.title()
    # Through the state machine: the lifecycle guard refuses any other status write.
    TASKS.transition(
        [running], SUCCESS, from_statuses=(RUNNING,), queue_note=f"re-queued: {HOSTILE_NAME}"
    )
    db.session.commit()
    expect(
        page.locator(f"tr:has(input.action-checkbox[value='{running}']) [data-status]")
    ).to_have_attribute("data-status", SUCCESS)
    assert live.saw("/admin/task/status.json?ids=")
    assert page.title() == title
    assert_nothing_ran(page, live, "task list")
    assert violations(page) == []

    # A running task's page streams its output in with textContent.
    TASKS.transition([running], QUEUED)
    TASKS.transition([running], RUNNING)
    page.goto(f"{live.url}/admin/task/details/?id={running}")
    expect(page.locator('pre[data-field="result"]')).to_have_text(HOSTILE)
    wait_until(lambda: live.saw("with_result=1"), timeout=30, message="the page's polling")
    assert_nothing_ran(page, live, "running task details")

    for url in (f"/admin/task/details/?id={done}", "/admin/", "/admin/audit/"):
        page.goto(live.url + url)
        assert_nothing_ran(page, live, url)
        assert violations(page) == [], url

    # The probe itself works: the same payloads, unescaped and without a CSP, do run.
    page.route(
        f"{live.url}/__control",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body=f"<!doctype html><html><body>{HOSTILE}</body></html>",
        ),
    )
    page.goto(f"{live.url}/__control")
    page.wait_for_function("window.__xss !== undefined")
    wait_until(lambda: live.hits, timeout=30, message="the control payload's request")


def test_bulk_actions_row_delete_and_modals_work_under_the_csp(page, live, admin_user, sim_model):
    queued = add_task(admin_user, sim_model, QUEUED)
    doomed = add_task(admin_user, sim_model, SUCCESS, name="to delete")
    sign_in(page, live.url)
    page.goto(f"{live.url}/admin/task/")
    assert page.evaluate("typeof window.modelActions") == "object"  # nonce'd scripts ran

    # "With selected → Cancel": an inline onclick in Flask-Admin's template, allowed by its hash.
    page.once("dialog", lambda dialog: dialog.accept())
    page.check(f"input.action-checkbox[value='{queued}']")
    with page.expect_navigation():
        page.evaluate('document.querySelector("[onclick*=\\"execute(\'cancel\')\\"]").click()')
    db.session.expire_all()
    assert db.session.get(Task, queued).status == CANCELED
    expect(page.locator(".alert-success")).to_have_count(1)

    # The row's trash button: its confirm() is an inline handler too. Refused first, then accepted.
    trash = page.locator(f"form.icon:has(input[name='id'][value='{doomed}']) button")
    page.once("dialog", lambda dialog: dialog.dismiss())
    trash.click()
    page.goto(f"{live.url}/admin/task/")
    db.session.expire_all()
    assert db.session.get(Task, doomed) is not None
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.locator(f"form.icon:has(input[name='id'][value='{doomed}']) button").click()
    db.session.expire_all()
    assert db.session.get(Task, doomed) is None

    # The create modal is loaded by jQuery with a script carrying another response's nonce.
    page.click("a[data-target='#fa_modal_window']")
    page.wait_for_selector("#fa_modal_window .select2-container")
    assert page.locator("#fa_modal_window select#model").count() == 1
    assert violations(page) == []


def test_rq_dashboard_works_under_its_policy_and_links_back(page, live, admin_user):
    sign_in(page, live.url)
    page.goto(f"{live.url}/admin/rq/")
    expect(page.locator("#queues tbody tr").first).to_be_attached()
    assert live.saw("/admin/rq/0/data/queues.json")
    assert violations(page) == []
    with page.expect_navigation():
        page.click("#back-to-admin")
    assert page.url.rstrip("/").endswith("/admin")


DASH_HOSTILE = (
    "<b id=wk>bold</b><img src=x onerror=\"window.__xss='rq';fetch('/__xss_hit?via=rq')\">"
)


def hostile_jobs():
    """Jobs as RQ stores them, every shown field hostile: a busy worker on one, a failed one."""
    from rq import Worker
    from rq.job import Job
    from rq.registry import FailedJobRegistry
    from rq.results import Result

    from llmadmin.queues import get_queue

    queue = get_queue("llm")
    running = queue.enqueue(
        "llmadmin.jobs.tasks.test_model_connection",
        DASH_HOSTILE,
        description=DASH_HOSTILE,
        job_id="hostile-running",
    )
    failed = Job.create(
        "llmadmin.jobs.tasks.test_model_connection",
        args=[DASH_HOSTILE],
        description=DASH_HOSTILE,
        connection=queue.connection,
        id="hostile-failed",
        origin=queue.name,
    )
    failed.save()
    Result.create(failed, Result.Type.SUCCESSFUL, ttl=600, return_value={"error": DASH_HOSTILE})
    Result.create_failure(failed, ttl=600, exc_string=f"Traceback: {DASH_HOSTILE}")
    FailedJobRegistry(queue=queue).add(failed, ttl=600)
    worker = Worker([queue], connection=queue.connection, name="probe-worker")
    worker.register_birth()
    worker.set_current_job_id(running.id)
    return queue, worker


def test_rq_dashboard_shows_hostile_job_text_as_text(page, live, admin_user):
    queue, worker = hostile_jobs()
    try:
        sign_in(page, live.url)
        pages = (
            ("/admin/rq/0/view/workers", "#workers tbody tr[data-role=worker]"),
            ("/admin/rq/0/view/job/hostile-failed", "#job-data .description-scroll"),
            (f"/admin/rq/0/view/jobs/{queue.name}/failed/8/asc/1", "#jobs tbody tr[data-role=job]"),
        )
        for url, rendered in pages:
            page.goto(live.url + url)
            expect(page.locator(rendered).first).to_be_attached()
            assert page.locator("#wk").count() == 0, url
            assert page.locator("img[src=x]").count() == 0, url
            html = page.locator(".container").first.inner_html()
            assert "&lt;b id=wk&gt;" in html, url  # shown, as text
            assert_nothing_ran(page, live, url)
            assert violations(page) == [], json.dumps(url)
    finally:
        worker.register_death()


def test_menus_and_tabs_follow_no_javascript_urls(page, live, admin_user, sim_model):
    """QA: Flask-Admin's menus and tabs are links to "javascript:void(0)"; a click ran that
    URL and the CSP refused it (a console error each time). Now nothing is refused and the
    menus still open and act."""
    queued = add_task(admin_user, sim_model, QUEUED)
    sign_in(page, live.url)
    page.goto(f"{live.url}/admin/task/")
    links = page.locator("a[href^='javascript:']")
    assert links.count() >= 3  # the List tab, the Actions and page size menus, ...
    for i in range(links.count()):
        if links.nth(i).is_visible():
            links.nth(i).click()
            page.keyboard.press("Escape")
    assert violations(page) == []
    # "With selected → Cancel" with real clicks: the menu opens and the action runs.
    page.check(f"input.action-checkbox[value='{queued}']")
    menu = page.locator("a.dropdown-toggle:has(+ .dropdown-menu [onclick*='modelActions'])")
    menu.click()
    cancel = page.locator("[onclick*=\"execute('cancel')\"]")
    expect(cancel).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        cancel.click()
    db.session.expire_all()
    assert db.session.get(Task, queued).status == CANCELED
    assert violations(page) == []
