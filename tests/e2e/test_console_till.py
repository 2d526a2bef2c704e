"""The till in a real browser: a cashier posts a purchase for a member, redeems a coupon, refunds a receipt."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from factories import live_deal
from playwright.sync_api import expect
from sqlalchemy import func, select

from mallapp.domain import members, venue_admin
from mallapp.domain.coupons import Coupon
from mallapp.domain.purchases import Purchase

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

TILL = "/console/till/"
PURCHASES = "/api/v1/merchant/purchases"


@pytest.fixture
def shop(rt, staff_account, member):
    """A cashier of Noodle House (one store) and the signed-in member, nicknamed Ada, with a phone on file."""
    username, merchant_id = staff_account("cashier")
    with rt.sessions.begin() as session:
        store = venue_admin.create_store(session, name="Noodle House", unit="L2-07", floor=2, x=0, y=0,
                                         merchant_id=merchant_id, now=rt.now()).id
        row = members.get(session, member["member"]["id"])
        row.nickname = "Ada"
        members.set_phone(session, row, country_code="86", pure_number="13800138000")
    return SimpleNamespace(username=username, merchant=merchant_id, store=store, member_id=member["member"]["id"])


def _card(client, member) -> str:
    return client.get("/api/v1/me/card", headers=member["headers"]).get_json()["code"]


def _purchases(rt, merchant_id: int) -> list[Purchase]:
    with rt.sessions.begin() as session:
        rows = session.scalars(select(Purchase).where(Purchase.merchant_id == merchant_id)).all()
        session.expunge_all()
        return list(rows)


def _balance(client, member) -> int:
    return client.get("/api/v1/me/points", headers=member["headers"]).get_json()["balance"]


def test_a_cashier_posts_a_typed_member_code_and_sees_points_and_nickname(console, shop, client, member, rt):
    page = console.sign_in("staff", shop.username, then=TILL)
    assert page.url.endswith(TILL)
    expect(page.get_by_label("门店")).to_have_value(str(shop.store))
    page.get_by_label("会员码").fill(_card(client, member))
    page.get_by_role("button", name="查询会员").click()
    expect(page.get_by_test_id("member-name")).to_have_text("Ada")
    expect(page.locator("#member-detail")).to_contain_text("*******8000")
    page.get_by_label("消费金额（元）").fill("123.40")
    # A double tap: the button is disabled while the first is answered, and the receipt number is the same.
    page.get_by_role("button", name="确认并积分").dblclick()
    expect(page.get_by_test_id("points-earned")).to_have_text("本次积分 +12")
    expect(page.get_by_test_id("purchase-member")).to_contain_text("Ada")
    expect(page.get_by_test_id("purchase-member")).to_contain_text("¥123.40")
    expect(page.locator("#purchase-result")).not_to_contain_text("null")
    posted, = _purchases(rt, shop.merchant)
    assert (posted.amount_fen, posted.points_earned, posted.member_id) == (12340, 12, shop.member_id)
    assert posted.occurred_at == rt.now()  # the server's clock, not the tablet's
    assert _balance(client, member) == 12
    # Today's receipts list it at once.
    row = page.locator(f"tr[data-receipt='{posted.receipt_no}']")
    expect(row).to_contain_text("¥123.40")
    expect(row).to_contain_text("Ada")


def test_the_store_chosen_is_remembered_on_this_tablet(console, shop, rt):
    with rt.sessions.begin() as session:
        second = venue_admin.create_store(session, name="Noodle House Express", unit="B1-02", floor=-1, x=5, y=5,
                                          merchant_id=shop.merchant, now=rt.now()).id
    page = console.sign_in("staff", shop.username, then=TILL)
    page.get_by_label("门店").select_option(label="Noodle House Express (B1-02)")
    console.open(TILL)
    expect(page.get_by_label("门店")).to_have_value(str(second))
    assert page.evaluate("localStorage.getItem('mall.till.store')") == str(second)


def test_a_retry_after_a_lost_answer_posts_once(console, shop, client, member, rt, page):
    console.sign_in("staff", shop.username, then=TILL)
    page.get_by_label("会员码").fill(_card(client, member))
    page.get_by_role("button", name="查询会员").click()
    expect(page.get_by_test_id("member-name")).to_have_text("Ada")
    # The first answer is lost on the way back (the purchase was recorded); the cashier taps again.
    console.allow(503, PURCHASES)
    lost = []

    def lose_first(route):
        answer = route.fetch()
        if not lost:
            lost.append(answer.status)
            route.fulfill(status=503, json={"error": {"code": "service.unavailable", "message": "try again"}})
        else:
            route.fulfill(response=answer)

    page.route("**" + PURCHASES, lose_first)
    page.get_by_label("消费金额（元）").fill("88")
    page.get_by_role("button", name="确认并积分").click()
    expect(page.locator("#purchase-form [data-error-for=_form]")).not_to_be_empty()
    page.get_by_role("button", name="确认并积分").click()
    expect(page.get_by_test_id("points-earned")).to_have_text("本次积分 +8")
    assert lost == [201]
    assert [p.amount_fen for p in _purchases(rt, shop.merchant)] == [8800]
    assert _balance(client, member) == 8


def test_a_bad_amount_is_shown_next_to_the_field_and_posts_nothing(console, shop, client, member, rt):
    page = console.sign_in("staff", shop.username, then=TILL)
    page.get_by_label("会员码").fill(_card(client, member))
    page.get_by_role("button", name="查询会员").click()
    expect(page.get_by_test_id("member-name")).to_have_text("Ada")
    for typed in ("12.345", "-1", "abc", "0"):
        page.get_by_label("消费金额（元）").fill(typed)
        page.get_by_role("button", name="确认并积分").click()
        expect(page.locator("#purchase-form [data-error-for=amount]")).to_contain_text("123.40")
        expect(page.get_by_label("消费金额（元）")).to_have_attribute("aria-invalid", "true")
    assert _purchases(rt, shop.merchant) == []


def test_a_coupon_is_redeemed_with_its_benefit_and_a_used_or_expired_one_is_refused(console, shop, client, member,
                                                                                    rt, clock):
    owner = SimpleNamespace(merchant=shop.merchant, store=shop.store)
    deal = live_deal(rt, owner, min_spend_fen=3000)
    short = live_deal(rt, owner, title="Lunch noodles, a free drink", ends_at=rt.now() + timedelta(hours=1),
                      benefit={"kind": "gift", "gift": "iced tea"})
    code = client.post(f"/api/v1/deals/{deal}/claim", headers=member["headers"]).get_json()["code"]
    soon = client.post(f"/api/v1/deals/{short}/claim", headers=member["headers"]).get_json()["code"]
    page = console.sign_in("staff", shop.username, then=TILL)
    # Today's promotions say what to honour.
    expect(page.locator("#deals")).to_contain_text("立减 ¥5.00")
    expect(page.locator("#deals")).to_contain_text("满 ¥30.00 可用")
    console.allow(422, "/api/v1/merchant/coupons/redeem")
    console.allow(409, "/api/v1/merchant/coupons/redeem")
    coupon = page.locator("#coupon-form")
    coupon.get_by_label("券码").fill(code)
    coupon.get_by_label("本单消费金额").fill("20")
    coupon.get_by_role("button", name="核销").click()
    expect(coupon.locator("[data-error-for=amount]")).not_to_be_empty()  # below the minimum spend
    coupon.get_by_label("本单消费金额").fill("45.50")
    coupon.get_by_role("button", name="核销").click()
    expect(page.get_by_test_id("coupon-benefit")).to_have_text("立减 ¥5.00")
    expect(page.locator("#coupon-result")).to_contain_text("顾客应付 ¥40.50")
    expect(page.locator("#coupon-result")).not_to_contain_text("null")
    with rt.sessions.begin() as session:
        redeemed = session.scalar(select(Coupon).where(Coupon.code == code))
        assert (redeemed.redeemed_at_store, redeemed.discount_fen) == (shop.store, 500)
    # The same code again: already used, said next to the code.
    coupon.get_by_label("券码").fill(code)
    coupon.get_by_role("button", name="核销").click()
    expect(coupon.locator("[data-error-for=code]")).not_to_be_empty()
    expect(coupon.get_by_label("券码")).to_have_attribute("aria-invalid", "true")
    # A coupon whose deal has ended: expired, next to the code.
    clock.advance(hours=2)
    coupon.get_by_label("券码").fill(soon)
    coupon.get_by_label("本单消费金额").fill("")
    coupon.get_by_role("button", name="核销").click()
    expect(coupon.locator("[data-error-for=code]")).not_to_be_empty()
    with rt.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.redeemed_at.is_not(None))) == 1


def test_a_member_whose_phone_is_dead_is_found_by_phone_and_earns(console, shop, client, member, rt):
    page = console.sign_in("staff", shop.username, then=TILL)
    console.allow(400, "/api/v1/merchant/members/find-by-phone")
    page.get_by_text("会员手机没电？按手机号查找").click()
    page.get_by_label("会员手机号").fill("8000")  # the last four digits are not enough
    page.get_by_role("button", name="查找").click()
    expect(page.locator("#phone-form [data-error-for=phone]")).to_contain_text("完整的手机号")
    page.get_by_label("会员手机号").fill("138 0013 8000")
    page.get_by_role("button", name="查找").click()
    expect(page.get_by_test_id("member-name")).to_have_text("Ada")
    expect(page.locator("#member-detail")).to_contain_text("*******8000")
    page.get_by_label("消费金额（元）").fill("50")
    page.get_by_role("button", name="确认并积分").click()
    expect(page.get_by_test_id("points-earned")).to_have_text("本次积分 +5")
    assert [p.member_id for p in _purchases(rt, shop.merchant)] == [shop.member_id]


def test_a_receipt_of_today_is_refunded_once_and_shows_refunded(console, shop, client, member, rt):
    page = console.sign_in("staff", shop.username, then=TILL)
    page.get_by_label("会员码").fill(_card(client, member))
    page.get_by_role("button", name="查询会员").click()
    page.get_by_label("消费金额（元）").fill("123.40")
    page.get_by_role("button", name="确认并积分").click()
    expect(page.get_by_test_id("points-earned")).to_have_text("本次积分 +12")
    posted, = _purchases(rt, shop.merchant)
    row = page.locator(f"tr[data-receipt='{posted.receipt_no}']")
    row.get_by_role("button", name="退款").click()
    row.get_by_label("退款金额（元）").fill("23.40")
    row.get_by_role("button", name="确认退款").dblclick()
    expect(row).to_contain_text("已退款 ¥23.40")
    assert _purchases(rt, shop.merchant)[0].refunded_fen == 2340
    # The rest, in full: the receipt is then fully refunded and offers no refund button.
    row.get_by_role("button", name="退款").click()
    expect(row.get_by_label("退款金额（元）")).to_have_value("100.00")
    row.get_by_role("button", name="确认退款").click()
    expect(row).to_contain_text("已全额退款")
    expect(row.get_by_role("button", name="退款")).to_have_count(0)
    assert _purchases(rt, shop.merchant)[0].refunded_fen == 12340
    assert _balance(client, member) == 0


def test_without_a_camera_the_cashier_is_told_and_types_the_code(console, shop, client, member):
    page = console.sign_in("staff", shop.username, then=TILL)
    page.locator("#member-scan").click()
    expect(page.locator("#camera-message")).to_be_visible()
    expect(page.locator("#scanner")).to_be_hidden()
    page.get_by_label("会员码").fill(_card(client, member))
    page.get_by_role("button", name="查询会员").click()
    expect(page.get_by_test_id("member-name")).to_have_text("Ada")


def test_the_till_speaks_english_and_looks_the_typed_code_up_when_posting(console, shop, client, member):
    page = console.sign_in("staff", shop.username, then=TILL)
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    console.wait_ready()
    # The code typed but not looked up: posting looks it up first.
    page.get_by_label("Member code").fill(_card(client, member))
    page.get_by_label("Amount (yuan)").fill("20")
    page.get_by_role("button", name="Post for points").click()
    expect(page.get_by_test_id("points-earned")).to_have_text("Points earned +2")
    expect(page.get_by_test_id("purchase-member")).to_have_text("Ada spent ¥20.00; the points are in their account")


# --- the camera ----------------------------------------------------------------------------------------------

# Chromium's fake camera shows a test pattern, not a QR code. So the test stands in for the reader: either the
# browser's own (BarcodeDetector) or jsQR, wrapped so that the real jsQR still reads every frame and the stand-in
# answers the code the test put in window.__tillTestCode where the real one finds none. The streams the page
# opens are kept, to check that the camera is stopped after the read.
KEEP_STREAMS = """
window.__streams = [];
const realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const stream = await realGetUserMedia(constraints);
  window.__streams.push(stream);
  return stream;
};
"""
READERS = {
    "BarcodeDetector": """
window.BarcodeDetector = class {
  static async getSupportedFormats() { return ["qr_code"]; }
  async detect(video) {
    return video.videoWidth && window.__tillTestCode ? [{rawValue: window.__tillTestCode}] : [];
  }
};
""",
    "jsQR": """
delete window.BarcodeDetector;
window.__jsqrFrames = 0;
let realJsQR = null;
Object.defineProperty(window, "jsQR", {configurable: true, set(value) { realJsQR = value; }, get() {
  return realJsQR && ((data, width, height, options) => {
    window.__jsqrFrames += 1;
    return realJsQR(data, width, height, options) || (window.__tillTestCode ? {data: window.__tillTestCode} : null);
  });
}});
""",
}


@pytest.fixture(params=sorted(READERS))
def camera_console(request, browser, app_url, console):
    """A second Chromium with a fake camera that the page may use without asking, watched like ``console``."""
    camera = browser.browser_type.launch(
        executable_path="/usr/bin/chromium", headless=True,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
              "--use-fake-ui-for-media-stream"])
    try:
        context = camera.new_context(base_url=app_url, permissions=["camera"])
        context.set_default_timeout(15_000)
        context.add_init_script(KEEP_STREAMS + READERS[request.param])
        watched = type(console)(context.new_page(), app_url)
        watched.reader = request.param
        yield watched
        watched.check()
    finally:
        camera.close()


def test_the_camera_reads_the_member_code_and_is_stopped(camera_console, shop, client, member):
    page = camera_console.sign_in("staff", shop.username, then=TILL)
    page.evaluate("code => { window.__tillTestCode = code; }", _card(client, member))
    page.locator("#member-scan").click()
    expect(page.get_by_test_id("member-name")).to_have_text("Ada")
    expect(page.get_by_label("会员码")).to_have_value(page.evaluate("window.__tillTestCode"))
    expect(page.locator("#scanner")).to_be_hidden()
    assert page.evaluate("window.__streams.length") == 1
    assert page.evaluate("window.__streams[0].getTracks().every(t => t.readyState === 'ended')")
    assert page.evaluate("document.getElementById('scanner-video').srcObject") is None
    if camera_console.reader == "jsQR":
        assert page.evaluate("window.__jsqrFrames") >= 1  # the frames went through the real jsQR
