"""The operations console's people pages in a real browser, as the mall's staff use them: the desk adjusts a
member's points, an admin reviews deals and onboards a merchant and an ops user, marketing builds and launches a
campaign and reads its result, and a viewer is kept out of the admin pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import drain_sends, reports_world
from playwright.sync_api import expect
from sqlalchemy import select

from mallapp.domain import members, venue_admin
from mallapp.domain.campaigns.models import Assignment, Campaign
from mallapp.domain.deals import Deal
from mallapp.domain.ops import OpsUser
from mallapp.domain.points import PointsEntry

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

OPS = "/api/v1/ops"


def test_the_desk_finds_a_member_by_the_last_four_digits_and_adjusts_their_points(console, ops_account, rt):
    with rt.sessions.begin() as s:
        member, _ = members.sign_in(s, openid="o-li", unionid=None, now=rt.now())
        members.set_phone(s, member, country_code="86", pure_number="13912348000")
        member.nickname = "李女士"
        member_id = member.id
    page = console.sign_in("ops", ops_account("desk"), then="/console/ops/members")
    page.get_by_label("手机号（完整或后四位）").fill("8000")
    page.get_by_role("button", name="搜索").click()
    hit = page.get_by_test_id("hits").get_by_role("link", name="李女士")
    expect(hit).to_be_visible()
    expect(page.get_by_test_id("hits")).to_contain_text("13912348000")  # the desk sees whole phones
    with page.expect_navigation():
        hit.click()
    console.wait_ready()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"李女士（会员编号 {member_id}）")

    page.get_by_label("积分（正数为增加，负数为扣减）").fill("500")
    page.get_by_label("原因（会员可在积分明细中看到）").fill("停车系统故障补偿")
    page.get_by_role("button", name="确认调整").click()
    expect(page.get_by_test_id("balance")).to_have_text("500")
    expect(page.get_by_test_id("ledger")).to_contain_text("人工调整")

    # Taking more than the member has: the API's refusal appears next to the points, and nothing moves.
    console.allow(422, "/points-adjustments")
    page.get_by_label("积分（正数为增加，负数为扣减）").fill("-800")
    page.get_by_label("原因（会员可在积分明细中看到）").fill("误发积分扣回")
    page.get_by_role("button", name="确认调整").click()
    expect(page.locator("[data-error-for=points]")).not_to_be_empty()
    expect(page.get_by_label("积分（正数为增加，负数为扣减）")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("balance")).to_have_text("500")

    with rt.sessions.begin() as s:
        ledger = [(e.delta, e.balance_after, e.reason, e.note) for e in s.scalars(
            select(PointsEntry).where(PointsEntry.member_id == member_id).order_by(PointsEntry.id))]
    assert [entry[:3] for entry in ledger] == [(500, 500, "adjustment")]  # the refused debit left no line


def test_the_desk_hands_over_a_gift_by_its_pick_up_code(console, ops_account, members_api, client):
    member = members_api.sign_in(openid="o-gift")
    desk = ops_account("desk")
    signed_in = client.post(f"{OPS}/auth", json={"username": desk, "password": "console passphrase 16"}).get_json()
    bearer = {"Authorization": f"Bearer {signed_in['token']}"}
    member_id = client.get("/api/v1/me", headers=member["headers"]).get_json()["id"]
    credited = client.post(f"{OPS}/members/{member_id}/points-adjustments", headers=bearer,
                           json={"points": 200, "reason": "开业礼", "idempotency_key": "gift-setup"})
    assert credited.status_code == 201, credited.get_json()
    redeemed = client.post("/api/v1/me/points/redemptions", json={"gift_code": "coffee"},
                           headers={**member["headers"], "Idempotency-Key": "gift-1"})
    code = redeemed.get_json()["pickup_code"]

    page = console.sign_in("ops", desk, then="/console/ops/members")
    console.allow(404, "/api/v1/ops/gifts/")
    page.get_by_label("取货码").fill("NOSUCHCODE")
    page.get_by_role("button", name="查询").click()
    expect(page.locator("[data-error-for=pickup_code]")).not_to_be_empty()
    page.get_by_label("取货码").fill(code)
    page.get_by_role("button", name="查询").click()
    expect(page.get_by_test_id("gift")).to_contain_text("Coffee voucher")
    expect(page.get_by_test_id("gift")).to_contain_text("待领取")
    page.get_by_role("button", name="确认发放").click()
    expect(page.get_by_test_id("gift")).to_contain_text(f"已由 {desk} 于")
    assert client.get(f"{OPS}/gifts/{code}", headers=bearer).get_json()["handed_over"] is True


def _pending_deal(client, merchant, store: int, clock, title: str) -> int:
    body = {"title": title, "text": "周末限定", "store_id": store, "quota": 100, "per_member_limit": 1,
            "starts_at": (clock.now + timedelta(days=1)).isoformat(), "ends_at": (clock.now + timedelta(days=8)).isoformat(),
            "benefit": {"kind": "amount_off", "amount_fen": 1000}, "min_spend_fen": 5000}
    created = client.post("/api/v1/merchant/deals", json=body, headers=merchant["headers"])
    assert created.status_code == 201, created.get_json()
    deal_id = created.get_json()["id"]
    assert client.post(f"/api/v1/merchant/deals/{deal_id}/submit",
                       headers=merchant["headers"]).get_json()["status"] == "pending_approval"
    return deal_id


def test_an_admin_approves_one_pending_deal_and_rejects_another_with_a_reason(console, ops_account, client, merchant,
                                                                                 ops_admin, rt, clock):
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="星光咖啡", floor=1, x=0, y=0, merchant_id=merchant["id"], now=rt.now()).id
    good = _pending_deal(client, merchant, store, clock, "拿铁立减 10 元")
    bad = _pending_deal(client, merchant, store, clock, "全场一折")
    page = console.sign_in("ops", ops_account("admin", "admin-2"), then="/console/ops/deals")
    good_card = page.get_by_role("article", name="拿铁立减 10 元")
    expect(good_card).to_contain_text("立减 ¥10.00")
    expect(good_card).to_contain_text("满 ¥50.00 可用")
    expect(good_card).to_contain_text("星光咖啡")
    good_card.get_by_role("button", name="通过").click()
    expect(good_card).to_have_count(0)  # it left the queue
    live = client.get(f"{OPS}/deals?status=live", headers=ops_admin["headers"]).get_json()["deals"]
    assert [d["id"] for d in live] == [good]

    bad_card = page.get_by_role("article", name="全场一折")
    console.allow(400, f"/deals/{bad}/reject")
    bad_card.get_by_role("button", name="驳回").click()
    expect(bad_card.locator("[data-error-for=reason]")).not_to_be_empty()
    bad_card.get_by_label("驳回原因（商户可见）").fill("折扣力度与门店报备不符")
    bad_card.get_by_role("button", name="驳回").click()
    expect(bad_card).to_have_count(0)
    with rt.sessions.begin() as s:
        deal = s.get(Deal, bad)
        assert (deal.status, deal.rejection_reason) == ("rejected", "折扣力度与门店报备不符")


def test_marketing_builds_a_campaign_with_a_live_count_launches_it_and_reads_its_result(console, ops_account, client,
                                                                                        ops_marketing, rt):
    ids = reports_world(rt)
    page = console.sign_in("ops", ops_account("marketing", "marketing-2"), then="/console/ops/campaigns")
    with page.expect_navigation():
        page.get_by_role("link", name="新建活动").click()
    console.wait_ready()
    everyone = client.post(f"{OPS}/campaigns/audience-count", json={}, headers=ops_marketing["headers"]).get_json()
    expect(page.get_by_test_id("audience-count")).to_have_text(str(everyone["members"]))
    page.get_by_role("group", name="当前 T 等级").get_by_label("T1（常来且消费高）").check()
    expect(page.get_by_test_id("audience-count")).to_have_text("1")  # only member a is T1 this month

    # Created with nothing typed: the API's problems appear next to the name and the steps.
    console.allow(400, "/api/v1/ops/campaigns")
    page.get_by_role("button", name="创建草稿").click()
    expect(page.locator("[data-error-for=name]")).not_to_be_empty()
    expect(page.locator("[data-error-for=steps]")).not_to_be_empty()
    page.get_by_label("活动名称").fill("T1 会员春季回馈")
    page.get_by_label("标题（中文）").fill("春季回馈：到店领好礼")
    page.get_by_label("对照组比例（%）").fill("0")
    with page.expect_navigation():
        page.get_by_role("button", name="创建草稿").click()
    console.wait_ready()
    expect(page.get_by_test_id("status")).to_have_text("草稿")
    page.get_by_role("button", name="发布活动").click()
    expect(page.get_by_test_id("status")).to_have_text("进行中")

    drain_sends(rt)  # the sends workers draw the audience and deliver
    console.open(page.url)
    expect(page.locator("[data-arm=treated] td").nth(1)).to_have_text("1")
    expect(page.locator("[data-arm=control] td").nth(1)).to_have_text("0")
    expect(page.get_by_test_id("conversion-chart").locator("canvas")).to_have_count(1)
    # The member's record at the desk says they were in it, treated.
    console.open(f"/console/ops/members/{ids['a']}")
    expect(page.get_by_test_id("record-campaigns")).to_contain_text("T1 会员春季回馈")
    expect(page.get_by_test_id("record-campaigns")).to_contain_text("触达组")
    with rt.sessions.begin() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert (campaign.name, campaign.status, campaign.audience["t_tiers"]) == ("T1 会员春季回馈", "running", ["T1"])
        assert s.scalars(select(Assignment.member_id)).all() == [ids["a"]]


def test_an_admin_creates_a_merchant_whose_key_is_shown_once_and_an_ops_user(console, ops_account, client, rt):
    page = console.sign_in("ops", ops_account("admin", "admin-3"), then="/console/ops/merchants")
    page.get_by_label("商户名称").fill("茶语小馆")
    page.get_by_role("button", name="创建商户").click()
    key = page.get_by_test_id("secret-key")
    expect(key).to_contain_text("mk_")
    api_key = key.inner_text().strip()
    assert client.get("/api/v1/merchant/deals", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    row = page.get_by_test_id("merchants").get_by_role("row").filter(has_text="茶语小馆")
    expect(row).to_contain_text(api_key[:8])
    page.get_by_role("button", name="我已妥善保存").click()
    expect(page.get_by_test_id("secret")).to_be_hidden()
    console.open("/console/ops/merchants")
    expect(page.locator("body")).not_to_contain_text(api_key)  # shown once, never again

    console.open("/console/ops/users")
    new_user = page.locator("form#create")
    new_user.get_by_label("用户名").fill("desk-wang")
    new_user.get_by_label("角色").select_option(label="服务台")
    page.get_by_role("button", name="创建账号").click()
    password = page.get_by_test_id("secret-password")
    expect(password).not_to_be_empty()
    signed_in = client.post(f"{OPS}/auth", json={"username": "desk-wang", "password": password.inner_text().strip()})
    assert signed_in.status_code == 200 and signed_in.get_json()["role"] == "desk"
    expect(page.get_by_test_id("users").get_by_role("row").filter(has_text="desk-wang")).to_contain_text("服务台")

    # The last admin cannot demote themselves: the API's refusal is said, and the role stays.
    console.allow(409, "/api/v1/ops/users/")
    page.get_by_label("admin-3 的角色").select_option("viewer")
    expect(page.locator("#toast")).to_contain_text("最后一位启用中的管理员")
    with rt.sessions.begin() as s:
        assert s.scalars(select(OpsUser.role).where(OpsUser.username == "admin-3")).one() == "admin"


def test_a_viewer_sees_no_admin_pages_and_is_refused_them(console, ops_account, page, rt):
    reports_world(rt)
    console.sign_in("ops", ops_account("viewer"), then="/console/ops/members")
    nav = page.get_by_role("navigation", name="导航")
    expect(nav.get_by_role("link", name="会员服务台")).to_be_visible()
    expect(nav.get_by_role("link", name="营销活动")).to_be_visible()
    for admin_only in ("优惠审核", "商户管理", "运营账号"):
        expect(nav.get_by_role("link", name=admin_only)).to_have_count(0)
    page.get_by_label("手机号（完整或后四位）").fill("0001")
    page.get_by_role("button", name="搜索").click()
    expect(page.get_by_test_id("hits")).to_contain_text("*******0001")  # a viewer sees phones masked
    expect(page.get_by_test_id("hits")).not_to_contain_text("+8613800000001")
    for path in ("/console/ops/deals", "/console/ops/merchants", "/console/ops/users", "/console/ops/campaigns/new"):
        console.allow(403, path)
        answer = page.goto(path)
        assert answer.status == 403, path
        expect(page.get_by_test_id("forbidden")).to_be_visible()
    # The same pages in English.
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    console.open("/console/ops/members")
    expect(page.get_by_role("heading", level=1)).to_have_text("Member desk")
    expect(page.get_by_role("navigation", name="Navigation").get_by_role("link", name="Campaigns")).to_be_visible()
