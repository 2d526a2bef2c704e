"""Deal and coupon rules at the service level: lifecycle, quotas, member rules, redemption, points."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mallapp.domain import coupons, deals, members, merchants, points, venue_admin
from mallapp.domain.points import PointsEntry
from mallapp.errors import MallError


@contextmanager
def _raises(code: str) -> Iterator[Any]:
    with pytest.raises(MallError) as info:
        yield info
    assert info.value.code == code, info.value.code


@pytest.fixture
def world(rt) -> dict[str, Any]:
    """Two merchants with a store each, a sale item and a zone, and a member."""
    now = rt.now()
    with rt.sessions.begin() as s:
        m1 = merchants.create(s, "Starlight Coffee", now)[0].id
        m2 = merchants.create(s, "Harbour Books", now)[0].id
        store1 = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=m1, now=now).id
        store2 = venue_admin.create_store(s, name="Harbour", floor=1, x=5, y=0, merchant_id=m2, now=now).id
        item = venue_admin.create_sale_item(s, store1, name="Beans", now=now).id
        zone = venue_admin.create_zone(s, name="Front", kind="store", floor=1, polygon=[[0, 0], [1, 0], [1, 1]],
                                       store_id=store1, now=now).id
        member = members.sign_in(s, openid="o-deals-1", unionid=None, now=now - timedelta(days=100))[0].id
    return {"m1": m1, "m2": m2, "store1": store1, "store2": store2, "item": item, "zone": zone, "member": member}


def new_member(rt, openid: str, joined_days_ago: int = 100, birthday: date | None = None) -> int:
    with rt.sessions.begin() as s:
        member = members.sign_in(s, openid=openid, unionid=None, now=rt.now() - timedelta(days=joined_days_ago))[0]
        member.birthday = birthday
        return member.id


def make_deal(rt, world, *, live: bool = True, merchant: str = "m1", store: str = "store1", **over: Any) -> int:
    now = rt.now()
    values = dict(title="Two for one", store_id=world[store], starts_at=now - timedelta(hours=1),
                  ends_at=now + timedelta(days=7), quota=10, per_member_limit=1,
                  benefit={"kind": "amount_off", "amount_fen": 500}, now=now) | over
    with rt.sessions.begin() as s:
        deal = deals.create(s, world[merchant], **values)
        if live:
            deals.transition(s, world[merchant], deal.id, "submit", now)
            deals.review(s, deal.id, approve=True, now=now)
        return deal.id


def claim(rt, member_id: int, deal_id: int) -> coupons.Held:
    with rt.sessions.begin() as s:
        return coupons.claim(s, rt.settings, member_id, deal_id, rt.now())


def redeem(rt, world, code: str, request_id: str = "till-1", merchant: str = "m1", store: str = "store1",
           **kw: Any) -> coupons.Redeemed:
    with rt.sessions.begin() as s:
        return coupons.redeem(s, rt.settings, rt.secret, merchant_id=world[merchant], store_id=world[store],
                              code=code, request_id=request_id, now=rt.now(), **kw)


def get_deal(rt, deal_id: int) -> deals.Deal:
    with rt.sessions.begin() as s:
        return s.get(deals.Deal, deal_id)


# --- lifecycle -------------------------------------------------------------------------------------

def test_a_deal_goes_live_only_through_approval_and_pauses_resumes_and_ends(rt, world):
    deal_id = make_deal(rt, world, live=False)
    m1, now = world["m1"], rt.now()
    with rt.sessions.begin() as s:
        assert deals.transition(s, m1, deal_id, "submit", now).status == "pending_approval"
        assert deals.review(s, deal_id, approve=True, now=now).status == "live"
        assert deals.transition(s, m1, deal_id, "pause", now).status == "paused"
        assert deals.transition(s, m1, deal_id, "resume", now).status == "live"
        assert deals.transition(s, m1, deal_id, "end", now).status == "ended"
    with _raises("deal.invalid_state"), rt.sessions.begin() as s:
        deals.transition(s, m1, deal_id, "resume", now)


def test_a_rejected_deal_carries_the_reason_and_can_be_submitted_again(rt, world):
    deal_id = make_deal(rt, world, live=False)
    with rt.sessions.begin() as s:
        deals.transition(s, world["m1"], deal_id, "submit", rt.now())
        rejected = deals.review(s, deal_id, approve=False, reason="image missing", now=rt.now())
        assert (rejected.status, rejected.rejection_reason) == ("rejected", "image missing")
        again = deals.transition(s, world["m1"], deal_id, "submit", rt.now())
        assert (again.status, again.rejection_reason) == ("pending_approval", None)
    with _raises("deal.invalid_state"), rt.sessions.begin() as s:
        deals.review(s, make_deal(rt, world, live=False), approve=True, now=rt.now())  # a draft, not submitted


def test_an_auto_approved_merchants_submission_goes_live_at_once(rt, world):
    with rt.sessions.begin() as s:
        deals.set_auto_approve(s, world["m1"], True)
    deal_id = make_deal(rt, world, live=False)
    with rt.sessions.begin() as s:
        assert deals.transition(s, world["m1"], deal_id, "submit", rt.now()).status == "live"
        # ...and its content edits stay live.
        assert deals.update(s, world["m1"], deal_id, {"title": "Three for one"}, rt.now()).status == "live"


def test_a_content_edit_of_a_live_deal_goes_back_to_review_but_a_quota_raise_does_not(rt, world):
    deal_id = make_deal(rt, world)
    with rt.sessions.begin() as s:
        assert deals.update(s, world["m1"], deal_id, {"quota": 50}, rt.now()).status == "live"
        assert deals.update(s, world["m1"], deal_id, {"text": "new words"}, rt.now()).status == "pending_approval"


def test_quota_cannot_go_below_claimed_and_promised_terms_are_locked_after_a_claim(rt, world):
    deal_id = make_deal(rt, world, quota=5)
    claim(rt, world["member"], deal_id)
    claim(rt, new_member(rt, "o-2"), deal_id)
    with _raises("deal.quota_below_claimed"), rt.sessions.begin() as s:
        deals.update(s, world["m1"], deal_id, {"quota": 1}, rt.now())
    with _raises("deal.terms_locked"), rt.sessions.begin() as s:
        deals.update(s, world["m1"], deal_id, {"benefit": {"kind": "percent_off", "percent": 50}}, rt.now())
    with rt.sessions.begin() as s:
        assert deals.update(s, world["m1"], deal_id, {"quota": 2}, rt.now()).quota == 2


def test_a_deal_must_be_at_one_of_the_merchants_own_stores(rt, world):
    with _raises("deal.store_not_yours"):
        make_deal(rt, world, store="store2")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("zone_ids", [999], "venue.unknown_zone"), ("store_ids", [999], "venue.unknown_store"),
    ("sale_item_ids", [999], "venue.unknown_sale_item")])
def test_targeting_refers_to_the_beacon_registry(rt, world, field, value, code):
    with _raises(code):
        make_deal(rt, world, **{field: value})
    deal_id = make_deal(rt, world, zone_ids=[world["zone"]], store_ids=[world["store1"]], sale_item_ids=[world["item"]])
    deal = get_deal(rt, deal_id)
    assert (deal.zone_ids, deal.store_ids, deal.sale_item_ids) == ([world["zone"]], [world["store1"]], [world["item"]])


@pytest.mark.parametrize("benefit", [{"kind": "percent_off", "percent": 100}, {"kind": "amount_off", "amount_fen": 1.5},
                                     {"kind": "gift"}, {"kind": "bonus_points", "points": 0}, {"kind": "cash"}])
def test_a_benefit_is_one_of_four_kinds_with_a_positive_integer_or_gift_text(rt, world, benefit):
    with _raises("deal.invalid_benefit"):
        make_deal(rt, world, benefit=benefit)


def test_another_merchants_deal_is_not_found(rt, world):
    deal_id = make_deal(rt, world)
    with _raises("deal.not_found"), rt.sessions.begin() as s:
        deals.get_own(s, world["m2"], deal_id)
    with _raises("deal.not_found"), rt.sessions.begin() as s:
        deals.transition(s, world["m2"], deal_id, "pause", rt.now())


# --- claiming --------------------------------------------------------------------------------------

def test_claims_stop_at_the_quota_and_the_counter_is_exact(rt, world):
    deal_id = make_deal(rt, world, quota=2)
    claim(rt, world["member"], deal_id)
    claim(rt, new_member(rt, "o-2"), deal_id)
    with _raises("deal.sold_out"):
        claim(rt, new_member(rt, "o-3"), deal_id)
    assert get_deal(rt, deal_id).claimed == 2


def test_a_member_claims_at_most_the_per_member_limit(rt, world):
    deal_id = make_deal(rt, world, per_member_limit=2)
    first, second = claim(rt, world["member"], deal_id), claim(rt, world["member"], deal_id)
    assert first.coupon.code != second.coupon.code
    with _raises("deal.limit_reached"):
        claim(rt, world["member"], deal_id)


def test_only_live_deals_within_validity_can_be_claimed(rt, world, clock):
    draft = make_deal(rt, world, live=False)
    with _raises("deal.not_found"):
        claim(rt, world["member"], draft)
    later = make_deal(rt, world, starts_at=clock.now + timedelta(days=1), ends_at=clock.now + timedelta(days=2))
    with _raises("deal.not_available"):
        claim(rt, world["member"], later)
    paused = make_deal(rt, world)
    with rt.sessions.begin() as s:
        deals.transition(s, world["m1"], paused, "pause", rt.now())
    with _raises("deal.not_available"):
        claim(rt, world["member"], paused)
    clock.advance(days=1, seconds=1)
    assert claim(rt, world["member"], later).coupon.deal_id == later


def test_new_member_deals_are_for_those_who_joined_within_the_configured_days(rt, world, clock):
    deal_id = make_deal(rt, world, member_rule="new_members", quota=5, ends_at=clock.now + timedelta(days=60))
    newcomer = new_member(rt, "o-new", joined_days_ago=0)
    with _raises("deal.member_not_eligible"):
        claim(rt, world["member"], deal_id)  # joined 100 days ago
    clock.advance(days=rt.settings.deals.new_member_days + 1)
    with _raises("deal.member_not_eligible"):
        claim(rt, newcomer, deal_id)
    clock.advance(days=-2)
    assert claim(rt, newcomer, deal_id).coupon.member_id == newcomer


def test_birthday_month_deals_follow_the_malls_calendar(rt, world, clock):
    # 2026-03-31 20:00 UTC is already 1 April in Shanghai.
    clock.now = clock.now.replace(day=31, hour=20)
    deal_id = make_deal(rt, world, member_rule="birthday_month", quota=5)
    march, april = new_member(rt, "o-mar", birthday=date(1990, 3, 5)), new_member(rt, "o-apr", birthday=date(1990, 4, 9))
    with _raises("deal.member_not_eligible"):
        claim(rt, march, deal_id)
    with _raises("deal.member_not_eligible"):
        claim(rt, world["member"], deal_id)  # no birthday given
    assert claim(rt, april, deal_id).coupon.member_id == april
    with rt.sessions.begin() as s:
        listed = [d.id for d in coupons.claimable(s, rt.settings, members.get(s, march), rt.now())]
    assert deal_id not in listed


def test_the_deal_list_leaves_out_what_the_member_cannot_claim(rt, world):
    open_deal, once = make_deal(rt, world), make_deal(rt, world)
    make_deal(rt, world, live=False)
    claim(rt, world["member"], once)
    with rt.sessions.begin() as s:
        listed = [d.id for d in coupons.claimable(s, rt.settings, members.get(s, world["member"]), rt.now())]
    assert listed == [open_deal]


# --- redeeming -------------------------------------------------------------------------------------

def test_a_coupon_is_redeemed_once_and_the_tills_retry_returns_the_first_result(rt, world, clock):
    code = claim(rt, world["member"], make_deal(rt, world)).coupon.code
    first = redeem(rt, world, code)
    clock.advance(minutes=1)
    retry = redeem(rt, world, code)
    assert (first.replayed, retry.replayed) == (False, True)
    assert retry.coupon.redeemed_at == first.coupon.redeemed_at
    assert get_deal(rt, first.deal.id).redeemed == 1
    with _raises("coupon.already_used"):
        redeem(rt, world, code, request_id="till-2")


def test_a_typed_code_is_read_without_case_dashes_or_spaces(rt, world):
    code = claim(rt, world["member"], make_deal(rt, world)).coupon.code
    typed = f"{code[:4].lower()}-{code[4:]} "
    assert redeem(rt, world, typed).coupon.code == code


def test_redemption_is_refused_at_another_store_by_another_merchant_and_outside_validity(rt, world, clock):
    deal_id = make_deal(rt, world)
    code = claim(rt, world["member"], deal_id).coupon.code
    with _raises("coupon.not_found"):  # another merchant's coupon is as unknown as a made-up code
        redeem(rt, world, code, merchant="m2", store="store2")
    with _raises("coupon.wrong_store"):
        redeem(rt, world, code, store="store2")
    with _raises("coupon.not_found"):
        redeem(rt, world, "ZZZZZZZZZZ")
    clock.advance(days=8)
    with _raises("coupon.expired"):
        redeem(rt, world, code)
    with rt.sessions.begin() as s:
        assert [h.coupon.status(h.deal, rt.now()) for h in coupons.wallet(s, world["member"], rt.now())] == ["expired"]
    assert get_deal(rt, deal_id).redeemed == 0


def test_a_coupon_whose_deal_moved_later_is_not_yet_valid(rt, world, clock):
    deal_id = make_deal(rt, world)
    code = claim(rt, world["member"], deal_id).coupon.code
    with rt.sessions.begin() as s:
        deals.update(s, world["m1"], deal_id, {"starts_at": clock.now + timedelta(days=1)}, rt.now())
    with _raises("coupon.not_yet_valid"):
        redeem(rt, world, code)


def test_the_qr_payload_redeems_and_a_forged_one_is_refused(rt, world):
    held = claim(rt, world["member"], make_deal(rt, world))
    payload = coupons.qr_payload(rt.secret, held.coupon)
    forged = payload.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAA"
    with _raises("coupon.invalid_qr"):
        redeem(rt, world, None, qr=forged)
    assert redeem(rt, world, None, qr=payload).coupon.code == held.coupon.code


def test_bonus_points_are_credited_exactly_once_through_the_ledger(rt, world, clock):
    deal_id = make_deal(rt, world, benefit={"kind": "bonus_points", "points": 30})
    code = claim(rt, world["member"], deal_id).coupon.code
    assert redeem(rt, world, code).coupon.bonus_points == 30
    redeem(rt, world, code)  # the till's retry
    with _raises("coupon.already_used"):
        redeem(rt, world, code, request_id="till-other")
    with rt.sessions.begin() as s:
        entries = s.execute(select(PointsEntry.reason, PointsEntry.delta)
                            .where(PointsEntry.member_id == world["member"])).all()
        assert entries == [("coupon", 30)]
        assert points.balance(s, world["member"]) == 30
        assert points.check_invariants(s) == []


def test_the_wallet_filters_by_status(rt, world):
    first, second = make_deal(rt, world), make_deal(rt, world)
    used = claim(rt, world["member"], first).coupon.code
    kept = claim(rt, world["member"], second).coupon.code
    redeem(rt, world, used)
    with rt.sessions.begin() as s:
        def codes(status):
            return [h.coupon.code for h in coupons.wallet(s, world["member"], rt.now(), status)]
        assert (codes("used"), codes("active"), codes("expired")) == ([used], [kept], [])
