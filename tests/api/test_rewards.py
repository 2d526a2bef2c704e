"""Rewards given unasked: the new-member pack, the birthday gift and the referral, each exactly once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mallapp.domain import members, merchants, points, rewards, venue_admin
from mallapp.domain.deals import Deal
from mallapp.domain.points import PointsEntry
from mallapp.domain.rewards import Referral

# 01:00 on 1 April in Shanghai, still 31 March in UTC: the month differs by zone.
APRIL_IN_SHANGHAI = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)


@pytest.fixture
def house(rt) -> dict[str, Any]:
    """The mall's house merchant and its service desk, where mall-wide pack coupons are redeemed."""
    with rt.sessions.begin() as s:
        merchant, key = merchants.create(s, "Mall Operations", rt.now())
        store = venue_admin.create_store(s, name=rt.settings.new_member_pack.house_store, floor=1, x=0, y=0,
                                         merchant_id=merchant.id, now=rt.now())
        return {"id": merchant.id, "store": store.id, "headers": {"Authorization": f"Bearer {key}"}}


def _wallet(client, member, **query: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/me/coupons", headers=member["headers"], query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["coupons"]


def _balance(client, member) -> int:
    return client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]["balance"]


def _entries(rt, member_id: int, reason: str) -> list[tuple[int, str]]:
    with rt.sessions.begin() as s:
        return [(delta, key) for delta, key in s.execute(
            select(PointsEntry.delta, PointsEntry.idempotency_key)
            .where(PointsEntry.member_id == member_id, PointsEntry.reason == reason).order_by(PointsEntry.id))]


def _member(rt, openid: str, birthday: date | None = None, referred_by: int | None = None) -> int:
    with rt.sessions.begin() as s:
        member = members.sign_in(s, openid=openid, unionid=None, now=rt.now())[0]
        member.birthday, member.referred_by_id = birthday, referred_by
        return member.id


# --- the new-member pack ---------------------------------------------------------------------------

def test_pack_is_in_the_wallet_after_sign_up_valid_for_the_first_month(client, members_api, house, clock, rt):
    member = members_api.sign_in(openid="o-new-1")
    assert member["new_member"] is True
    wallet = _wallet(client, member)
    assert sorted(c["deal"]["title"] for c in wallet) == sorted(c.title for c in rt.settings.new_member_pack.coupons)
    assert len(wallet) == 4 and {c["status"] for c in wallet} == {"active"}
    joined = datetime.fromisoformat(member["member"]["member_since"])
    assert {datetime.fromisoformat(c["expires_at"]) for c in wallet} == {joined + timedelta(days=30)}
    assert {c["deal"]["store_id"] for c in wallet} == {house["store"]}

    clock.advance(days=30, seconds=-1)
    assert len(_wallet(client, member, status="active")) == 4
    clock.advance(seconds=1)
    assert _wallet(client, member, status="active") == []
    assert len(_wallet(client, member, status="expired")) == 4


def test_pack_is_issued_once_however_often_the_member_signs_in_or_it_is_called(client, members_api, house, rt):
    first = members_api.sign_in(openid="o-new-1")
    again = members_api.sign_in(openid="o-new-1")
    assert again["new_member"] is False
    with rt.sessions.begin() as s:
        member = members.get(s, first["member"]["id"])
        assert rewards.issue_new_member_pack(s, rt.settings, member, rt.now()) == []
    assert len(_wallet(client, first)) == 4
    with rt.sessions.begin() as s:
        issued = s.scalar(select(func.sum(Deal.claimed)).where(Deal.pack_key.is_not(None)))
    assert issued == 4


def test_pack_coupon_redeems_at_the_house_till_only_within_the_first_month(client, members_api, house, clock, rt):
    member = members_api.sign_in(openid="o-new-1")
    bonus = next(c for c in _wallet(client, member) if c["deal"]["benefit"]["kind"] == "bonus_points")
    redeem = {"code": bonus["code"], "store_id": house["store"], "request_id": "desk-1"}
    done = client.post("/api/v1/merchant/coupons/redeem", headers=house["headers"], json=redeem)
    assert done.status_code == 201 and done.get_json()["bonus_points"] == 50
    retry = client.post("/api/v1/merchant/coupons/redeem", headers=house["headers"], json=redeem)
    assert retry.status_code == 200 and retry.get_json()["replayed"] is True
    assert _balance(client, member) == 50

    late = next(c for c in _wallet(client, member) if c["status"] == "active")
    clock.advance(days=31)
    expired = client.post("/api/v1/merchant/coupons/redeem", headers=house["headers"],
                          json={"code": late["code"], "store_id": house["store"], "request_id": "desk-2"})
    assert expired.status_code == 422 and expired.get_json()["error"]["code"] == "coupon.expired"


def test_pack_deals_cannot_be_listed_or_claimed_by_members(client, members_api, house, rt):
    member = members_api.sign_in(openid="o-new-1")
    assert client.get("/api/v1/deals", headers=member["headers"]).get_json()["deals"] == []
    deal_id = _wallet(client, member)[0]["deal"]["id"]
    claim = client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"])
    assert claim.status_code == 404 and claim.get_json()["error"]["code"] == "deal.not_found"


def test_pack_is_not_issued_to_a_member_past_the_first_month(house, rt):
    with rt.sessions.begin() as s:
        member = members.sign_in(s, openid="o-old", unionid=None, now=rt.now() - timedelta(days=30))[0]
        assert rewards.issue_new_member_pack(s, rt.settings, member, rt.now()) == []


def test_pack_coupons_whose_store_does_not_exist_are_skipped_and_sign_up_still_works(client, members_api, rt):
    member = members_api.sign_in(openid="o-new-1")
    assert member["new_member"] is True and _wallet(client, member) == []


def test_a_paused_pack_deal_is_not_issued(client, members_api, house, rt):
    members_api.sign_in(openid="o-new-1")
    with rt.sessions.begin() as s:
        deal = s.scalar(select(Deal).where(Deal.pack_key == "welcome-1"))
        deal.status = "paused"
    later = members_api.sign_in(openid="o-new-2")
    assert len(_wallet(client, later)) == 3


# --- the birthday gift -----------------------------------------------------------------------------

@pytest.fixture
def april(clock):
    clock.now = APRIL_IN_SHANGHAI
    return clock


def test_birthday_gift_goes_by_the_malls_month_not_utcs(rt, april):
    april_born = _member(rt, "o-april", date(1990, 4, 20))
    march_born = _member(rt, "o-march", date(1990, 3, 20))
    with rt.sessions.begin() as s:
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now(), limit=100) == 1
    assert _entries(rt, april_born, "birthday_gift") == [(100, f"birthday:{april_born}:2026")]
    assert _entries(rt, march_born, "birthday_gift") == []


def test_birthday_gift_is_given_once_a_year_by_the_clock_and_lazily(client, members_api, rt, april):
    member = members_api.sign_in(openid="o-april")
    client.patch("/api/v1/me", headers=member["headers"], json={"birthday": "1990-04-20"})
    assert _balance(client, member) == 100  # setting the birthday in the month brought it
    client.get("/api/v1/me", headers=member["headers"])
    members_api.sign_in(openid="o-april")
    with rt.sessions.begin() as s:
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now()) == 0
        assert rewards.issue_birthday_gift(s, rt.settings, members.get(s, member["member"]["id"]), rt.now()) is None
    assert _balance(client, member) == 100

    april.advance(days=30)  # May: nothing
    with rt.sessions.begin() as s:
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now()) == 0
    april.now = datetime(2027, 4, 1, 0, 0, tzinfo=UTC)  # next April: again
    assert _balance(client, member) == 200
    assert [k for _, k in _entries(rt, member["member"]["id"], "birthday_gift")] == [
        f"birthday:{member['member']['id']}:2026", f"birthday:{member['member']['id']}:2027"]


def test_birthday_gifts_sweep_honours_its_limit_and_resumes(rt, april):
    ids = [_member(rt, f"o-april-{i}", date(1990, 4, 1 + i)) for i in range(5)]
    _member(rt, "o-no-birthday")
    with rt.sessions.begin() as s:
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now(), limit=3) == 3
    with rt.sessions.begin() as s:
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now(), limit=3) == 2
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now(), limit=3) == 0
    assert all(len(_entries(rt, i, "birthday_gift")) == 1 for i in ids)


@pytest.mark.parametrize("settings_overrides", [{"birthday": {"enabled": False}}])
def test_birthday_gift_can_be_switched_off(rt, april):
    _member(rt, "o-april", date(1990, 4, 20))
    with rt.sessions.begin() as s:
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now()) == 0


# --- referrals -------------------------------------------------------------------------------------

@pytest.fixture
def referral(client, members_api, merchant, clock):
    """A referrer, a member they brought in, and the till posting that member's purchases."""
    referrer = members_api.sign_in(openid="o-referrer")
    newcomer = members_api.sign_in(openid="o-newcomer", referral_code=referrer["member"]["referral_code"])

    def buy(receipt_no: str, amount_fen: int = 25_880, who: dict[str, Any] = newcomer):
        card = client.get("/api/v1/me/card", headers=who["headers"]).get_json()["code"]
        return client.post("/api/v1/merchant/purchases", headers=merchant["headers"],
                           json={"member_code": card, "amount_fen": amount_fen, "receipt_no": receipt_no,
                                 "occurred_at": clock.now.isoformat()})

    return {"referrer": referrer, "newcomer": newcomer, "buy": buy}


def test_referrer_earns_the_reward_and_the_first_purchases_points_once(client, referral, merchant, rt):
    referrer, buy = referral["referrer"], referral["buy"]
    assert _balance(client, referrer) == 0  # signing up alone earns nothing
    assert buy("R-1").status_code == 201
    assert _balance(client, referrer) == 100 + 25
    assert _balance(client, referral["newcomer"]) == 25

    assert buy("R-1").get_json()["replayed"] is True  # the till's retry
    assert buy("R-2", amount_fen=50_000).status_code == 201  # not the first purchase
    refund = client.post("/api/v1/merchant/refunds", headers=merchant["headers"],
                         json={"receipt_no": "R-1", "refund_no": "F-1", "amount_fen": 25_880})
    assert refund.status_code == 201
    assert _balance(client, referrer) == 125  # a refund does not undo the referral
    entries = _entries(rt, referrer["member"]["id"], "referral")
    with rt.sessions.begin() as s:
        first = s.scalar(select(Referral))
    assert entries == [(100, f"referral:{referral['newcomer']['member']['id']}"),
                       (25, f"referral-purchase:{first.purchase_id}")]
    assert (first.reward_points, first.purchase_points) == (100, 25)


def test_purchases_of_members_nobody_referred_reward_nobody(client, referral):
    assert referral["buy"]("R-1", who=referral["referrer"]).status_code == 201
    assert _balance(client, referral["referrer"]) == 25


def test_a_small_first_purchase_still_rewards_the_referral(client, referral):
    assert referral["buy"]("R-1", amount_fen=500).get_json()["points_earned"] == 0
    assert _balance(client, referral["referrer"]) == 100
    referral["buy"]("R-2")
    assert _balance(client, referral["referrer"]) == 100


@pytest.mark.parametrize("settings_overrides", [{"referral": {"accrue_purchase_points": False}}])
def test_accruing_the_purchase_points_is_configurable(client, referral):
    referral["buy"]("R-1")
    assert _balance(client, referral["referrer"]) == 100


@pytest.mark.parametrize("settings_overrides", [{"referral": {"enabled": False}}])
def test_referral_rewards_can_be_switched_off(client, referral):
    referral["buy"]("R-1")
    assert _balance(client, referral["referrer"]) == 0


def test_rewards_keep_the_ledger_sound(client, referral, rt, april):
    referral["buy"]("R-1")
    with rt.sessions.begin() as s:
        for member_id in (referral["referrer"]["member"]["id"], referral["newcomer"]["member"]["id"]):
            s.get(members.Member, member_id).birthday = date(1990, 4, 2)
        assert rewards.issue_birthday_gifts(s, rt.settings, rt.now()) == 2
        assert points.check_invariants(s) == []
