"""Browser fixtures: the real app served over HTTP on loopback, and Debian's Chromium driven by Playwright.

``app_url`` is the base URL of the app built by the shared ``app`` fixture, served by werkzeug in a
thread on a free loopback port. (Browser tests pin ``backend`` to SQLite in their module: they look at
pages, not at the database. The whole-system tests beside them run on both backends.)
``page`` is a fresh Chromium tab (its own browser context) for each test, in a browser started once
per test module. Playwright's own browser download is never used: Chromium is Debian's, at
/usr/bin/chromium, which .ci/run installs. Where it is missing the browser tests skip and say why.
"""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium reaches for Google's services at start-up, and in
# a closed network those connections are refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]



@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium, one per test module.

    Not one per session: while Playwright's sync API is started, its event loop counts as running in
    this thread, so any later test that calls asyncio.run() (the beacon listener's, the demo's) would
    fail. Module scope has pytest stop it before the next module's tests. (A test in the same module
    as the browser cannot use asyncio.run() for the same reason.)
    """
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's 'chromium' package (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app_url: str):
    """A fresh tab in its own browser context, with relative URLs resolved against ``app_url``."""
    context = browser.new_context(base_url=app_url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


# --- the consoles ------------------------------------------------------------------------------------

CONSOLE_PASSWORD = "console passphrase 16"


class Console:
    """A console tab that fails its test on a JavaScript error, a console error, a failed request (a read the
    browser cancels because the test left the page is not one) or an HTTP error the test did not declare with
    :meth:`allow` (bad input a test types on purpose).

    Chromium reports a fetch answered 4xx as a console error too ("Failed to load resource"); those are
    judged by their response instead, so an allowed 422 is not also a console error.
    """

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.problems: list[str] = []
        self._allowed: list[tuple[int, str]] = []
        page.on("pageerror", lambda exc: self.problems.append(f"JavaScript error: {exc}"))
        page.on("console", self._console)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _failed(self, request) -> None:
        # A read still in flight when the test moves to another page is cancelled by the browser (ERR_ABORTED):
        # that is leaving, not failing. Anything else (refused, reset, empty answer) is a failure.
        if request.failure == "net::ERR_ABORTED" and request.resource_type in ("fetch", "xhr"):
            return
        self.problems.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def _console(self, message) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        if response.status < 400:
            return
        path = response.url.removeprefix(self.base_url)
        if any(response.status == status and part in path for status, part in self._allowed):
            return
        self.problems.append(f"HTTP {response.status}: {response.request.method} {path}")

    def allow(self, status: int, path_part: str = "") -> None:
        """Declare an error answer the test provokes (a wrong password, bad input)."""
        self._allowed.append((status, path_part))

    def open(self, path: str):
        """Go to a console page and wait until its script says its data is on screen (<body data-ready>)."""
        self.page.goto(path)
        self.wait_ready()
        return self.page

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body[data-ready='1']", state="attached")

    def sign_in(self, audience: str, username: str, password: str = CONSOLE_PASSWORD, then: str | None = None):
        """Sign in through the sign-in page as a person does; lands on ``then`` (or the audience's home)."""
        target = f"/console/sign-in?audience={audience}" + (f"&next={then}" if then else "")
        self.open(target)
        self.page.get_by_label("用户名").fill(username)
        self.page.get_by_label("密码").fill(password)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="登录").click()
        self.wait_ready()
        return self.page

    def check(self) -> None:
        assert self.problems == [], "the page went wrong:\n" + "\n".join(self.problems)


@pytest.fixture
def console(page, app_url: str):
    """A watched console tab (:class:`Console`): the test fails on any problem the page had."""
    watched = Console(page, app_url)
    yield watched
    watched.check()


@pytest.fixture
def ops_account(rt):
    """Make an ops user with a role; returns its username (password CONSOLE_PASSWORD)."""
    from mallapp.domain import ops

    def make(role: str = "admin", username: str | None = None) -> str:
        username = username or f"ops-{role}"
        with rt.sessions.begin() as session:
            ops.create_user(session, username, role, CONSOLE_PASSWORD, rt.now())
        return username

    return make


@pytest.fixture
def staff_account(rt):
    """Make a merchant staff member (a new merchant unless ``merchant_id``); returns (username, merchant id)."""
    from mallapp.domain import merchants, staff

    def make(role: str = "manager", username: str | None = None, merchant_id: int | None = None,
             merchant_name: str = "Noodle House") -> tuple[str, int]:
        username = username or f"{role}-1"
        with rt.sessions.begin() as session:
            if merchant_id is None:
                merchant_id = merchants.create(session, merchant_name, rt.now())[0].id
            staff.create(session, merchant_id, username, role, CONSOLE_PASSWORD, rt.now())
        return username, merchant_id

    return make


@pytest.fixture
def console_at(browser):
    """Open watched console tabs on any base URL (the demo's, say): ``console_at(base_url) -> Console``."""
    opened: list[tuple[Console, object]] = []

    def open_at(base_url: str) -> Console:
        context = browser.new_context(base_url=base_url)
        context.set_default_timeout(20_000)
        watched = Console(context.new_page(), base_url)
        opened.append((watched, context))
        return watched

    yield open_at
    for _, context in opened:
        context.close()
    for watched, _ in opened:
        watched.check()
