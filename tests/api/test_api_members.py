"""The member's profile, card, points history, gifts and check-in through the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


def _purchase(client, merchant, card, amount_fen, receipt_no, at):
    return client.post("/api/v1/merchant/purchases", headers=merchant["headers"], json={
        "member_code": card, "amount_fen": amount_fen, "receipt_no": receipt_no, "occurred_at": at.isoformat()})


# --- profile ---------------------------------------------------------------------------------------

def test_me_shows_profile_points_and_referral_code(client, member):
    body = client.get("/api/v1/me", headers=member["headers"]).get_json()
    assert set(body) == {"id", "nickname", "gender", "birthday", "phone", "referral_code", "member_since", "tier", "points",
                         "checked_in_today", "locale", "locale_chosen"}
    assert (body["locale"], body["locale_chosen"]) == ("zh-CN", False)  # the default until the member chooses
    assert body["points"] == {"balance": 0, "owed": 0, "expiring_soon": []}
    assert len(body["referral_code"]) == 8
    assert body["member_since"] == "2026-03-10T02:00:00Z"


def test_patch_me_changes_nickname_and_gender(client, member):
    response = client.patch("/api/v1/me", headers=member["headers"], json={"nickname": "  Xiao Li ", "gender": "female"})
    assert response.status_code == 200
    assert (response.get_json()["nickname"], response.get_json()["gender"]) == ("Xiao Li", "female")


def test_birthday_can_be_set_once(client, member):
    first = client.patch("/api/v1/me", headers=member["headers"], json={"birthday": "1990-05-17"})
    assert first.status_code == 200 and first.get_json()["birthday"] == "1990-05-17"
    same = client.patch("/api/v1/me", headers=member["headers"], json={"birthday": "1990-05-17"})
    assert same.status_code == 200
    other = client.patch("/api/v1/me", headers=member["headers"], json={"birthday": "1991-01-01"})
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "member.birthday_locked"
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["birthday"] == "1990-05-17"


@pytest.mark.parametrize(("body", "field"), [
    ({"balance": 100000}, "balance"),
    ({"tier": "T1"}, "tier"),
    ({"referral_code": "AAAAAAAA"}, "referral_code"),
    ({"nickname": 12}, "nickname"),
    ({"gender": "other"}, "gender"),
    ({"birthday": "17/05/1990"}, "birthday"),
    ({"birthday": "2999-01-01"}, "birthday"),
    ({"nickname": "x" * 41}, "nickname"),
    ({"locale": "fr"}, "locale"),
    ({"locale": "zh_CN"}, "locale"),  # the API takes the locales as written: zh-CN or en
    ({"locale": "EN"}, "locale"),
    ({"locale": 1}, "locale"),
])
def test_patch_me_rejects_unknown_read_only_and_bad_fields(client, member, body, field):
    response = client.patch("/api/v1/me", headers=member["headers"], json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "request.invalid"
    assert [p["field"] for p in error["details"]["problems"]] == [field]
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]["balance"] == 0


def test_patch_me_sets_the_locale_members_read_their_messages_in(client, member):
    chosen = client.patch("/api/v1/me", headers=member["headers"], json={"locale": "en"})
    assert chosen.status_code == 200
    assert (chosen.get_json()["locale"], chosen.get_json()["locale_chosen"]) == ("en", True)
    back = client.patch("/api/v1/me", headers=member["headers"], json={"locale": "zh-CN"}).get_json()
    assert (back["locale"], back["locale_chosen"]) == ("zh-CN", True)
    assert client.patch("/api/v1/me", headers=member["headers"], json={"locale": None}).status_code == 400


def test_sign_in_takes_the_phones_language_until_the_member_chooses_one(members_api, client):
    fresh = members_api.sign_in(openid="o-lang-1", locale="en_US")
    assert (fresh["member"]["locale"], fresh["member"]["locale_chosen"]) == ("en", True)
    unknown = members_api.sign_in(openid="o-lang-2", locale="fr_FR")  # not a language the mall writes: ignored
    assert (unknown["member"]["locale"], unknown["member"]["locale_chosen"]) == ("zh-CN", False)
    later = members_api.sign_in(openid="o-lang-2", locale="en")
    assert later["member"]["locale"] == "en"
    client.patch("/api/v1/me", headers=later["headers"], json={"locale": "zh-CN"})
    again = members_api.sign_in(openid="o-lang-2", locale="en")  # a choice the member made is kept
    assert again["member"]["locale"] == "zh-CN"


@pytest.mark.parametrize("body", [{}, {"nickname": None}])
def test_patch_me_needs_something_to_change(client, member, body):
    assert client.patch("/api/v1/me", headers=member["headers"], json=body).status_code == 400


def test_phone_number_is_bound_through_wechat(client, member, emulator):
    code = emulator.phone_code("o-member-1", phone="13912345678")
    response = client.post("/api/v1/me/phone", headers=member["headers"], json={"code": code})
    assert response.status_code == 200 and response.get_json()["phone"] == "+8613912345678"
    reused = client.post("/api/v1/me/phone", headers=member["headers"], json={"code": code})
    assert reused.status_code == 400 and reused.get_json()["error"]["code"] == "wechat.invalid_code"


# --- card ------------------------------------------------------------------------------------------

def test_card_code_expires_after_its_ttl(client, member, merchant, rt, clock):
    card = client.get("/api/v1/me/card", headers=member["headers"]).get_json()
    assert card["ttl_seconds"] == rt.settings.auth.card_ttl_s
    clock.advance(seconds=card["ttl_seconds"] + 1)
    response = _purchase(client, merchant, card["code"], 10000, "R-late", clock.now)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "card.expired"


# --- points ----------------------------------------------------------------------------------------

def test_points_history_is_paged_newest_first(client, member, merchant, card, clock):
    for n in range(5):
        assert _purchase(client, merchant, card, 1000 * (n + 1), f"R{n}", clock.now).status_code == 201
    page = client.get("/api/v1/me/points?limit=2", headers=member["headers"]).get_json()
    assert page["balance"] == 15
    assert [e["delta"] for e in page["entries"]] == [5, 4]
    assert page["entries"][0]["balance_after"] == 15
    rest = client.get(f"/api/v1/me/points?limit=2&before={page['next_before']}", headers=member["headers"]).get_json()
    assert [e["delta"] for e in rest["entries"]] == [3, 2]
    last = client.get(f"/api/v1/me/points?limit=2&before={rest['next_before']}", headers=member["headers"]).get_json()
    assert [e["delta"] for e in last["entries"]] == [1] and last["next_before"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "before=-1", "colour=red"])
def test_points_history_rejects_bad_query(client, member, query):
    response = client.get(f"/api/v1/me/points?{query}", headers=member["headers"])
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "request.invalid_query"


def test_points_expiring_soon_then_expired(client, member, merchant, card, clock):
    assert _purchase(client, merchant, card, 50000, "R1", clock.now).status_code == 201
    # Earned in 2026: expires at the end of 2027 (mall time). Sixty days before, it shows as expiring.
    clock.now = datetime(2027, 11, 15, tzinfo=UTC)
    body = client.get("/api/v1/me/points", headers=member["headers"]).get_json()
    assert body["expiring_soon"] == [{"points": 50, "expires_at": "2027-12-31T16:00:00Z"}]
    clock.now = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)
    body = client.get("/api/v1/me/points", headers=member["headers"]).get_json()
    assert body["balance"] == 0 and body["expiring_soon"] == []
    assert body["entries"][0]["reason"] == "expiry" and body["entries"][0]["delta"] == -50


def test_gift_catalogue_is_public(client, rt):
    body = client.get("/api/v1/gifts").get_json()
    assert [g["code"] for g in body["gifts"]] == [g.code for g in rt.settings.gifts]


def test_gift_redemption_spends_points_once_per_idempotency_key(client, member, merchant, card, clock):
    assert _purchase(client, merchant, card, 300000, "R1", clock.now).status_code == 201
    headers = {**member["headers"], "Idempotency-Key": "tap-1"}
    first = client.post("/api/v1/me/points/redemptions", headers=headers, json={"gift_code": "coffee", "quantity": 2})
    assert first.status_code == 201
    assert (first.get_json()["points"], first.get_json()["balance"]) == (240, 60)
    retry = client.post("/api/v1/me/points/redemptions", headers=headers, json={"gift_code": "coffee", "quantity": 2})
    assert retry.status_code == 200
    assert retry.get_json()["id"] == first.get_json()["id"] and retry.get_json()["balance"] == 60
    other = client.post("/api/v1/me/points/redemptions", headers=headers, json={"gift_code": "tote"})
    assert other.status_code == 409


def test_gift_redemption_refuses_overdraft_and_unknown_gifts(client, member):
    headers = {**member["headers"], "Idempotency-Key": "tap-1"}
    poor = client.post("/api/v1/me/points/redemptions", headers=headers, json={"gift_code": "coffee"})
    assert poor.status_code == 422 and poor.get_json()["error"]["code"] == "points.insufficient"
    unknown = client.post("/api/v1/me/points/redemptions", headers=headers, json={"gift_code": "yacht"})
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "gift.not_found"


def test_gift_redemption_needs_an_idempotency_key(client, member):
    response = client.post("/api/v1/me/points/redemptions", headers=member["headers"], json={"gift_code": "coffee"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "request.idempotency_key_required"


# --- check-in --------------------------------------------------------------------------------------

def test_check_in_once_a_day(client, member, clock):
    first = client.post("/api/v1/checkins", headers=member["headers"], json={})
    assert first.status_code == 201
    assert first.get_json() == {"day": "2026-03-10", "streak": 1, "points": 5, "balance": 5}
    second = client.post("/api/v1/checkins", headers=member["headers"], json={})
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "checkin.already_today"
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]["balance"] == 5
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["checked_in_today"] is True


def test_check_in_day_follows_the_mall_time_zone(client, member, clock):
    clock.now = datetime(2026, 3, 10, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    assert client.post("/api/v1/checkins", headers=member["headers"], json={}).status_code == 201
    clock.now = datetime(2026, 3, 10, 16, 1, tzinfo=UTC)  # 00:01 the next day in Shanghai
    response = client.post("/api/v1/checkins", headers=member["headers"], json={})
    assert response.status_code == 201
    assert response.get_json()["day"] == "2026-03-11" and response.get_json()["streak"] == 2


def test_seventh_consecutive_check_in_earns_the_streak_bonus(client, member, clock):
    awards = []
    for _ in range(7):
        awards.append(client.post("/api/v1/checkins", headers=member["headers"], json={}).get_json()["points"])
        clock.advance(days=1)
    assert awards == [5, 5, 5, 5, 5, 5, 25]


@pytest.mark.parametrize("settings_overrides", [{"mall": {"checkin_requires_location": True}}])
def test_check_in_with_required_location(client, member, rt):
    mall = rt.settings.mall
    missing = client.post("/api/v1/checkins", headers=member["headers"], json={})
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "checkin.location_required"
    far = client.post("/api/v1/checkins", headers=member["headers"],
                      json={"latitude": mall.latitude + 0.01, "longitude": mall.longitude})
    assert far.status_code == 422
    error = far.get_json()["error"]
    assert error["code"] == "checkin.too_far"
    assert error["details"]["distance_m"] == pytest.approx(1109, rel=0.01)
    half = client.post("/api/v1/checkins", headers=member["headers"], json={"latitude": mall.latitude})
    assert half.status_code == 400
    near = client.post("/api/v1/checkins", headers=member["headers"],
                       json={"latitude": mall.latitude + 0.001, "longitude": mall.longitude})
    assert near.status_code == 201


@pytest.mark.parametrize("body", [{"latitude": "31.2", "longitude": 121.4}, {"latitude": 91, "longitude": 0},
                                  {"altitude": 3}])
def test_check_in_rejects_bad_coordinates(client, member, body):
    response = client.post("/api/v1/checkins", headers=member["headers"], json=body)
    assert response.status_code == 400
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]["balance"] == 0
