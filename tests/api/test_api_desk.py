"""The service desk: member search and record, manual points adjustments, gift hand-over."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from mallapp.domain import coupons, deals, members, points, privacy, venue_admin
from mallapp.domain.checkin import Checkin
from mallapp.domain.desk import PointsAdjustment
from mallapp.domain.notifications import Notification
from mallapp.domain.proximity.history import MallVisit
from mallapp.domain.segments import LifecycleTransition, MemberSnapshot

OPS = "/api/v1/ops"
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _with_phone(rt, member_id: int, number: str, nickname: str | None = None) -> None:
    with rt.sessions.begin() as session:
        member = members.get(session, member_id)
        members.set_phone(session, member, country_code="86", pure_number=number)
        if nickname is not None:
            member.nickname = nickname


def _credit(rt, member_id: int, amount: int, key: str = "seed") -> None:
    with rt.sessions.begin() as session:
        points.credit(session, rt.settings, member_id, amount, "adjustment", source_ref="test", idempotency_key=key,
                      now=rt.now())


def _search(client, headers, q: str, **more: Any) -> dict[str, Any]:
    response = client.get(f"{OPS}/members", query_string={"q": q, **more}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def people(rt, members_api) -> dict[str, int]:
    """Three members with phones and nicknames: ada (…8000), bo (…8001), chen (…9000)."""
    ids = {}
    for name, number in (("ada", "13800138000"), ("bo", "13900138001"), ("chen", "13700139000")):
        ids[name] = members_api.sign_in(openid=f"o-{name}")["member"]["id"]
        _with_phone(rt, ids[name], number, nickname=f"{name.title()} Lovelace" if name == "ada" else name.title())
    return ids


# --- search ----------------------------------------------------------------------------------------

def test_search_finds_a_member_by_full_phone_last_four_id_referral_code_and_nickname(client, rt, ops_desk, people):
    ada = people["ada"]
    with rt.sessions.begin() as session:
        code = members.get(session, ada).referral_code
    for q in ("13800138000", "+8613800138000", "138 0013 8000", "8000", str(ada), code, code.lower(), "lovel",
              "ADA"):
        found = _search(client, ops_desk["headers"], q)["members"]
        assert [m["id"] for m in found] == [ada], q


def test_search_by_last_four_digits_lists_every_member_whose_phone_ends_so(client, rt, ops_desk, people,
                                                                           members_api):
    dan = members_api.sign_in(openid="o-dan")["member"]["id"]
    _with_phone(rt, dan, "18600008000")
    found = _search(client, ops_desk["headers"], "8000")["members"]
    assert [m["id"] for m in found] == sorted([people["ada"], dan])


def test_search_pages_in_id_order(client, rt, ops_desk, members_api):
    ids = []
    for i in range(5):
        ids.append(members_api.sign_in(openid=f"o-page-{i}")["member"]["id"])
        _with_phone(rt, ids[-1], f"1350000{i:04d}"[:7] + "7777")
    first = _search(client, ops_desk["headers"], "7777", limit=2)
    assert [m["id"] for m in first["members"]] == ids[:2]
    second = _search(client, ops_desk["headers"], "7777", limit=2, after_id=first["next_after_id"])
    third = _search(client, ops_desk["headers"], "7777", limit=2, after_id=second["next_after_id"])
    assert [m["id"] for m in second["members"] + third["members"]] == ids[2:]
    assert third["next_after_id"] is None


def test_search_treats_like_wildcards_as_plain_text(client, ops_desk, people):
    assert _search(client, ops_desk["headers"], "%")["members"] == []
    assert _search(client, ops_desk["headers"], "_")["members"] == []


def test_erased_members_are_not_found(client, rt, ops_desk, people):
    with rt.sessions.begin() as session:
        privacy.erase(session, people["ada"], rt.now())
    for q in ("8000", "13800138000", str(people["ada"]), "Lovelace"):
        assert _search(client, ops_desk["headers"], q)["members"] == [], q
    response = client.get(f"{OPS}/members/{people['ada']}", headers=ops_desk["headers"])
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "member.not_found"


@pytest.mark.parametrize("role", ["admin", "desk"])
def test_admin_and_desk_see_full_phone_numbers(client, request, people, role):
    headers = request.getfixturevalue(f"ops_{role}")["headers"]
    assert _search(client, headers, "8000")["members"][0]["phone"] == "+8613800138000"
    record = client.get(f"{OPS}/members/{people['ada']}", headers=headers).get_json()
    assert record["profile"]["phone"] == "+8613800138000"


@pytest.mark.parametrize("role", ["marketing", "viewer"])
def test_marketing_and_viewer_see_phone_numbers_masked(client, request, people, role):
    headers = request.getfixturevalue(f"ops_{role}")["headers"]
    assert _search(client, headers, "13800138000")["members"][0]["phone"] == "*******8000"
    record = client.get(f"{OPS}/members/{people['ada']}", headers=headers).get_json()
    assert record["profile"]["phone"] == "*******8000"


def test_an_empty_search_is_refused(client, ops_desk):
    response = client.get(f"{OPS}/members", query_string={"q": "   "}, headers=ops_desk["headers"])
    assert response.status_code == 400


# --- the record ------------------------------------------------------------------------------------

def test_the_record_shows_segments_history_transitions_and_lifetime_value(client, rt, ops_desk, people):
    ada = people["ada"]
    with rt.sessions.begin() as session:
        for month, tier, state, clv in ((date(2026, 1, 1), "T2", "active", 50_000),
                                        (date(2026, 2, 1), "T1", "active", 80_000),
                                        (date(2026, 3, 1), "T3", "weakening", 30_000)):
            session.add(MemberSnapshot(
                member_id=ada, month=month, as_of=month + timedelta(days=9), window_start=month - timedelta(days=365),
                purchases=6, purchase_days=5, spend_fen=120_000, scored_spend_fen=120_000, visits=9,
                mean_gap_days=21.5, t_tier=tier, pyramid="major", rfm_r=4, rfm_f=3, rfm_m=5, rfm_segment="loyal",
                lifecycle=state, p_alive=0.8, expected_purchases_30=1.2, expected_purchases_90=3.1,
                expected_purchases_365=10.4, expected_spend_fen=20_000, clv_fen=clv,
                next_purchase_due=date(2026, 3, 20), computed_at=rt.now()))
        session.add(LifecycleTransition(member_id=ada, day=date(2026, 3, 5), from_state="active",
                                        to_state="weakening", cause="t_tier_drop", created_at=rt.now()))
    record = client.get(f"{OPS}/members/{ada}", headers=ops_desk["headers"]).get_json()
    assert record["segments"]["current"]["month"] == "2026-03-01"
    assert record["segments"]["current"]["t_tier"] == "T3"
    assert [h["t_tier"] for h in record["segments"]["history"]] == ["T3", "T1", "T2"]
    assert record["segments"]["transitions"] == [{"day": "2026-03-05", "from_state": "active",
                                                  "to_state": "weakening", "cause": "t_tier_drop"}]
    assert record["lifetime_value"]["clv_fen"] == 30_000
    assert record["lifetime_value"]["p_alive"] == 0.8
    assert record["campaigns"] == []  # drawn into no campaign


def test_the_record_shows_purchases_points_visits_coupons_and_gifts(client, rt, ops_desk, members_api, merchant):
    body = members_api.sign_in(openid="o-rich")
    member_id, headers = body["member"]["id"], body["headers"]
    card = client.get("/api/v1/me/card", headers=headers).get_json()["code"]
    bought = client.post("/api/v1/merchant/purchases", headers=merchant["headers"], json={
        "member_code": card, "amount_fen": 50_000, "receipt_no": "R-9", "occurred_at": rt.now().isoformat()})
    assert bought.status_code == 201, bought.get_json()
    with rt.sessions.begin() as session:
        session.add(Checkin(member_id=member_id, day=date(2026, 3, 10), streak=1, points=0, method="app",
                            created_at=rt.now()))
        session.add(MallVisit(member_id=member_id, entered_at=rt.now() - timedelta(hours=2), exited_at=rt.now(),
                              dwell_seconds=7200))
        store = venue_admin.create_store(session, name="Noodle House", floor=1, x=0, y=0,
                                         merchant_id=merchant["id"], now=rt.now()).id
        deal = deals.create(session, merchant["id"], title="5 off", store_id=store, starts_at=rt.now(),
                            ends_at=rt.now() + timedelta(days=3), quota=5, per_member_limit=1,
                            benefit={"kind": "amount_off", "amount_fen": 500}, now=rt.now())
        deal.status = "live"
        session.flush()
        coupons.claim(session, rt.settings, member_id, deal.id, rt.now())
        session.add(Notification(member_id=member_id, kind="deal", title="5 off at Noodle House", body="today",
                                 key="deal:test", created_at=rt.now()))
    _credit(rt, member_id, 500)
    gift = client.post("/api/v1/me/points/redemptions", json={"gift_code": "coffee"},
                       headers={**headers, "Idempotency-Key": "g-1"})
    assert gift.status_code == 201, gift.get_json()
    record = client.get(f"{OPS}/members/{member_id}", headers=ops_desk["headers"]).get_json()
    assert [p["receipt_no"] for p in record["purchases"]] == ["R-9"]
    assert record["lifetime_value"]["spend_fen"] == 50_000
    assert record["points"]["balance"] == points_balance(rt, member_id)
    assert {e["reason"] for e in record["points"]["ledger"]} >= {"purchase", "redemption"}
    # The purchase's line names the merchant's store (its only one), as the member's own ledger does.
    purchase_line = next(e for e in record["points"]["ledger"] if e["reason"] == "purchase")
    assert purchase_line["store_id"] == store and purchase_line["store"]["name"] == "Noodle House"
    assert purchase_line["store"]["floor_name"] == "L1"
    assert len(record["visits"]["checkins"]) == 1
    assert record["gifts"][0]["pickup_code"] == gift.get_json()["pickup_code"]
    assert record["gifts"][0]["handed_over_at"] is None
    assert [(c["title"], c["status"]) for c in record["coupons"]] == [("5 off", "active")]
    assert record["visits"]["mall_visits"][0]["dwell_seconds"] == 7200
    assert [(n["kind"], n["title"], n["read_at"]) for n in record["notifications"]] == [
        ("deal", "5 off at Noodle House", None)]


def points_balance(rt, member_id: int) -> int:
    with rt.sessions.begin() as session:
        return points.balance(session, member_id)


def test_the_ledger_pages_on_from_the_record(client, rt, ops_viewer, people):
    ada = people["ada"]
    for i in range(25):
        _credit(rt, ada, 10 + i, key=f"seed-{i}")
    record = client.get(f"{OPS}/members/{ada}", headers=ops_viewer["headers"]).get_json()
    assert len(record["points"]["ledger"]) == 20
    rest = client.get(f"{OPS}/members/{ada}/points", headers=ops_viewer["headers"],
                      query_string={"before_id": record["points"]["next_before_id"]}).get_json()
    assert len(rest["entries"]) == 5 and rest["next_before_id"] is None
    assert [e["delta"] for e in record["points"]["ledger"] + rest["entries"]] == list(range(34, 9, -1))


def test_an_unknown_member_has_no_record(client, ops_desk):
    response = client.get(f"{OPS}/members/999999", headers=ops_desk["headers"])
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "member.not_found"


# --- adjustments -----------------------------------------------------------------------------------

def _adjust(client, headers, member_id: int, pts: int, reason: str = "lost receipt, checked by hand",
            key: str = "adj-1"):
    return client.post(f"{OPS}/members/{member_id}/points-adjustments", headers=headers,
                       json={"points": pts, "reason": reason, "idempotency_key": key})


def test_a_desk_credit_reaches_the_members_ledger_with_its_reason_and_is_audited(client, rt, ops_desk, member):
    member_id = member["member"]["id"]
    done = _adjust(client, ops_desk["headers"], member_id, 300)
    assert done.status_code == 201, done.get_json()
    body = done.get_json()
    assert (body["points"], body["balance"], body["replayed"]) == (300, 300, False)
    assert body["ops_user_id"] == ops_desk["id"]
    ledger = client.get("/api/v1/me/points", headers=member["headers"]).get_json()["entries"]
    seen = next(e for e in ledger if e["id"] == body["entry_id"])
    assert (seen["delta"], seen["reason"], seen["note"]) == (300, "adjustment", "lost receipt, checked by hand")
    with rt.sessions.begin() as session:
        row = session.get(PointsAdjustment, body["id"])
        assert (row.member_id, row.ops_user_id, row.points, row.reason) == (
            member_id, ops_desk["id"], 300, "lost receipt, checked by hand")
        assert row.created_at == rt.now()
        posted = session.get(points.PointsEntry, row.entry_id)
        assert (posted.delta, posted.reason, posted.note) == (300, "adjustment", "lost receipt, checked by hand")


def test_a_retry_with_the_same_key_answers_the_first_result(client, rt, ops_desk, member):
    member_id = member["member"]["id"]
    first = _adjust(client, ops_desk["headers"], member_id, 120).get_json()
    again = _adjust(client, ops_desk["headers"], member_id, 120)
    assert again.status_code == 200
    assert again.get_json() | {"replayed": False} == first
    assert points_balance(rt, member_id) == 120


def test_the_same_key_with_another_body_is_refused(client, ops_desk, member):
    member_id = member["member"]["id"]
    assert _adjust(client, ops_desk["headers"], member_id, 120).status_code == 201
    for changed in ({"pts": 121}, {"pts": 120, "reason": "another reason"}):
        refused = _adjust(client, ops_desk["headers"], member_id, changed["pts"], reason=changed.get(
            "reason", "lost receipt, checked by hand"))
        assert refused.status_code == 409
        assert refused.get_json()["error"]["code"] == "desk.idempotency_mismatch"


def test_a_debit_takes_points_and_never_below_zero(client, rt, ops_desk, member):
    member_id = member["member"]["id"]
    _credit(rt, member_id, 100)
    taken = _adjust(client, ops_desk["headers"], member_id, -60, reason="double credit reversed", key="d-1")
    assert taken.status_code == 201 and taken.get_json()["balance"] == 40
    refused = _adjust(client, ops_desk["headers"], member_id, -41, reason="too much", key="d-2")
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "points.insufficient"
    assert points_balance(rt, member_id) == 40


@pytest.mark.parametrize("pts", [0, 100_001, -100_001])
def test_an_adjustment_is_non_zero_and_bounded(client, ops_desk, member, pts):
    refused = _adjust(client, ops_desk["headers"], member["member"]["id"], pts)
    assert refused.status_code == 400


def test_an_adjustment_needs_a_reason(client, ops_desk, member):
    refused = _adjust(client, ops_desk["headers"], member["member"]["id"], 10, reason="  ")
    assert refused.status_code == 400


@pytest.mark.parametrize("role", ["marketing", "viewer"])
def test_only_admin_and_desk_adjust_points(client, request, member, role):
    refused = _adjust(client, request.getfixturevalue(f"ops_{role}")["headers"], member["member"]["id"], 10)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "ops.desk_required"


def test_an_adjustment_of_an_unknown_member_is_not_found(client, ops_admin):
    refused = _adjust(client, ops_admin["headers"], 999_999, 10)
    assert refused.status_code == 404


# --- gifts at the desk -----------------------------------------------------------------------------

@pytest.fixture
def pickup(client, rt, member) -> str:
    _credit(rt, member["member"]["id"], 500)
    done = client.post("/api/v1/me/points/redemptions", json={"gift_code": "coffee", "quantity": 2},
                       headers={**member["headers"], "Idempotency-Key": "g-1"})
    assert done.status_code == 201, done.get_json()
    return done.get_json()["pickup_code"]


def test_the_desk_reads_a_pickup_code_with_the_member_masked(client, rt, ops_desk, member, pickup):
    _with_phone(rt, member["member"]["id"], "13800138000")
    shown = client.get(f"{OPS}/gifts/{pickup.lower()}", headers=ops_desk["headers"])
    assert shown.status_code == 200, shown.get_json()
    body = shown.get_json()
    assert (body["gift_code"], body["gift_name"], body["quantity"], body["handed_over"]) == (
        "coffee", "Coffee voucher", 2, False)
    assert body["phone"] == "*******8000"
    assert body["member_id"] == member["member"]["id"]


def test_a_hand_over_is_recorded_once_and_the_same_desk_retry_answers_it_again(client, rt, clock, ops_desk, pickup):
    first = client.post(f"{OPS}/gifts/{pickup}/hand-over", json={"request_id": "desk-1"}, headers=ops_desk["headers"])
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["handed_over"] and body["handed_over_by"] == ops_desk["id"]
    assert body["handed_over_by_username"] == "ops-desk"
    clock.advance(minutes=1)
    again = client.post(f"{OPS}/gifts/{pickup}/hand-over", json={"request_id": "desk-1"}, headers=ops_desk["headers"])
    assert again.status_code == 200
    assert again.get_json() == body | {"replayed": True}


def test_a_second_hand_over_is_refused_with_when_and_by_whom(client, ops_desk, ops_admin, pickup):
    done = client.post(f"{OPS}/gifts/{pickup}/hand-over", json={"request_id": "desk-1"}, headers=ops_desk["headers"])
    for headers, request_id in ((ops_desk["headers"], "desk-2"), (ops_admin["headers"], "desk-1")):
        refused = client.post(f"{OPS}/gifts/{pickup}/hand-over", json={"request_id": request_id}, headers=headers)
        assert refused.status_code == 409
        error = refused.get_json()["error"]
        assert error["code"] == "gift.already_handed_over"
        assert error["details"]["handed_over_at"] == done.get_json()["handed_over_at"].replace("Z", "+00:00")
        assert error["details"]["handed_over_by_username"] == "ops-desk"
    shown = client.get(f"{OPS}/gifts/{pickup}", headers=ops_desk["headers"]).get_json()
    assert shown["handed_over"] and shown["handed_over_by"] == ops_desk["id"]


def test_an_unknown_pickup_code_is_not_found(client, ops_desk):
    response = client.get(f"{OPS}/gifts/NOSUCHCODE", headers=ops_desk["headers"])
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "gift.pickup_not_found"
