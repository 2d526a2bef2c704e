"""Operations staff sign in, edit the venue, watch the beacon fleet, presence and footfall."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from mallapp.api.ops import ZoneKind
from mallapp.domain import auth, members, ops, venue
from mallapp.domain.proximity import history, live
from mallapp.errors import Unauthorized
from mallapp.settings import DEMO_SETTINGS_FILE

API = "/api/v1/ops"
UUID = "fda50693-a4e2-4fb1-afcf-c6eb07647825"
SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]
MALLAPP = str(Path(sys.executable).with_name("mallapp"))
_REAL_SCRYPT_N = auth.SCRYPT["n"]


pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    return error


class Ops:
    """Calls the ops API as one user and checks the status of each call."""

    def __init__(self, client, user):
        self.client, self.headers = client, user["headers"]

    def call(self, method: str, path: str, status: int | None = None, **kwargs):
        response = self.client.open(API + path, method=method, headers=self.headers, **kwargs)
        if status is not None:
            assert response.status_code == status, response.get_data(as_text=True)
        return response

    def get(self, path, status=200, **query):
        return self.call("GET", path, status, query_string=query).get_json()

    def post(self, path, body=None, status=201):
        return self.call("POST", path, status, json=body if body is not None else {}).get_json()

    def patch(self, path, body, status=200):
        return self.call("PATCH", path, status, json=body).get_json()

    def delete(self, path, status=200):
        return self.call("DELETE", path, status).get_json()


@pytest.fixture
def admin(client, ops_admin) -> Ops:
    return Ops(client, ops_admin)


@pytest.fixture
def viewer(client, ops_viewer) -> Ops:
    return Ops(client, ops_viewer)


def _zone(admin: Ops, **fields):
    return admin.post("/zones", {"name": "Atrium", "kind": "area", "floor": 1, "polygon": SQUARE, **fields})


def _store(admin: Ops, **fields):
    return admin.post("/stores", {"name": "Starlight Coffee", "floor": 1, "x": 5.0, "y": 5, **fields})


def _beacon(admin: Ops, status=201, **fields):
    body = {"uuid": UUID, "major": 1, "minor": 1, "floor": 1, "x": 1.5, "y": 2, **fields}
    return admin.call("POST", "/beacons", status, json=body).get_json()


# --- sign-in and who may call what --------------------------------------------------------------------

def test_sign_in_issues_a_token_for_the_users_role(client, ops_viewer, rt):
    response = client.post(f"{API}/auth", json={"username": " ops-viewer ", "password": ops_viewer["password"]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token"].startswith(ops.TOKEN_PREFIX) and body["token"] != ops_viewer["token"]
    assert (body["role"], body["username"], body["token_type"]) == ("viewer", "ops-viewer", "Bearer")
    assert body["expires_in"] == rt.settings.auth.token_ttl_s


def test_wrong_password_and_unknown_user_get_the_same_401(client, ops_admin):
    for username, password in (("ops-admin", "not-the-password"), ("nobody", ops_admin["password"])):
        response = client.post(f"{API}/auth", json={"username": username, "password": password})
        _error(response, 401, "ops.bad_credentials")
    _error(client.post(f"{API}/auth", json={"username": "ops-admin"}), 400, "request.invalid")


@pytest.mark.parametrize("settings_overrides", [{"auth": {"sign_in_attempts": 2}}])
def test_an_ops_username_is_locked_after_too_many_wrong_passwords(client, ops_admin):
    for _ in range(2):
        _error(client.post(f"{API}/auth", json={"username": "ops-admin", "password": "not-the-password"}), 401,
               "ops.bad_credentials")
    right = {"username": "ops-admin", "password": ops_admin["password"]}
    _error(client.post(f"{API}/auth", json=right), 429, "auth.too_many_attempts")


def test_logout_revokes_the_token(admin):
    admin.get("/zones")
    admin.call("POST", "/auth/logout", 204)
    _error(admin.call("GET", "/zones"), 401, "auth.invalid_token")


def test_viewer_reads_but_cannot_write(admin, viewer):
    zone = _zone(admin)
    gateway = admin.post("/gateways", {"name": "G1", "floor": 1, "x": 0, "y": 0})
    for path in ("/zones", f"/zones/{zone['id']}", "/stores", "/beacons", "/gateways", "/presence", "/footfall",
                 "/floors"):
        viewer.get(path)
    viewer.get("/floor-plan", floor=1)
    refused = [viewer.call("POST", "/zones", json={"name": "X", "kind": "area", "floor": 1, "polygon": SQUARE}),
               viewer.call("PATCH", f"/zones/{zone['id']}", json={"name": "Y"}),
               viewer.call("DELETE", f"/zones/{zone['id']}"),
               viewer.call("POST", f"/gateways/{gateway['id']}/key")]
    for response in refused:
        _error(response, 403, "ops.admin_required")
    assert admin.get(f"/zones/{zone['id']}")["name"] == "Atrium"


def test_member_tokens_merchant_keys_and_no_token_are_refused(client, member, merchant):
    for headers in (member["headers"], merchant["headers"]):
        _error(client.get(f"{API}/zones", headers=headers), 403, "auth.wrong_caller")
        _error(client.post(f"{API}/zones", json={}, headers=headers), 403, "auth.wrong_caller")
    _error(client.get(f"{API}/beacons"), 401, "auth.required")
    _error(client.get(f"{API}/beacons", headers={"Authorization": "Bearer ot_forged"}), 401, "auth.invalid_token")


# --- zones -------------------------------------------------------------------------------------------

def test_zone_lifecycle_keeps_deactivated_zones_readable(admin):
    store = _store(admin)
    zone = _zone(admin, name="Starlight front", kind="store", store_id=store["id"], dwell_seconds=30, enter_m=3.5)
    assert (zone["kind"], zone["store_id"], zone["polygon"], zone["active"]) == ("store", store["id"], SQUARE, True)
    upstairs = _zone(admin, floor=2, polygon=[[0, 0], [4, 0], [2, 3], [0, 0]])  # a closed ring is accepted
    assert upstairs["polygon"] == [[0, 0], [4, 0], [2, 3]]
    assert [z["id"] for z in admin.get("/zones", floor=2)["zones"]] == [upstairs["id"]]

    changed = admin.patch(f"/zones/{zone['id']}", {"name": "Starlight", "dwell_seconds": None, "enter_m": 4})
    assert (changed["name"], changed["dwell_seconds"], changed["enter_m"]) == ("Starlight", None, 4.0)

    assert admin.delete(f"/zones/{zone['id']}")["active"] is False
    assert [z["id"] for z in admin.get("/zones")["zones"]] == [upstairs["id"]]
    assert len(admin.get("/zones", include_inactive="true")["zones"]) == 2
    assert admin.get(f"/zones/{zone['id']}")["active"] is False
    assert admin.patch(f"/zones/{zone['id']}", {"active": True})["active"] is True


def test_zone_edits_are_validated_with_exact_codes(admin):
    store = _store(admin)
    zone = _zone(admin)
    cases = [
        ({"polygon": [[0, 0], [1, 1]]}, 400, "zone.invalid_polygon"),
        ({"polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}, 400, "zone.invalid_polygon"),  # edges cross
        ({"polygon": [[0, 0], [1, 1], [2, 2]]}, 400, "zone.invalid_polygon"),  # no area
        ({"polygon": [[0, 0], [1, "a"], [2, 2]]}, 400, "request.invalid"),
        ({"polygon": [[0, 0, 0], [1, 0], [1, 1]]}, 400, "request.invalid"),
        ({"polygon": [[0, 0], [1e9, 0], [1, 1]]}, 400, "request.invalid"),
        ({"kind": "store"}, 422, "zone.store_required"),
        ({"kind": "store", "store_id": 999}, 422, "venue.unknown_store"),
        ({"kind": "shop"}, 400, "request.invalid"),
        ({"name": ""}, 400, "request.invalid"),
        ({"name": "bad\x00name"}, 400, "request.invalid"),
        ({"floor": 1.0}, 400, "request.invalid"),
        ({"colour": "red"}, 400, "request.invalid"),
    ]
    base = {"name": "Zone", "kind": "area", "floor": 1, "polygon": SQUARE}
    for change, status, code in cases:
        _error(admin.call("POST", "/zones", json={**base, **change}), status, code)
    _error(admin.call("PATCH", f"/zones/{zone['id']}", json={"kind": "store"}), 422, "zone.store_required")
    _error(admin.call("PATCH", f"/zones/{zone['id']}", json={"name": None}), 400, "request.invalid")
    _error(admin.call("PATCH", f"/zones/{zone['id']}", json={}), 400, "request.invalid")
    store_zone = admin.patch(f"/zones/{zone['id']}", {"kind": "store", "store_id": store["id"]})
    _error(admin.call("PATCH", f"/zones/{store_zone['id']}", json={"store_id": None}), 422, "zone.store_required")
    _error(admin.call("GET", "/zones/999"), 404, "zone.not_found")
    _error(admin.call("GET", f"/zones/{2**31 - 1}"), 404, "zone.not_found")
    _error(admin.call("GET", "/zones/99999999999999"), 404, "http.not_found")  # past the id column: no route
    _error(admin.call("GET", "/zones/abc"), 404, "http.not_found")
    _error(admin.call("GET", "/zones", query_string={"floor": "first"}), 400, "request.invalid_query")


def test_zone_kinds_are_the_venues():
    assert get_args(ZoneKind) == venue.ZONE_KINDS


# --- stores and sale items -----------------------------------------------------------------------------

def test_stores_and_their_sale_items(admin, merchant):
    store = _store(admin, merchant_id=merchant["id"], unit="L1-07", category="cafe")
    assert (store["merchant_id"], store["unit"], store["x"], store["active"]) == (merchant["id"], "L1-07", 5.0, True)
    _error(admin.call("POST", "/stores", json={"name": "X", "floor": 1, "x": 0, "y": 0, "merchant_id": 999}),
           422, "venue.unknown_merchant")
    assert admin.patch(f"/stores/{store['id']}", {"merchant_id": None, "unit": "L1-08"})["merchant_id"] is None

    item = admin.post(f"/stores/{store['id']}/items", {"name": "Spring blend"})
    assert (item["store_id"], item["name"]) == (store["id"], "Spring blend")
    assert admin.patch(f"/items/{item['id']}", {"name": "Summer blend"})["name"] == "Summer blend"
    assert [i["name"] for i in admin.get(f"/stores/{store['id']}/items")["items"]] == ["Summer blend"]
    assert admin.delete(f"/items/{item['id']}")["active"] is False
    assert admin.get(f"/stores/{store['id']}/items")["items"] == []
    assert len(admin.get(f"/stores/{store['id']}/items", include_inactive=1)["items"]) == 1
    _error(admin.call("POST", "/stores/999/items", json={"name": "X"}), 404, "store.not_found")
    _error(admin.call("PATCH", "/items/999", json={"name": "X"}), 404, "sale_item.not_found")

    assert admin.delete(f"/stores/{store['id']}")["active"] is False
    assert admin.get("/stores")["stores"] == []
    _error(admin.call("POST", f"/stores/{store['id']}/items", json={"name": "X"}), 422, "venue.unknown_store")


def test_a_store_or_item_in_use_cannot_be_deactivated(admin):
    store = _store(admin)
    item = admin.post(f"/stores/{store['id']}/items", {"name": "Limited mug"})
    zone = _zone(admin, kind="store", store_id=store["id"])
    beacon = _beacon(admin, sale_item_id=item["id"])
    assert beacon["store_id"] == store["id"]  # a sale item's beacon is its store's

    error = _error(admin.call("DELETE", f"/stores/{store['id']}"), 409, "store.in_use")
    assert error["details"] == {"zone_ids": [zone["id"]], "beacon_ids": [beacon["id"]]}
    _error(admin.call("DELETE", f"/items/{item['id']}"), 409, "sale_item.in_use")

    admin.delete(f"/beacons/{beacon['id']}")
    admin.delete(f"/items/{item['id']}")
    admin.delete(f"/zones/{zone['id']}")
    assert admin.delete(f"/stores/{store['id']}")["active"] is False


# --- beacons -------------------------------------------------------------------------------------------

def test_beacon_registration_normalises_and_validates(admin):
    store, other = _store(admin), _store(admin, name="Harbour Books")
    item = admin.post(f"/stores/{store['id']}/items", {"name": "Limited mug"})
    zone = _zone(admin)
    beacon = _beacon(admin, uuid=UUID.upper(), label="door", zone_id=zone["id"], store_id=store["id"],
                     sale_item_id=item["id"], measured_power=-62)
    assert (beacon["uuid"], beacon["major"], beacon["measured_power"], beacon["label"]) == (UUID, 1, -62, "door")
    assert beacon["problems"] == ["never_seen"] and beacon["health"]["last_seen_at"] is None
    assert admin.get(f"/beacons/{beacon['id']}") == beacon

    cases = [
        ({"uuid": "e2c56db5-dffb-48d2-b060-d0f5a71096e0"}, 422, "beacon.unknown_uuid"),
        ({"uuid": "not-a-uuid"}, 400, "request.invalid"),
        ({"major": 65536}, 400, "request.invalid"),
        ({"minor": -1}, 400, "request.invalid"),
        ({"measured_power": -10}, 400, "request.invalid"),
        ({"major": 2, "zone_id": 999}, 422, "venue.unknown_zone"),
        ({"major": 2, "store_id": 999}, 422, "venue.unknown_store"),
        ({"major": 2, "sale_item_id": 999}, 422, "venue.unknown_sale_item"),
        ({"major": 2, "store_id": other["id"], "sale_item_id": item["id"]}, 422, "beacon.item_not_in_store"),
        ({"uuid": UUID.upper()}, 409, "beacon.duplicate"),
    ]
    for change, status, code in cases:
        body = {"uuid": UUID, "major": 1, "minor": 1, "floor": 1, "x": 0, "y": 0, **change}
        error = _error(admin.call("POST", "/beacons", json=body), status, code)
        if code == "request.invalid":
            assert [p["field"] for p in error["details"]["problems"]] == [next(iter(change))]
    _error(admin.call("PATCH", f"/beacons/{beacon['id']}", json={"store_id": other["id"]}), 422,
           "beacon.item_not_in_store")
    _error(admin.call("PATCH", f"/beacons/{beacon['id']}", json={"major": 7}), 400, "request.invalid")
    _error(admin.call("GET", "/beacons/999"), 404, "beacon.not_found")


def test_a_deactivated_beacon_registered_again_comes_back_replaced(admin):
    zone = _zone(admin)
    beacon = _beacon(admin, zone_id=zone["id"], label="old")
    moved = admin.patch(f"/beacons/{beacon['id']}", {"zone_id": None, "x": 7.25, "label": "moved"})
    assert (moved["zone_id"], moved["x"], moved["label"]) == (None, 7.25, "moved")
    assert admin.delete(f"/beacons/{beacon['id']}")["active"] is False
    assert admin.get("/beacons")["beacons"] == []
    again = _beacon(admin, label="new", floor=2)
    assert (again["id"], again["active"], again["label"], again["floor"]) == (beacon["id"], True, "new", 2)


def _status(rt, beacon_id, **fields):
    with rt.sessions.begin() as session:
        session.add(venue.BeaconStatus(beacon_id=beacon_id, **fields))


def test_fleet_health_lists_problems_first(admin, viewer, rt, clock):
    upstairs = _zone(admin, floor=2)
    ids = {name: _beacon(admin, minor=n, label=name, floor=2 if name == "battery_low" else 1,
                         zone_id=upstairs["id"] if name == "battery_low" else None)["id"]
           for n, name in enumerate(("healthy", "battery_low", "silent", "never_seen", "no_battery_telemetry"))}
    now = clock.now
    _status(rt, ids["healthy"], last_seen_at=now, last_rssi=-70, battery_mv=3000, temperature_c=21.5,
            uptime_s=3600.0, telemetry_at=now)
    _status(rt, ids["battery_low"], last_seen_at=now - timedelta(minutes=5), battery_mv=2400)
    _status(rt, ids["silent"], last_seen_at=now - timedelta(seconds=rt.settings.beacons.health.silent_after_s + 1),
            battery_mv=3000)
    _status(rt, ids["no_battery_telemetry"], last_seen_at=now, battery_mv=0)

    fleet = viewer.get("/beacons")["beacons"]
    assert [(b["label"], b["problems"]) for b in fleet] == [
        ("silent", ["silent"]), ("never_seen", ["never_seen"]), ("battery_low", ["battery_low"]),
        ("healthy", []), ("no_battery_telemetry", [])]
    health = fleet[3]["health"]
    assert (health["last_rssi"], health["battery_mv"], health["temperature_c"], health["uptime_s"]) == \
        (-70, 3000, 21.5, 3600.0)
    assert [b["label"] for b in viewer.get("/beacons", problems_only="true")["beacons"]] == \
        ["silent", "never_seen", "battery_low"]
    assert [b["label"] for b in viewer.get("/beacons", floor=2)["beacons"]] == ["battery_low"]
    assert [b["label"] for b in viewer.get("/beacons", zone_id=upstairs["id"])["beacons"]] == ["battery_low"]

    clock.advance(hours=2)  # nothing heard since: every beacon is silent or never seen
    fleet = viewer.get("/beacons")["beacons"]
    assert [b["id"] for b in fleet] == sorted(ids.values())
    assert fleet[1]["problems"] == ["silent", "battery_low"]


# --- gateways ------------------------------------------------------------------------------------------

def _gateway_headers(key: str, body: bytes, now: datetime) -> dict[str, str]:
    key_id, secret = key.removeprefix(venue.GATEWAY_KEY_PREFIX).rsplit(".", 1)
    nonce, ts = secrets.token_hex(16), int(now.timestamp())
    return {"X-Gateway-Key-Id": key_id, "X-Gateway-Timestamp": str(ts), "X-Gateway-Nonce": nonce,
            "X-Gateway-Signature": venue.batch_signature(secret, ts, nonce, body)}


def _gateway_accepts(rt, key: str) -> bool:
    from mallapp.domain.proximity.ingest import authenticate_gateway

    try:
        with rt.sessions.begin() as session:
            authenticate_gateway(session, rt.redis, rt.settings, rt.secret, _gateway_headers(key, b"[]", rt.now()),
                                 b"[]", rt.now())
    except Unauthorized:
        return False
    return True


def test_gateway_key_is_shown_once_and_rotation_retires_the_old_one(admin, rt):
    zone = _zone(admin)
    gateway = admin.post("/gateways", {"name": "North door", "zone_id": zone["id"], "floor": 1, "x": 2, "y": 3})
    match = re.fullmatch(r"gk_(\d+)\.(\d+)\.[A-Za-z0-9_-]{43}", gateway["key"])
    assert match and (int(match[1]), int(match[2])) == (gateway["id"], 1) == (gateway["id"], gateway["key_version"])
    assert gateway["problems"] == ["never_seen"] and gateway["last_seen_at"] is None
    listed = admin.get("/gateways")["gateways"]
    assert [g["id"] for g in listed] == [gateway["id"]] and "key" not in listed[0]
    assert "key" not in admin.get(f"/gateways/{gateway['id']}")
    assert _gateway_accepts(rt, gateway["key"])

    rotated = admin.post(f"/gateways/{gateway['id']}/key", status=200)
    assert rotated["key_version"] == 2 and rotated["key"] != gateway["key"]
    assert rotated["key"].startswith(f"gk_{gateway['id']}.2.")
    assert not _gateway_accepts(rt, gateway["key"]) and _gateway_accepts(rt, rotated["key"])

    assert admin.patch(f"/gateways/{gateway['id']}", {"name": "North", "zone_id": None})["zone_id"] is None
    _error(admin.call("PATCH", f"/gateways/{gateway['id']}", json={"zone_id": 999}), 422, "venue.unknown_zone")
    assert admin.delete(f"/gateways/{gateway['id']}")["active"] is False
    assert admin.get("/gateways")["gateways"] == []
    assert not _gateway_accepts(rt, rotated["key"])
    _error(admin.call("POST", "/gateways/999/key"), 404, "gateway.not_found")


# --- what ops watches ------------------------------------------------------------------------------------

def test_presence_counts_members_in_the_mall_and_each_zone(viewer, admin, rt):
    atrium, upstairs = _zone(admin), _zone(admin, name="Food court", floor=2)
    for zone_id, member_id in ((live.MALL, 1), (live.MALL, 2), (live.MALL, 3), (atrium["id"], 1),
                               (atrium["id"], 2), (atrium["id"], 2), (upstairs["id"], 3)):
        live.enter(rt.redis, zone_id, member_id)
    body = viewer.get("/presence")
    assert body["mall"] == 3
    assert [(z["zone_id"], z["name"], z["present"]) for z in body["zones"]] == \
        [(atrium["id"], "Atrium", 2), (upstairs["id"], "Food court", 1)]
    assert [z["zone_id"] for z in viewer.get("/presence", floor=2)["zones"]] == [upstairs["id"]]


def test_every_committed_change_bumps_the_registry_version(admin, rt):
    version = venue.registry_version(rt.redis)
    zone = _zone(admin)
    assert venue.registry_version(rt.redis) == version + 1
    _error(admin.call("POST", "/zones", json={"name": "X", "kind": "store", "floor": 1, "polygon": SQUARE}),
           422, "zone.store_required")
    admin.get("/zones")
    assert venue.registry_version(rt.redis) == version + 1  # neither a refused change nor a read
    admin.patch(f"/zones/{zone['id']}", {"name": "Atrium north"})
    _beacon(admin)
    admin.post("/gateways", {"name": "G", "floor": 1, "x": 0, "y": 0})
    assert venue.registry_version(rt.redis) == version + 4
    with rt.sessions.begin() as session:
        assert venue.load_registry(session).zones[zone["id"]].name == "Atrium north"


def test_floor_plan_has_one_floors_zones_stores_beacons_and_gateways(admin, viewer):
    store, _ = _store(admin), _store(admin, name="Upstairs", floor=2)
    zone, _ = _zone(admin, kind="store", store_id=store["id"]), _zone(admin, floor=2)
    beacon, _ = _beacon(admin, zone_id=zone["id"]), _beacon(admin, minor=2, floor=2)
    gateway = admin.post("/gateways", {"name": "G", "floor": 1, "x": 0, "y": 0})
    plan = viewer.get("/floor-plan", floor=1)
    assert plan["floor"] == 1
    assert [z["id"] for z in plan["zones"]] == [zone["id"]] and plan["zones"][0]["polygon"] == SQUARE
    assert [s["id"] for s in plan["stores"]] == [store["id"]]
    assert [(b["id"], b["x"], b["problems"]) for b in plan["beacons"]] == [(beacon["id"], 1.5, ["never_seen"])]
    assert [g["id"] for g in plan["gateways"]] == [gateway["id"]]
    _error(viewer.call("GET", "/floor-plan"), 400, "request.invalid_query")


def test_floors_lists_each_floor_in_use_with_its_name_and_outline(admin, viewer):
    assert viewer.get("/floors") == {"floors": []}
    _zone(admin)
    _zone(admin, name="East wing", polygon=[[10, 0], [20, 0], [20, 4], [10, 4]])
    _zone(admin, name="Inside", polygon=[[2, 2], [3, 2], [3, 3]])  # within the others: no corner of the outline
    _store(admin, name="Downstairs", floor=-1)
    gone = _zone(admin, name="Gone", floor=3)
    admin.call("DELETE", f"/zones/{gone['id']}", 200)
    assert viewer.get("/floors")["floors"] == [
        {"number": -1, "name": "B1", "outline": [], "name_zh": None, "name_en": None, "outline_source": "zones"},
        {"number": 1, "name": "L1", "outline": [[0, 0], [20, 0], [20, 4], [10, 10], [0, 10]], "name_zh": None,
         "name_en": None, "outline_source": "zones"},
    ]


def test_footfall_counts_visits_that_began_in_the_period(admin, viewer, rt, clock):
    atrium, _ = _zone(admin), _zone(admin, name="Quiet corner")
    with rt.sessions.begin() as session:
        alice = members.sign_in(session, openid="o-alice", unionid=None, now=rt.now())[0].id
        bob = members.sign_in(session, openid="o-bob", unionid=None, now=rt.now())[0].id
        today = clock.now - timedelta(hours=1)  # 09:00 in Shanghai
        for member_id, start, minutes in ((alice, today, 10), (alice, today + timedelta(minutes=20), 20),
                                          (bob, today, 30), (bob, today - timedelta(days=1), 5)):
            history.record_zone_visit(session, member_id, atrium["id"], start, start + timedelta(minutes=minutes))

    body = viewer.get("/footfall")
    assert (body["since"], body["until"]) == ("2026-03-10T00:00:00+08:00", "2026-03-11T00:00:00+08:00")
    assert [(z["name"], z["visits"], z["members"], z["mean_dwell_seconds"]) for z in body["zones"]] == \
        [("Atrium", 3, 2, 1200.0), ("Quiet corner", 0, 0, 0.0)]
    week = viewer.get("/footfall", since="2026-03-03T00:00:00+08:00")
    assert week["zones"][0]["visits"] == 4
    # A plain day is that whole mall-local day: since its start, until its end.
    day = viewer.get("/footfall", since="2026-03-10", until="2026-03-10")
    assert (day["since"], day["until"]) == ("2026-03-10T00:00:00+08:00", "2026-03-11T00:00:00+08:00")
    assert day["zones"][0]["visits"] == 3
    days = viewer.get("/footfall", since="2026-03-09", until="2026-03-10T23:00:00+08:00")
    assert (days["since"], days["zones"][0]["visits"]) == ("2026-03-09T00:00:00+08:00", 4)
    _error(viewer.call("GET", "/footfall", query_string={"since": "2026-02-30"}), 400, "request.invalid_query")
    _error(viewer.call("GET", "/footfall", query_string={"since": "2026-03-12T00:00:00Z"}), 400,
           "footfall.invalid_range")
    _error(viewer.call("GET", "/footfall", query_string={"since": "2026-03-10T00:00:00"}), 400,
           "request.invalid_query")
    _error(viewer.call("GET", "/footfall", query_string={"until": "9999-12-31T23:00:00-08:00"}), 400,
           "request.invalid_query")


# --- robustness --------------------------------------------------------------------------------------------

_FIELDS = ["name", "kind", "floor", "polygon", "store_id", "uuid", "major", "minor", "x", "y", "zone_id",
           "sale_item_id", "measured_power", "merchant_id", "active", "dwell_seconds", "enter_m"]
_VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(
    [UUID, "area", "store", 1, SQUARE, [[0, 0], [0, 0], [0, 0]], [[1e308, 0], [0, 1], [1, 1]]])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=8),
       target=st.sampled_from([("POST", "/zones"), ("POST", "/stores"), ("POST", "/beacons"), ("POST", "/gateways"),
                               ("PATCH", "/zones/1"), ("PATCH", "/beacons/1"), ("PATCH", "/stores/1")]))
def test_random_venue_bodies_never_cause_a_server_error(admin, body, target):
    response = admin.call(*target, json=body)
    assert response.status_code < 500, response.get_data(as_text=True)


# --- the command line --------------------------------------------------------------------------------------

def _cli_env(tmp_path: Path, sqlite_template: Path) -> tuple[dict[str, str], str]:
    shutil.copy(sqlite_template, tmp_path / "cli.db")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_")}
    return {**env, "MALL_CONFIG": str(DEMO_SETTINGS_FILE), "MALL_VAR_DIR": str(tmp_path / "var"),
            "MALL_DATABASE_URL": url}, url


def _stored_user(url: str, username: str) -> tuple[str, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT role, password_hash FROM ops_users WHERE username = :u"),
                           {"u": username}).one()
    engine.dispose()
    return row.role, row.password_hash


def test_ops_create_user_prints_a_strong_password_last_and_stores_its_hash(tmp_path, sqlite_template, monkeypatch):
    monkeypatch.setitem(auth.SCRYPT, "n", _REAL_SCRYPT_N)  # the CLI hashes at the real cost
    env, url = _cli_env(tmp_path, sqlite_template)
    done = subprocess.run([MALLAPP, "ops", "create-user", "alice", "--role", "admin"], env=env,
                          capture_output=True, text=True, check=True)
    password = done.stdout.strip().splitlines()[-1]
    assert len(password) >= 20 and re.fullmatch(r"[A-Za-z0-9_-]+", password)
    role, stored = _stored_user(url, "alice")
    assert role == "admin" and password not in stored and auth.check_password(password, stored)


def test_ops_create_user_reads_a_password_from_stdin_and_refuses_bad_input(tmp_path, sqlite_template, monkeypatch):
    from click.testing import CliRunner

    from mallapp.cli import main

    env, url = _cli_env(tmp_path, sqlite_template)
    runner = CliRunner(env={k: env[k] for k in ("MALL_CONFIG", "MALL_VAR_DIR", "MALL_DATABASE_URL")})
    typed = runner.invoke(main, ["ops", "create-user", "bob", "--role", "viewer", "--password-stdin"],
                          input="a long enough passphrase\n")
    assert typed.exit_code == 0 and "passphrase" not in typed.output, typed.output
    role, stored = _stored_user(url, "bob")
    assert role == "viewer" and auth.check_password("a long enough passphrase", stored)

    for args, stdin, message in ((["carol", "--role", "viewer", "--password-stdin"], "short\n", "12 characters"),
                                 (["bob", "--role", "admin"], None, "already exists"),
                                 (["dave", "--role", "root"], None, "Invalid value"),
                                 (["erin"], None, "Missing option '--role'")):
        refused = runner.invoke(main, ["ops", "create-user", *args], input=stdin)
        assert refused.exit_code != 0 and message in refused.output, refused.output


def test_cli_users_can_sign_in(client, rt):
    password = auth.generate_password()
    with rt.sessions.begin() as session:
        ops.create_user(session, "erin", "viewer", password, datetime(2026, 1, 1, tzinfo=UTC))
    response = client.post(f"{API}/auth", json={"username": "erin", "password": password})
    assert response.status_code == 200 and response.get_json()["role"] == "viewer"
