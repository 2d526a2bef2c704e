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
