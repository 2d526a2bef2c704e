"""Members read what they are told in their own language: zh-CN by default, English when they chose it.

The queue, reservation, campaign and announcement messages are checked with their own tests (tests/api);
here the proximity offer and the coupon reminder, recorded by the services as the workers and the clock run them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import at_store, build_shop, inbox_texts, live_deal, reads_english

from mallapp.domain import coupons, deals, members, merchants, offers, venue_admin


@pytest.fixture
def shop(rt, venue):
    return build_shop(rt, venue)


def test_a_proximity_offer_reads_in_each_members_language(rt, shop):
    live_deal(rt, shop, title="Flat white 5 yuan off")
    with rt.sessions.begin() as s:
        english = members.sign_in(s, openid="o-en", unionid=None, now=rt.now(), locale="en")[0].id
    events = [at_store(rt, shop), offers.Event(id=2, member_id=english, zone_id=shop.store_zone, store_id=shop.store,
                                               sale_item_id=None, at=rt.now())]
    with rt.sessions.begin() as s:
        assert all(offers.offer_many(s, None, rt.settings, events, rt.now()))
    assert inbox_texts(rt, shop.member) == [("Flat white 5 yuan off", "Starlight Coffee：立减 ¥5.00")]
    assert inbox_texts(rt, english) == [("Flat white 5 yuan off", "Starlight Coffee: ¥5.00 off")]


def test_a_coupon_reminder_reads_in_each_members_language_with_the_malls_time(rt):
    now = rt.now()  # 10:00 on 10 March in Shanghai
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Starlight Coffee", now)
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant.id, now=now)
        deal = deals.create(s, merchant.id, title="拿铁立减 5 元", store_id=store.id, starts_at=now - timedelta(days=1),
                            ends_at=now + timedelta(hours=20), quota=2, per_member_limit=1,
                            benefit={"kind": "amount_off", "amount_fen": 500}, now=now)
        deal.status = "live"
        ids = []
        for openid in ("o-zh", "o-en"):
            member, _ = members.sign_in(s, openid=openid, unionid=None, now=now)
            s.flush()
            coupons.claim(s, rt.settings, member.id, deal.id, now)
            ids.append(member.id)
    chinese, english = ids
    reads_english(rt, english)
    assert coupons.remind_expiring(rt.sessions, rt.settings, rt.senders, now) == 2
    assert inbox_texts(rt, chinese) == [("优惠券将于 3月11日 06:00 到期", "拿铁立减 5 元，Starlight可用")]
    assert inbox_texts(rt, english) == [("Your coupon expires 11 Mar 06:00", "拿铁立减 5 元, at Starlight")]
