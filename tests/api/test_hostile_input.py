"""Hostile input: whatever a caller sends, the answer is a JSON 4xx with a code, and nothing is stored.

Each of these inputs once gave a 500 (or stored what it should not): non-ASCII digits and signatures in
signed codes and gateway headers, times and days beyond any calendar, NUL and other invisible
characters in names, ids beyond the integer columns, and a JSON body that names a key twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from factories import api_error, build_venue, signed
from sqlalchemy import text

from mallapp.api.core import transaction
from mallapp.db import MAX_BIG_ID, MAX_ID
from mallapp.domain import merchants, venue_admin

M, OPS, ME = "/api/v1/merchant", "/api/v1/ops", "/api/v1/me"


def _json_4xx(response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True))
    assert response.is_json
    return response.get_json()["error"]


# --- signed codes: member cards and coupon QR codes ------------------------------------------------

@pytest.mark.parametrize("code", [
    "MC1.١٢.9999999999.AAAAAAAAAAAAAAAAAAAA",  # Arabic-Indic digits: isdigit() says yes, int() reads them
    "MC1.²³.9999999999.AAAAAAAAAAAAAAAAAAAA",  # superscripts: isdigit() says yes, int() raises
    "MC1.1.9999999999.ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ",  # a non-ASCII signature: compare_digest raised TypeError
    "MC1.1.9999999999.签名签名签名签名签名签名签名签名签名签名",
])
def test_a_member_code_with_non_ascii_digits_or_signature_is_not_a_member_code(client, merchant, code):
    response = client.post(f"{M}/purchases", headers=merchant["headers"], json={
        "member_code": code, "amount_fen": 100, "receipt_no": "R-1", "occurred_at": "2026-03-10T02:00:00+00:00"})
    api_error(response, "card.invalid")


@pytest.mark.parametrize("qr", ["CP1.١.ABCDEFGHJK.AAAAAAAAAAAAAAAAAAAA", "CP1.².ABCDEFGHJK.AAAAAAAAAAAAAAAAAAAA",
                                "CP1.1.ABCDEFGHJK.ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ"])
def test_a_coupon_qr_with_non_ascii_digits_or_signature_is_refused(rt, client, merchant, qr):
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Till", floor=1, x=0, y=0, merchant_id=merchant["id"], now=rt.now()).id
    response = client.post(f"{M}/coupons/redeem", headers=merchant["headers"],
                           json={"qr": qr, "store_id": store, "request_id": "till-1"})
    api_error(response, "coupon.invalid_qr")


# --- the gateway's signature headers ---------------------------------------------------------------

@pytest.mark.parametrize(("header", "value", "code"), [
    ("X-Gateway-Timestamp", "²³", "gateway.unsigned"),
    ("X-Gateway-Key-Id", "¹.¹", "gateway.unsigned"),
    ("X-Gateway-Signature", "é" * 64, "gateway.bad_signature"),
])
def test_non_ascii_gateway_headers_are_refused(rt, client, clock, header, value, code):
    venue = build_venue(rt)
    body, headers = signed(venue.gateway_key, {"sightings": []}, clock.now)
    response = client.post("/api/v1/gateway/sightings", data=body, headers={**headers, header: value})
    api_error(response, code)


# --- times and days beyond the calendar ------------------------------------------------------------

def test_a_phone_batch_time_beyond_any_clock_is_refused(client, member):
    for ts in ("1" + "0" * 400, "-1"):
        response = client.post("/api/v1/sightings", headers={**member["headers"], "Content-Type": "application/json"},
                               data=f'{{"beacons": [], "ts": {ts}}}')
        api_error(response, "request.invalid")


def test_a_gateway_sighting_time_beyond_any_clock_is_refused(rt, client, clock):
    venue = build_venue(rt)
    for t in (10**400, -1):  # 10**400 reads as an infinite float
        sighting = {"t": t, "kind": "tlm", "rssi": -60, "address": "aa:bb:cc:dd:ee:ff"}
        body, headers = signed(venue.gateway_key, {"sightings": [sighting]}, clock.now)
        api_error(client.post("/api/v1/gateway/sightings", data=body, headers=headers), "request.invalid")


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1999-12-31", "2101-01-01"])
def test_days_beyond_the_sane_range_are_refused_on_the_reservation_routes(rt, client, member, merchant, day):
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Noodles", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
    api_error(client.get(f"/api/v1/stores/{store}/reservation-slots", query_string={"date": day},
                         headers=member["headers"]), "request.invalid_query")
    api_error(client.get(f"{M}/stores/{store}/reservation-slots", query_string={"date": day},
                         headers=merchant["headers"]), "request.invalid_query")
    api_error(client.get(f"{M}/stores/{store}/reservations", query_string={"date": day},
                         headers=merchant["headers"]), "request.invalid_query")
    published = client.post(f"{M}/stores/{store}/reservation-slots", headers=merchant["headers"], json={
        "first_day": day, "times": ["12:00"], "duration_minutes": 60,
        "bands": [{"min_party": 1, "max_party": 4, "tables": 2}]})
    api_error(published, "request.invalid")


# --- names, titles, labels and reasons -------------------------------------------------------------

HOSTILE_TEXT = ["Ada\x00", "Ada\x07", "\u202eadA", "Ada\u2066x\u2069", "\u200b\u200b", " \u200d ", "\ufeff",
                "Ada\x9b"]


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_a_nickname_with_control_bidi_or_only_invisible_characters_is_refused(client, member, value):
    response = client.patch(ME, json={"nickname": value}, headers=member["headers"])
    api_error(response, "request.invalid")
    assert client.get(ME, headers=member["headers"]).get_json()["nickname"] != value


def test_printable_names_in_any_script_are_kept(client, member):
    for name in ("阿达", "Zoë ☕", "أدا"):
        response = client.patch(ME, json={"nickname": name}, headers=member["headers"])
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["nickname"] == name


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_a_queue_band_label_a_store_name_and_a_cancel_reason_refuse_hostile_text(rt, client, merchant, ops_admin,
                                                                               value):
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Noodles", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
    bands = client.put(f"{M}/stores/{store}/queue/bands", headers=merchant["headers"],
                       json={"bands": [{"code": "A", "label": value, "min_party": 1, "max_party": 2}]})
    api_error(bands, "request.invalid")
    cancel = client.post(f"{M}/reservations/1/cancel", headers=merchant["headers"], json={"reason": value})
    api_error(cancel, "request.invalid")
    named = client.post(f"{OPS}/stores", headers=ops_admin["headers"], json={"name": value, "floor": 1, "x": 0, "y": 0})
    api_error(named, "request.invalid")
    deal = client.post(f"{M}/deals", headers=merchant["headers"], json={"title": value})
    error = api_error(deal, "request.invalid")
    assert any(p["field"] == "title" for p in error["details"]["problems"])


# --- ids beyond the integer columns ----------------------------------------------------------------

HUGE_IDS = [2**31, 2**63 - 1, 2**63, 10**30]


@pytest.mark.parametrize("row_id", HUGE_IDS)
def test_huge_path_and_query_ids_are_not_found_or_refused(rt, client, member, merchant, row_id):
    for response in (client.delete(f"{ME}/follows/{row_id}", headers=member["headers"]),
                     client.put(f"{ME}/follows/{row_id}", headers=member["headers"]),
                     client.patch(f"{M}/staff/{row_id}", json={"active": False}, headers=merchant["headers"]),
                     client.post(f"{ME}/inbox/{row_id}/read", headers=member["headers"]),
                     client.get(f"{ME}/reservations/{row_id}", headers=member["headers"])):
        error = _json_4xx(response)
        assert response.status_code == 404, error
    history = client.get(f"{ME}/points", query_string={"before": str(row_id)}, headers=member["headers"])
    if row_id <= MAX_BIG_ID:  # points entries have 64-bit ids
        assert history.status_code == 200, history.get_json()
    else:
        api_error(history, "request.invalid_query")


def test_path_ids_stop_at_their_columns_range(client, member):
    """A 32-bit id past 2**31-1, a 64-bit one past 2**63-1: no route, whatever method the path has."""
    assert client.delete(f"{ME}/follows/{MAX_ID}", headers=member["headers"]).status_code == 204  # idempotent
    assert client.get(f"{ME}/reservations/{MAX_BIG_ID}", headers=member["headers"]).status_code == 404
    api_error(client.get(f"{ME}/reservations/{MAX_BIG_ID}", headers=member["headers"]), "reservation.not_found")
    for path in (f"{ME}/follows/{MAX_ID + 1}", f"{ME}/reservations/{MAX_BIG_ID + 1}", f"{ME}/follows/0",
                 f"{ME}/follows/007"):
        response = client.delete(path, headers=member["headers"])
        assert (response.status_code, response.get_json()["error"]["code"]) == (404, "http.not_found"), path


def test_non_ascii_digits_in_a_path_id_match_no_route(client, member):
    response = client.delete(f"{ME}/follows/١", headers=member["headers"])
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "http.not_found"


def test_every_id_in_a_path_is_bounded(app, client, member, merchant, ops_admin):
    """Every <int:...> route, with an id past each integer type: never a 5xx."""
    headers = {"member": member["headers"], "merchant": merchant["headers"],
               "merchant_manager": merchant["headers"], "ops": ops_admin["headers"],
               "ops_admin": ops_admin["headers"]}
    checked = 0
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is None:  # a console page: its id only reaches the API calls its script makes, checked here
            continue
        for row_id in HUGE_IDS:
            path = rule.rule
            for arg in rule.arguments:
                path = path.replace(f"<int:{arg}>", str(row_id))
            response = client.open(path, method=op.method, headers=headers.get(op.auth or "", {}),
                                   json={} if op.body is not None else None)
            assert response.status_code < 500, (path, response.get_data(as_text=True))
            assert response.status_code == 204 or response.is_json, path
            checked += 1
    assert checked > 50


# --- duplicate keys ---------------------------------------------------------------------------------

def test_a_body_with_a_duplicate_key_is_refused_and_nothing_is_booked(client, merchant, member, card):
    raw = (f'{{"member_code": {json.dumps(card)}, "amount_fen": 100, "receipt_no": "R-dup", '
           '"occurred_at": "2026-03-10T02:00:00+00:00", "amount_fen": 90000000}')
    response = client.post(f"{M}/purchases", data=raw, headers={**merchant["headers"],
                                                               "Content-Type": "application/json"})
    error = api_error(response, "request.invalid")
    assert error["details"]["problems"] == [{"field": "amount_fen", "problem": "duplicate key"}]
    assert client.get(ME, headers=member["headers"]).get_json()["points"]["balance"] == 0


def test_a_duplicate_key_in_a_nested_object_is_refused(client, merchant):
    raw = '{"title": "Half price", "targeting": {"store_ids": [1], "store_ids": [2]}}'
    response = client.post(f"{M}/deals", data=raw, headers={**merchant["headers"], "Content-Type": "application/json"})
    api_error(response, "request.invalid")


def test_a_body_nested_beyond_any_parser_is_malformed(client, merchant):
    raw = "[" * 30_000 + "]" * 30_000
    response = client.post(f"{M}/purchases", data=raw, headers={**merchant["headers"],
                                                               "Content-Type": "application/json"})
    api_error(response, "request.malformed_json")


# --- deals target only the merchant's own places ----------------------------------------------------

def _deal(client, merchant, store: int, **targeting: list[int]):
    return client.post(f"{M}/deals", headers=merchant["headers"], json={
        "title": "Half price", "store_id": store, "starts_at": "2026-03-11T00:00:00+00:00",
        "ends_at": "2026-03-20T00:00:00+00:00", "quota": 10, "benefit": {"kind": "percent_off", "percent": 50},
        "targeting": targeting})


def test_a_deal_targets_only_the_merchants_own_stores_items_and_store_zones(rt, client, merchant):
    now = rt.now()
    square = [[0, 0], [1, 0], [1, 1]]
    with rt.sessions.begin() as s:
        mine = venue_admin.create_store(s, name="Mine", floor=1, x=0, y=0, merchant_id=merchant["id"], now=now).id
        rival, _ = merchants.create(s, "Rival", now)
        theirs = venue_admin.create_store(s, name="Theirs", floor=1, x=5, y=0, merchant_id=rival.id, now=now).id
        my_item = venue_admin.create_sale_item(s, mine, name="Beans", now=now).id
        their_item = venue_admin.create_sale_item(s, theirs, name="Tea", now=now).id
        my_zone = venue_admin.create_zone(s, name="Mine", kind="store", floor=1, polygon=square, store_id=mine,
                                          now=now).id
        their_zone = venue_admin.create_zone(s, name="Theirs", kind="store", floor=1, polygon=square,
                                             store_id=theirs, now=now).id
        hall = venue_admin.create_zone(s, name="Hall", kind="entrance", floor=1, polygon=square, now=now).id
    for targeting in ({"store_ids": [mine, theirs]}, {"sale_item_ids": [their_item]}, {"zone_ids": [their_zone]},
                      {"zone_ids": [hall]}):
        error = api_error(_deal(client, merchant, mine, **targeting), "deal.target_not_yours")
        assert error["details"]["ids"] == [i for ids in targeting.values() for i in ids if i != mine]
    created = _deal(client, merchant, mine, store_ids=[mine], sale_item_ids=[my_item], zone_ids=[my_zone])
    assert created.status_code == 201, created.get_json()
    patched = client.patch(f"{M}/deals/{created.get_json()['id']}", headers=merchant["headers"],
                           json={"targeting": {"store_ids": [theirs]}})
    api_error(patched, "deal.target_not_yours")


# --- the logs hold no SQL parameters ----------------------------------------------------------------

def test_a_database_error_logs_no_parameter_value(app, client, caplog):
    secret = "+8613912345678"

    def failing():
        with transaction() as session:
            session.execute(text("SELECT * FROM no_such_table WHERE phone = :phone"), {"phone": secret})

    app.add_url_rule("/api/v1/test-db-error", "test_db_error", failing)
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/test-db-error")
    assert response.status_code == 500
    logged = "\n".join(r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
                       for r in caplog.records)
    assert "no_such_table" in logged  # the error is logged, with its statement
    assert secret not in logged


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_a_purchase_time_at_the_ends_of_the_calendar_is_refused(client, merchant, card, when):
    response = client.post(f"{M}/purchases", headers=merchant["headers"], json={
        "member_code": card, "amount_fen": 100, "receipt_no": "R-far", "occurred_at": when})
    _json_4xx(response)
