"""The till's reads: who holds a card code, a member found by phone, the day's receipts, the stores and deals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import shop_with_rival

from mallapp.domain import members, merchants, staff

M = "/api/v1/merchant"
PASSWORD = "a long enough passphrase"
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _with_phone(rt, member_id: int, number: str, nickname: str | None = None, tier: str | None = None) -> None:
    with rt.sessions.begin() as session:
        member = members.get(session, member_id)
        members.set_phone(session, member, country_code="86", pure_number=number)
        member.nickname, member.tier = nickname, tier


def _cashier(client, rt, merchant_id: int, username: str = "till-1") -> dict[str, str]:
    with rt.sessions.begin() as session:
        staff.create(session, merchant_id, username, "cashier", PASSWORD, rt.now())
    token = client.post(f"{M}/auth", json={"username": username, "password": PASSWORD}).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _purchase(client, headers, code: str, receipt_no: str, amount_fen: int = 12_340, **more: Any):
    return client.post(f"{M}/purchases", headers=headers,
                       json={"member_code": code, "amount_fen": amount_fen, "receipt_no": receipt_no, **more})


@pytest.fixture
def cashier(client, rt, merchant) -> dict[str, str]:
    return _cashier(client, rt, merchant["id"])


def test_a_card_code_tells_the_till_nickname_tier_and_masked_phone_only(client, rt, cashier, member, card):
    _with_phone(rt, member["member"]["id"], "13800138000", nickname="Ada", tier="vip")
    answer = client.post(f"{M}/members/lookup", json={"code": card}, headers=cashier)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"nickname": "Ada", "tier": "vip", "masked_phone": "*******8000"}


def test_a_forged_or_expired_card_code_is_refused_at_lookup(client, cashier, card, clock):
    forged = card[:-2] + ("AA" if not card.endswith("AA") else "BB")
    assert client.post(f"{M}/members/lookup", json={"code": forged}, headers=cashier).get_json()["error"]["code"] \
        == "card.invalid"
    clock.advance(minutes=10)
    assert client.post(f"{M}/members/lookup", json={"code": card}, headers=cashier).get_json()["error"]["code"] \
        == "card.expired"


def test_a_purchase_needs_no_time_the_server_stamps_it(client, cashier, card, clock):
    posted = _purchase(client, cashier, card, "T-1")
    assert posted.status_code == 201, posted.get_json()
    assert posted.get_json()["occurred_at"].startswith(clock.now.isoformat()[:19])
    assert posted.get_json()["points_earned"] == 12


def test_a_member_is_found_by_full_phone_and_the_reference_posts_a_purchase(client, rt, cashier, member):
    _with_phone(rt, member["member"]["id"], "13800138000", nickname="Ada")
    found = client.post(f"{M}/members/find-by-phone", json={"phone": "138 0013-8000"}, headers=cashier)
    assert found.status_code == 200, found.get_json()
    match, = found.get_json()["members"]
    assert set(match) == {"nickname", "masked_phone", "till_ref", "expires_at"}
    assert (match["nickname"], match["masked_phone"]) == ("Ada", "*******8000")
    assert client.post(f"{M}/members/lookup", json={"code": match["till_ref"]}, headers=cashier).status_code == 200
    posted = _purchase(client, cashier, match["till_ref"], "T-2", amount_fen=10_000)
    assert posted.status_code == 201, posted.get_json()
    balance = client.get("/api/v1/me/points", headers=member["headers"]).get_json()["balance"]
    assert balance == 10


@pytest.mark.parametrize("typed", ["8000", "0013 8000", "1380013800", "+86 1380013800", "abc", "+1 234"])
def test_finding_by_phone_wants_the_full_number(client, rt, cashier, member, typed):
    _with_phone(rt, member["member"]["id"], "13800138000")
    answer = client.post(f"{M}/members/find-by-phone", json={"phone": typed}, headers=cashier)
    assert answer.status_code == 400
    assert [p["field"] for p in answer.get_json()["error"]["details"]["problems"]] == ["phone"]


def test_an_unknown_number_is_not_found_and_counts_against_the_allowance(client, rt, cashier, merchant, member):
    _with_phone(rt, member["member"]["id"], "13800138000")
    limit = rt.settings.till.phone_lookups_per_hour
    for n in range(limit):
        answer = client.post(f"{M}/members/find-by-phone", json={"phone": f"139{n:08d}"}, headers=cashier)
        assert answer.get_json()["error"]["code"] == "member.not_found"
    refused = client.post(f"{M}/members/find-by-phone", json={"phone": "13800138000"}, headers=cashier)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "till.phone_lookups_exhausted"
    assert int(refused.headers["Retry-After"]) > 0
    # The allowance is each staff member's own: a colleague still finds the member.
    colleague = _cashier(client, rt, merchant["id"], "till-2")
    assert client.post(f"{M}/members/find-by-phone", json={"phone": "13800138000"}, headers=colleague).status_code == 200


def test_a_till_reference_works_only_for_its_merchant_and_only_for_a_while(client, rt, cashier, member, clock):
    _with_phone(rt, member["member"]["id"], "13800138000")
    ref = client.post(f"{M}/members/find-by-phone", json={"phone": "13800138000"},
                      headers=cashier).get_json()["members"][0]["till_ref"]
    with rt.sessions.begin() as session:
        _, key = merchants.create(session, "Harbour Books", rt.now())
    other = {"Authorization": f"Bearer {key}"}
    assert _purchase(client, other, ref, "H-1").get_json()["error"]["code"] == "card.invalid"
    clock.advance(seconds=rt.settings.till.phone_ref_ttl_s + 1)
    assert _purchase(client, cashier, ref, "T-3").get_json()["error"]["code"] == "card.expired"


def test_todays_receipts_are_the_merchants_own_newest_first_paged(client, rt, merchant, cashier, member, clock,
                                                                     members_api):
    other = shop_with_rival(rt, merchant)["other"]
    for n in range(3):
        card = client.get("/api/v1/me/card", headers=member["headers"]).get_json()["code"]
        assert _purchase(client, cashier, card, f"T-{n}", amount_fen=1000 * (n + 1)).status_code == 201
        clock.advance(minutes=1)
    card = client.get("/api/v1/me/card", headers=member["headers"]).get_json()["code"]
    assert _purchase(client, other["headers"], card, "H-1").status_code == 201
    assert client.post(f"{M}/refunds", headers=cashier,
                       json={"receipt_no": "T-0", "refund_no": "RF-1", "amount_fen": 1000}).status_code == 201
    first = client.get(f"{M}/purchases", query_string={"limit": 2}, headers=cashier).get_json()
    assert first["day"] == "2026-03-10"
    assert [r["receipt_no"] for r in first["receipts"]] == ["T-2", "T-1"]
    rest = client.get(f"{M}/purchases", query_string={"limit": 2, "before": first["next"]}, headers=cashier).get_json()
    assert [(r["receipt_no"], r["refunded_fen"]) for r in rest["receipts"]] == [("T-0", 1000)]
    assert rest["next"] is None
    yesterday = client.get(f"{M}/purchases", query_string={"day": "2026-03-09"}, headers=cashier).get_json()
    assert yesterday["receipts"] == []


def test_the_tills_day_lists_its_stores_and_the_deals_it_honours(client, rt, merchant, cashier, ops_admin):
    world = shop_with_rival(rt, merchant)
    now = rt.now()
    body = {"title": "Flat white 5 yuan off", "store_id": world["store"], "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=2)).isoformat(), "quota": 5,
            "benefit": {"kind": "amount_off", "amount_fen": 500}}
    mine = client.post(f"{M}/deals", json=body, headers=merchant["headers"]).get_json()["id"]
    assert client.post(f"{M}/deals/{mine}/submit", headers=merchant["headers"]).get_json()["status"] == "live"
    draft = client.post(f"{M}/deals", json={**body, "title": "Not yet"}, headers=merchant["headers"]).get_json()["id"]
    theirs = client.post(f"{M}/deals", json={**body, "store_id": world["other"]["store"], "title": "Books"},
                         headers=world["other"]["headers"]).get_json()["id"]
    client.post(f"{M}/deals/{theirs}/submit", headers=world["other"]["headers"])
    day = client.get(f"{M}/till", headers=cashier)
    assert day.status_code == 200, day.get_json()
    answer = day.get_json()
    assert answer["day"] == "2026-03-10" and answer["merchant_name"] == "Starlight Coffee"
    assert [s["id"] for s in answer["stores"]] == [world["store"]]
    assert [d["id"] for d in answer["deals"]] == [mine]
    assert draft not in [d["id"] for d in answer["deals"]]
    assert answer["deals"][0]["benefit"] == {"kind": "amount_off", "amount_fen": 500}


def test_the_till_reads_need_a_merchant_caller(client, member, ops_admin):
    for method, path in (("get", "/till"), ("get", "/purchases"), ("post", "/members/lookup"),
                         ("post", "/members/find-by-phone")):
        kwargs = {"json": {"code": "x"} if "lookup" in path else {"phone": "13800138000"}} if method == "post" else {}
        assert getattr(client, method)(f"{M}{path}", **kwargs).status_code == 401
        for headers in (member["headers"], ops_admin["headers"]):
            assert getattr(client, method)(f"{M}{path}", headers=headers, **kwargs).status_code == 403


def test_an_erased_members_card_tells_the_till_nothing(client, rt, cashier, member, card):
    _with_phone(rt, member["member"]["id"], "13800138000", nickname="Ada")
    assert client.delete("/api/v1/me", headers=member["headers"]).status_code == 200
    answer = client.post(f"{M}/members/lookup", json={"code": card}, headers=cashier)
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (404, "member.not_found")
    gone = client.post(f"{M}/members/find-by-phone", json={"phone": "13800138000"}, headers=cashier)
    assert gone.get_json()["error"]["code"] == "member.not_found"
