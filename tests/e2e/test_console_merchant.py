"""The merchant manager's console in a real browser: a deal written with the pickers and submitted, bad input next
to its field, a deal's funnel, a password reset shown once, the day's redemptions, footfall, the parking quota, and
a cashier kept out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import build_shop, build_venue, deal_funnel, live_deal, zone_visits
from playwright.sync_api import expect
from sqlalchemy import select

from mallapp.domain.deals import Deal
from mallapp.domain.parking import quota

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

OLD_PASSWORD = "console passphrase 16"  # the staff_account fixture's


@pytest.fixture
def shop(rt):
    """Starlight Coffee (a store zone, an item zone, a sale item) and Harbour Books, one merchant's."""
    return build_shop(rt, build_venue(rt))


def _deals(rt, merchant_id):
    with rt.sessions.begin() as s:
        return [(d.title, d.status, d.store_id, d.zone_ids, d.store_ids, d.sale_item_ids, d.benefit, d.starts_at,
                 d.ends_at, d.min_spend_fen) for d in s.scalars(select(Deal).where(Deal.merchant_id == merchant_id))]


def test_a_manager_writes_a_deal_with_the_pickers_and_submits_it(console, staff_account, shop, rt):
    username, _ = staff_account("manager", merchant_id=shop.merchant)
    page = console.sign_in("staff", username)
    with page.expect_navigation():
        page.get_by_test_id("to-merchant").click()
    console.wait_ready()
    with page.expect_navigation():
        page.get_by_role("link", name="新建优惠活动").click()
    console.wait_ready()
    page.get_by_label("活动名称").fill("冬季拼配立减 8 元")
    page.get_by_label("活动说明").fill("本周末到店购买冬季拼配咖啡豆立减")
    page.get_by_label("核销门店").select_option(label="Starlight Coffee (L1-02)")
    page.get_by_label("优惠类型").select_option(label="立减金额")
    page.get_by_label("金额（元）").fill("8.50")
    page.get_by_label("最低消费（元，可不填）").fill("50")
    page.get_by_label("开始日期").fill("2026-03-12")
    page.get_by_label("结束日期（含当天）").fill("2026-03-15")
    page.get_by_label("发放总量（张）").fill("200")
    page.get_by_role("group", name="进入这些区域时推送").get_by_label("Starlight Coffee · Winter blend display").check()
    page.get_by_role("group", name="靠近这些门店时推送").get_by_label("Starlight Coffee", exact=True).check()
    page.get_by_role("group", name="靠近这些促销商品时推送").get_by_label("Starlight Coffee · Winter blend").check()
    with page.expect_navigation():
        page.get_by_role("button", name="保存草稿").click()
    console.wait_ready()
    expect(page.get_by_test_id("deal-status")).to_contain_text("草稿")
    page.get_by_role("button", name="提交审核").click()
    expect(page.get_by_test_id("deal-status")).to_contain_text("待审核")
    expect(page.get_by_role("button", name="提交审核")).to_be_hidden()

    (title, status, store, zones, stores, items, benefit, starts, ends, min_spend), = _deals(rt, shop.merchant)
    assert (title, status, store) == ("冬季拼配立减 8 元", "pending_approval", shop.store)
    assert (zones, stores, items) == ([shop.item_zone], [shop.store], [shop.item])
    assert benefit == {"kind": "amount_off", "amount_fen": 850} and min_spend == 5000
    # The mall's days: from 00:00 on the 12th to the end of the 15th, Shanghai time.
    assert starts == datetime(2026, 3, 11, 16, tzinfo=UTC) and ends == datetime(2026, 3, 15, 16, tzinfo=UTC)
    # The list shows it pending too.
    console.open("/console/merchant/")
    expect(page.get_by_test_id("deals").get_by_role("row", name="冬季拼配立减 8 元")).to_contain_text("待审核")


def test_bad_input_is_shown_next_to_its_field(console, staff_account, shop, rt):
    username, _ = staff_account("manager", merchant_id=shop.merchant)
    console.sign_in("staff", username)
    page = console.open("/console/merchant/deals/new")
    page.get_by_label("活动名称").fill("Bad deal")
    page.get_by_label("金额（元）").fill("-5")
    page.get_by_role("button", name="保存草稿").click()
    expect(page.locator("[data-error-for=benefit]")).to_have_text("请输入有效金额，例如 12.50")
    # Last day before the first: the API's own check, beside the end date.
    console.allow(400, "/api/v1/merchant/deals")
    page.get_by_label("金额（元）").fill("5")
    page.get_by_label("开始日期").fill("2026-03-20")
    page.get_by_label("结束日期（含当天）").fill("2026-03-18")
    page.get_by_role("button", name="保存草稿").click()
    expect(page.locator("[data-error-for=ends_at]")).not_to_be_empty()
    expect(page.locator("[data-error-for=benefit]")).to_be_empty()
    # An empty title is named beside the title.
    page.get_by_label("活动名称").fill("")
    page.get_by_label("结束日期（含当天）").fill("2026-03-22")
    page.get_by_role("button", name="保存草稿").click()
    expect(page.locator("[data-error-for=title]")).not_to_be_empty()
    assert _deals(rt, shop.merchant) == []


def test_a_deals_funnel_shows_its_pushes_claims_and_redemptions(console, staff_account, shop, rt):
    deal_id = deal_funnel(rt, shop, pushes=7, claims=4, redemptions=3, title="拿铁立减 5 元")
    username, _ = staff_account("manager", merchant_id=shop.merchant)
    console.sign_in("staff", username)
    page = console.open("/console/merchant/")
    row = page.get_by_test_id("deals").get_by_role("row", name="拿铁立减 5 元")
    expect(row).to_contain_text("进行中")
    expect(row.locator("td.num")).to_have_text(["7", "4", "3", "75.0%"])
    with page.expect_navigation():
        row.get_by_role("link", name="拿铁立减 5 元").click()
    console.wait_ready()
    assert page.url.endswith(f"/console/merchant/deals/{deal_id}")
    expect(page.get_by_test_id("pushes")).to_have_text("7")
    expect(page.get_by_test_id("claims")).to_have_text("4")
    expect(page.get_by_test_id("redemptions")).to_have_text("3")
    expect(page.locator("#funnel-chart canvas")).to_have_count(1)
    # A live deal may be paused and resumed from its page.
    page.get_by_role("button", name="暂停").click()
    expect(page.get_by_test_id("deal-status")).to_have_text("已暂停")
    page.get_by_role("button", name="恢复").click()
    expect(page.get_by_test_id("deal-status")).to_have_text("进行中")
    assert _deals(rt, shop.merchant)[0][1] == "live"
    # The day's redemptions: three coupons of ¥5.00 off.
    console.open("/console/merchant/redemptions")
    expect(page.get_by_test_id("total-count")).to_have_text("3")
    expect(page.get_by_test_id("total-discount")).to_have_text("¥15.00")
    expect(page.get_by_test_id("redemptions").locator("tbody tr")).to_have_count(3)
    expect(page.get_by_test_id("redemptions").locator("tbody tr").first).to_contain_text("立减 ¥5.00")


def test_a_password_reset_is_shown_once_and_the_old_password_stops_working(console, staff_account, shop, app_url):
    manager, _ = staff_account("manager", merchant_id=shop.merchant)
    cashier, _ = staff_account("cashier", merchant_id=shop.merchant)
    page = console.sign_in("staff", manager)
    console.open("/console/merchant/staff")
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.get_by_test_id("staff").locator(f"tr[data-username='{cashier}']")
    row.get_by_role("button", name="重置密码").click()
    secret = page.get_by_test_id("new-password")
    expect(secret).not_to_be_empty()
    new_password = secret.text_content()
    page.get_by_role("button", name="我已记下").click()
    expect(page.get_by_test_id("new-password-card")).to_be_hidden()
    assert page.get_by_test_id("new-password").text_content() == ""  # shown once, then gone from the page
    console.allow(401, "/api/v1/merchant/auth")
    old = page.request.post(app_url + "/api/v1/merchant/auth", data={"username": cashier, "password": OLD_PASSWORD})
    assert old.status == 401
    new = page.request.post(app_url + "/api/v1/merchant/auth", data={"username": cashier, "password": new_password})
    assert new.status == 200


def test_footfall_and_the_parking_quota(console, staff_account, shop, rt):
    shanghai = datetime.fromisoformat
    zone_visits(rt, shop.store_zone, [("o-a", shanghai("2026-03-10T09:10:00+08:00"), 600),
                                      ("o-b", shanghai("2026-03-09T15:00:00+08:00"), 1200)])
    username, _ = staff_account("manager", merchant_id=shop.merchant)
    page = console.sign_in("staff", username)
    console.open("/console/merchant/footfall")
    expect(page.get_by_test_id("visits")).to_have_text("2")
    expect(page.get_by_test_id("members")).to_have_text("2")
    expect(page.get_by_test_id("dwell")).to_have_text("15 分钟")
    page.get_by_label("开始日期").fill("2026-03-10")
    page.get_by_role("button", name="查询").click()
    expect(page.get_by_test_id("visits")).to_have_text("1")
    expect(page.locator("#granularity")).to_have_text("按小时")

    console.open("/console/merchant/parking")
    expect(page.get_by_test_id("balance-hours")).to_have_text("0 小时")
    page.get_by_label("额度类型").select_option("fen")
    page.get_by_label("购买金额（元）").fill("abc")
    page.get_by_role("button", name="购买额度").click()
    expect(page.locator("[data-error-for=amount]")).not_to_be_empty()
    page.get_by_label("购买金额（元）").fill("300")
    page.get_by_role("button", name="购买额度").click()
    expect(page.get_by_test_id("balance-fen")).to_have_text("¥300.00")
    expect(page.get_by_test_id("entries")).to_contain_text("购买")
    with rt.sessions.begin() as s:
        assert quota.balance(s, shop.merchant).fen == 30000


def test_a_cashier_gets_the_403_page(console, staff_account):
    username, _ = staff_account("cashier")
    page = console.sign_in("staff", username)
    console.allow(403, "/console/merchant/")
    response = page.goto("/console/merchant/")
    assert response.status == 403
    expect(page.get_by_test_id("forbidden")).to_be_visible()
    expect(page.get_by_role("link", name="优惠活动")).to_have_count(0)


def test_in_english_a_rejected_deal_shows_its_reason_and_may_be_submitted_again(console, staff_account, shop, rt):
    deal_id = live_deal(rt, shop, title="Flat white 5 yuan off")
    with rt.sessions.begin() as s:
        rejected = s.get_one(Deal, deal_id)
        rejected.status, rejected.rejection_reason = "rejected", "The picture is missing"
    username, _ = staff_account("manager", merchant_id=shop.merchant)
    page = console.sign_in("staff", username)
    console.open("/console/lang/en?next=/console/merchant/")
    row = page.get_by_test_id("deals").get_by_role("row", name="Flat white 5 yuan off")
    expect(row).to_contain_text("Rejected: The picture is missing")
    with page.expect_navigation():
        row.get_by_role("link", name="Flat white 5 yuan off").click()
    console.wait_ready()
    expect(page.get_by_test_id("rejection")).to_have_text("Rejected: The picture is missing")
    expect(page.get_by_label("Amount (yuan)")).to_have_value("5.00")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_test_id("deal-status")).to_have_text("Pending review")
    assert _deals(rt, shop.merchant)[0][1] == "pending_approval"
