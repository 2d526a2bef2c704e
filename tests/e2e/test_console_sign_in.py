"""Signing in to the consoles in a real browser: the session cookie, the lock-out, CSRF, sign-out, the language."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mallapp.api.core import OPS_COOKIE, STAFF_COOKIE

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]


def test_staff_sign_in_lands_on_their_workspaces_in_chinese(console, staff_account):
    username, _ = staff_account("cashier")
    page = console.sign_in("staff", username)
    assert page.url.endswith("/console/staff/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("to-till")).to_have_text("收银台")
    expect(page.get_by_test_id("to-merchant")).to_have_count(0)  # a cashier has no merchant console
    expect(page.get_by_test_id("who")).to_contain_text("收银员")


def test_the_session_cookie_is_httponly_and_strict(console, staff_account, page):
    username, _ = staff_account("manager")
    console.sign_in("staff", username)
    cookie, = [c for c in page.context.cookies() if c["name"] == STAFF_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find(STAFF_COOKIE) == -1  # the page's script cannot read it


def test_a_page_without_a_session_sends_to_sign_in_and_back(console, staff_account, ops_account):
    username, _ = staff_account("manager")
    page = console.open("/console/staff/")
    assert "/console/sign-in" in page.url and "next=/console/staff/" in page.url
    with page.expect_navigation():
        page.get_by_label("用户名").fill(username)
        page.get_by_label("密码").fill("console passphrase 16")
        page.get_by_role("button", name="登录").click()
    console.wait_ready()
    assert page.url.endswith("/console/staff/")
    # An ops user is not a merchant's staff: the staff pages still want a staff session.
    ops_name = ops_account("admin")
    page.context.clear_cookies()
    console.sign_in("ops", ops_name, then="/console/staff/")
    assert "/console/sign-in" in page.url


def test_a_wrong_password_is_shown_next_to_the_field_then_locks_out(console, staff_account, settings):
    username, _ = staff_account("manager")
    console.allow(401, "/console/session")
    console.allow(429, "/console/session")
    page = console.open("/console/sign-in?audience=staff")
    page.get_by_label("用户名").fill(username)
    for _ in range(settings.auth.sign_in_attempts):
        page.get_by_label("密码").fill("wrong password")
        page.get_by_role("button", name="登录").click()
        expect(page.locator("[data-error-for=password]")).not_to_be_empty()
        expect(page.get_by_role("button", name="登录")).to_be_enabled()
    expect(page.get_by_label("密码")).to_have_attribute("aria-invalid", "true")
    # Now even the right password waits, as the API's own sign-in does.
    page.get_by_label("密码").fill("console passphrase 16")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("[data-error-for=password]")).to_contain_text("秒")
    assert "/console/sign-in" in page.url


def test_an_empty_username_is_named_next_to_its_field(console):
    console.allow(400, "/console/session")
    page = console.open("/console/sign-in?audience=ops")
    page.get_by_label("密码").fill("x")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("[data-error-for=username]")).not_to_be_empty()
    expect(page.locator("[data-error-for=password]")).to_be_empty()


def test_cookie_changes_without_the_csrf_token_are_refused(console, staff_account, page):
    username, _ = staff_account("manager")
    console.sign_in("staff", username)
    console.allow(403, "/api/v1/merchant/staff")
    status = page.evaluate("""async () => (await fetch('/api/v1/merchant/staff', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({username: 'sneaky', role: 'manager'})})).status""")
    assert status == 403
    # The page's own call carries the token and goes through.
    created = page.evaluate("""async () => (await Mall.api('POST', '/api/v1/merchant/staff',
        {username: 'helper-2', role: 'cashier'})).username""")
    assert created == "helper-2"
    # Reading needs no token.
    assert page.evaluate("async () => (await Mall.api('GET', '/api/v1/merchant/staff')).staff.length") == 2


def test_sign_out_revokes_the_session(console, ops_account, staff_account, page, app_url, rt):
    username, _ = staff_account("manager")
    console.sign_in("staff", username)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == STAFF_COOKIE)
    with page.expect_navigation():
        page.get_by_role("button", name="退出登录").click()
    assert "/console/sign-in" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == STAFF_COOKIE]
    # The token itself no longer works anywhere.
    console.allow(401, "/api/v1/merchant/staff")
    answer = page.request.get(app_url + "/api/v1/merchant/staff", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 401
    assert OPS_COOKIE != STAFF_COOKIE


def test_the_language_switch_shows_english_and_stays(console, staff_account):
    username, _ = staff_account("manager")
    page = console.sign_in("staff", username)
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    console.wait_ready()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("to-merchant")).to_have_text("Merchant console")
    console.open("/console/staff/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
