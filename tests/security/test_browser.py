"""In a real browser (headless Chromium over DevTools): hostile text never runs, and the admin
still works under the Content-Security-Policy (bulk actions, row delete, modals, RQ dashboard).

Runs when /usr/bin/chromium exists. With CI=true a missing Chromium is a failure, not a skip
(.ci/run installs Debian's ``chromium`` package).
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from werkzeug.serving import make_server

from llmadmin.extensions import db
from llmadmin.lifecycle import TASKS
from llmadmin.models import Task
from llmadmin.models.task import CANCELED, QUEUED, RUNNING, SUCCESS
from tests.conftest import make_test_app
from tests.security.cdp import CHROMIUM, Browser

HOSTILE = (
    "<script>window.__xss='script';fetch('/__xss_hit?via=script')</script>"
    "<img src=x onerror=\"window.__xss='img';fetch('/__xss_hit?via=img')\">"
    "<svg onload=\"window.__xss='svg';fetch('/__xss_hit?via=svg')\"></svg>"
    "<a id=evil href=\"javascript:fetch('/__xss_hit?via=link')\">x</a>"
)

# Task names and queue notes are at most 200 characters.
HOSTILE_NAME = "<img src=x onerror=\"window.__xss='name';fetch('/__xss_hit?via=name')\">"

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});
"""


def chromium_or_fail() -> str:
    """Return Chromium's path; without it, skip — or fail when CI=true."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"CI=true but {CHROMIUM} is missing: .ci/run must install Debian's chromium package"
        )
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        yield None
        return
    chrome = Browser(CHROMIUM, timeout=60)
    try:
        chrome.send("Page.enable")
        chrome.send("Runtime.enable")
        chrome.send("Page.addScriptToEvaluateOnNewDocument", source=RECORD_VIOLATIONS)
        yield chrome
    finally:
        chrome.close()


class LiveServer:
    """The app on a real werkzeug server in a thread, with a few test-only routes."""

    def __init__(self, database_uri: str, redis_url: str) -> None:
        from flask import request

        self.hits: list[str] = []
        self.paths: list[str] = []
        app = make_test_app(database_uri, redis_url)

        @app.before_request
        def note_path():
            self.paths.append(request.full_path)

        @app.route("/__xss_hit")
        def xss_hit():
            self.hits.append(request.full_path)
            return "", 204

        @app.route("/__control")
        def control():
            # The same payloads with no escaping and no CSP: proves the probe would notice.
            page = f"<!doctype html><html><head><title>control</title></head><body>{HOSTILE}</body></html>"
            return page, 200, {"Content-Security-Policy": "default-src 'self' 'unsafe-inline'"}

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for_path(self, fragment: str, timeout: float = 30.0) -> bool:
        """Wait until the server has seen a request whose path contains ``fragment``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(fragment in p for p in self.paths):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live(migrated, redis_url, app):
    server = LiveServer(migrated, redis_url)
    yield server
    server.stop()


def sign_in(chrome: Browser, live: LiveServer) -> None:
    chrome.send("Network.clearBrowserCookies")
    chrome.navigate(f"{live.url}/login")
    chrome.run_and_wait_for_load(
        "document.getElementById('email').value = 'admin@example.com';"
        "document.getElementById('password').value = 'admin-password';"
        "document.querySelector('form').submit();"
    )
    assert chrome.evaluate("location.pathname") == "/admin/"


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


def assert_nothing_ran(chrome: Browser, live: LiveServer, where: str) -> None:
    assert chrome.evaluate("window.__xss === undefined"), (where, chrome.evaluate("window.__xss"))
    assert (
        chrome.evaluate("document.querySelectorAll('img[onerror], svg[onload], a#evil').length")
        == 0
    ), where
    assert live.hits == [], where


def test_hostile_text_never_runs_in_the_browser(browser, live, admin_user, sim_model):
    chrome = chromium_or_fail() and browser
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
    sign_in(chrome, live)

    # The list page: names are text; the live refresh swaps badges in with innerHTML.
    chrome.navigate(f"{live.url}/admin/task/")
    title = chrome.evaluate("document.title")
    # Through the state machine: the lifecycle guard refuses any other status write.
    TASKS.transition(
        [running], SUCCESS, from_statuses=(RUNNING,), queue_note=f"re-queued: {HOSTILE_NAME}"
    )
    db.session.commit()
    assert live.wait_for_path("/admin/task/status.json?ids="), "the list page's refresh never ran"
    assert chrome.wait_until(
        # the badge shows a translated label; the stored status is in data-status
        f"document.querySelector('.js-status[data-id=\"{running}\"]').dataset.status"
        f" === '{SUCCESS}'"
    ), "the badge was not refreshed"
    assert chrome.evaluate("document.title") == title
    assert_nothing_ran(chrome, live, "task list")
    assert chrome.evaluate("window.__violations") == []

    # A running task's page streams its output in with textContent.
    TASKS.transition([running], QUEUED)
    TASKS.transition([running], RUNNING)
    chrome.navigate(f"{live.url}/admin/task/details/?id={running}")
    assert live.wait_for_path("with_result=1"), "the details page's polling never ran"
    assert chrome.wait_until(
        f"document.querySelector('pre[data-field=\"result\"]').textContent === {HOSTILE!r}"
    )
    assert_nothing_ran(chrome, live, "running task details")

    for url in (f"/admin/task/details/?id={done}", "/admin/", "/admin/audit/"):
        chrome.navigate(live.url + url)
        assert_nothing_ran(chrome, live, url)
        assert chrome.evaluate("window.__violations") == [], url

    # The probe itself works: the same payloads, unescaped and without a CSP, do run.
    chrome.navigate(f"{live.url}/__control")
    assert chrome.wait_until("window.__xss !== undefined")
    assert live.wait_for_path("/__xss_hit")


def test_bulk_actions_row_delete_and_modals_work_under_the_csp(
    browser, live, admin_user, sim_model
):
    chrome = chromium_or_fail() and browser
    queued = add_task(admin_user, sim_model, QUEUED)
    doomed = add_task(admin_user, sim_model, SUCCESS, name="to delete")
    sign_in(chrome, live)
    chrome.navigate(f"{live.url}/admin/task/")
    assert (
        chrome.evaluate("typeof window.modelActions") == "object"
    )  # nonce'd Flask-Admin scripts ran

    # "With selected → Cancel": an inline onclick in Flask-Admin's template, allowed by its hash.
    cancel_link = json.dumps("[onclick*=\"execute('cancel')\"]")
    chrome.run_and_wait_for_load(
        "window.confirm = function () { return true; };"
        f"document.querySelector('input.action-checkbox[value=\"{queued}\"]').checked = true;"
        f"document.querySelector({cancel_link}).click();"
    )
    db.session.expire_all()
    assert db.session.get(Task, queued).status == CANCELED
    assert "canceled" in chrome.evaluate("document.querySelector('.alert').textContent")

    # The row's trash button: its confirm() is an inline handler too. Refused first, then accepted.
    button = f"document.querySelector('form.icon input[name=\"id\"][value=\"{doomed}\"]').form.querySelector('button')"
    chrome.evaluate(f"window.confirm = function () {{ return false; }}; {button}.click(); 1")
    chrome.navigate(f"{live.url}/admin/task/")
    db.session.expire_all()
    assert db.session.get(Task, doomed) is not None
    chrome.run_and_wait_for_load(
        f"window.confirm = function () {{ return true; }}; {button}.click();"
    )
    db.session.expire_all()
    assert db.session.get(Task, doomed) is None

    # The create modal is loaded by jQuery with a script carrying another response's nonce: its hash lets it run.
    chrome.evaluate("document.querySelector('a[data-target=\"#fa_modal_window\"]').click(); 1")
    assert chrome.wait_until(
        "!!document.querySelector('#fa_modal_window select#model') && "
        "!!document.querySelector('#fa_modal_window .select2-container')"
    ), "the modal's fields were not set up"
    assert chrome.evaluate("window.__violations") == []


def test_rq_dashboard_works_under_its_policy(browser, live, admin_user):
    chrome = chromium_or_fail() and browser
    sign_in(chrome, live)
    chrome.navigate(f"{live.url}/admin/rq/")
    assert live.wait_for_path("/admin/rq/0/data/queues.json"), "the dashboard's script never ran"
    assert chrome.wait_until("document.querySelectorAll('#queues tbody tr').length > 0"), (
        "the dashboard's underscore templates did not render"
    )
    assert chrome.evaluate("window.__violations") == []


DASH_HOSTILE = (
    "<b id=wk>bold</b><img src=x onerror=\"window.__xss='rq';fetch('/__xss_hit?via=rq')\">"
)


def hostile_jobs(r):
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


def test_rq_dashboard_shows_hostile_job_text_as_text(browser, live, admin_user, r):
    chrome = chromium_or_fail() and browser
    queue, worker = hostile_jobs(r)
    try:
        sign_in(chrome, live)
        pages = (
            ("/admin/rq/0/view/workers", "#workers tbody tr[data-role=worker]"),
            ("/admin/rq/0/view/job/hostile-failed", "#job-data .description-scroll"),
            (f"/admin/rq/0/view/jobs/{queue.name}/failed/8/asc/1", "#jobs tbody tr[data-role=job]"),
        )
        for url, rendered in pages:
            chrome.navigate(live.url + url)
            assert chrome.wait_until(f"!!document.querySelector({json.dumps(rendered)})"), url
            assert chrome.evaluate("document.getElementById('wk') === null"), url
            assert chrome.evaluate("document.querySelectorAll('img[src=x]').length") == 0, url
            html = chrome.evaluate("document.querySelector('.container').innerHTML")
            assert "&lt;b id=wk&gt;" in html, url  # shown, as text
            assert_nothing_ran(chrome, live, url)
            assert chrome.evaluate("window.__violations") == [], url
    finally:
        worker.register_death()
