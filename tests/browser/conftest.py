"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded build).

One browser for the package; each test gets a fresh context and page at 1366×900 that records
Content-Security-Policy violations, and a screenshot of the page is saved to
``BROWSER_ARTIFACTS`` (default ``test-artifacts/browser``) when the test fails. ``live`` serves
the app on 127.0.0.1 in a thread; ``stack`` adds a real worker.py process and the simulated
endpoint, for flows that run tasks and exports.

With CI=true a missing Chromium is a failure, not a skip (.ci/run installs Debian's package).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from llmadmin.llm.simulator import SimulatorServer
from tests.conftest import make_test_app
from tests.integration.conftest import ROOT, Workers, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "test-artifacts" / "browser"))
SCREENSHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)
LOCALES = ("en", "zh_Hans_CN")

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});
"""


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so the page fixture knows it failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="package")
def chromium():
    """The package's browser; skip without Chromium (fail when CI=true).

    Package scope, not session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, and later tests that call ``asyncio.run`` would fail under it.
    """
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    """A fresh page at 1366×900; a screenshot lands in ARTIFACTS when the test fails."""
    context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_VIOLATIONS)
    tab = context.new_page()
    yield tab
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"no failure screenshot for {request.node.nodeid}: {exc}")
    context.close()


class LiveServer:
    """The app on a real werkzeug server in a thread, with a few test-only routes."""

    def __init__(self, database_uri: str, redis_url: str, **config) -> None:
        from flask import request

        self.hits: list[str] = []
        self.paths: list[str] = []
        self.app = make_test_app(database_uri, redis_url, **config)

        @self.app.before_request
        def note_path():
            self.paths.append(request.full_path)

        @self.app.route("/__xss_hit")
        def xss_hit():
            self.hits.append(request.full_path)
            return "", 204

        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def saw(self, fragment: str) -> bool:
        """Tell whether the server has seen a request whose path contains ``fragment``."""
        return any(fragment in p for p in self.paths)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(params=LOCALES)
def locale(request) -> str:
    """Run a flow once in English and once in Chinese."""
    return request.param


@pytest.fixture
def live(migrated, redis_url, app):
    server = LiveServer(migrated, redis_url)
    yield server
    server.stop()


class Stack:
    """The live server, one worker.py process and the simulated endpoint, all on 127.0.0.1."""

    def __init__(self, live: LiveServer, workers: Workers, simulator: SimulatorServer) -> None:
        self.live, self.workers, self.simulator = live, workers, simulator
        self.url = live.url


class StackWorkers(Workers):
    """worker.py processes that write exports where the live server serves them from."""

    def __init__(self, app, tmp_path, download_dir: Path):
        super().__init__(app, tmp_path)
        self.download_dir = download_dir

    def env(self) -> dict:
        return {**super().env(), "DOWNLOAD_DIR": str(self.download_dir)}


@pytest.fixture
def stack(migrated, redis_url, app, tmp_path):
    downloads = tmp_path / "downloads"
    server = LiveServer(migrated, redis_url, DOWNLOAD_DIR=str(downloads))
    workers = StackWorkers(app, tmp_path, downloads)
    try:
        with SimulatorServer(latency_ms=300) as simulator:
            workers.start(1)
            yield Stack(server, workers, simulator)
    finally:
        workers.stop_all()
        server.stop()


# --- helpers -----------------------------------------------------------------------------


def sign_in(page, url: str, email="admin@example.com", password="admin-password") -> None:
    """Sign in through the form and land on the home page."""
    page.goto(f"{url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form:has(#password) button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))


def choose_language(page, locale: str) -> None:
    """Press the navigation bar's language button (saved for the person, applied at once)."""
    button = page.locator(f"#locale-switch button[value='{locale}']")
    if "btn-light" not in (button.get_attribute("class") or ""):
        with page.expect_navigation():
            button.click()
    active = page.locator(f"#locale-switch button[value='{locale}']").get_attribute("class")
    assert "btn-light" in active, active


def violations(page) -> list:
    return page.evaluate("window.__violations")


def shot(page, name: str, locale: str) -> None:
    """Save a README screenshot (docs/screenshots/<lang>-<name>.png) when UPDATE_SCREENSHOTS=1."""
    if os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lang = "zh" if locale.startswith("zh") else "en"
    page.screenshot(path=str(SCREENSHOTS / f"{lang}-{name}.png"))


__all__ = ["PHONE", "choose_language", "shot", "sign_in", "violations", "wait_until"]
