"""The interactive API page (/api/v1/docs) as a person sees it in a real browser.

Swagger UI 4 could not read our OpenAPI 3.1 document and showed "Unable to render this definition"
instead of the operations; these tests open the page in Chromium and use it.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

# Pages, not the database: SQLite alone (the shared fixture would run each on PostgreSQL too).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _open_docs(page):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui")).to_be_visible()
    return errors


def _ping(page):
    """The GET /api/v1/ping operation block."""
    path = page.locator('.opblock-summary-path[data-path="/api/v1/ping"]')
    return page.locator(".opblock.opblock-get").filter(has=path)


def test_docs_page_renders_the_operations(page, app_url):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    errors = _open_docs(page)
    expect(_ping(page)).to_be_visible()
    expect(_ping(page)).to_contain_text("A bare JSON answer")
    expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    assert errors == []
    # Every file the page needs comes from the app itself: no CDN.
    assert requested and all(url.startswith(app_url + "/") for url in requested), requested


def test_try_it_out_calls_the_live_api(page):
    _open_docs(page)
    ping = _ping(page)
    ping.locator(".opblock-summary").click()
    ping.get_by_role("button", name="Try it out").click()
    ping.get_by_role("button", name="Execute").click()

    live = ping.locator(".live-responses-table tr.response")
    expect(live.locator(".response-col_status")).to_have_text("200")
    body = live.locator(".response-col_description .microlight").first
    expect(body).to_contain_text(re.compile(r'"ok":\s*true'))
    assert json.loads(body.inner_text()) == {"ok": True}
