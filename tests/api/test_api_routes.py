"""GET /api/v1/routes on a graph imported through the ops API (factories.small_graph): places, profiles, languages,
the member's position and car, and every refusal (docs/wayfinding.md, "Routes")."""

from __future__ import annotations

import pytest
from factories import (
    api_error,
    build_venue,
    parkcore_car_park,
    parkcore_parked_car,
    reads_english,
    small_graph,
)
from sqlalchemy import select

from mallapp.domain import floors
from mallapp.domain.parking.models import ParkingBay, ParkingSession
from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState
from mallapp.domain.proximity.position import current_position, position_engine, state_key
from mallapp.domain.venue import load_registry
from mallapp.domain.wayfinding.graph import STEPPED

ROUTES, GRAPH = "/api/v1/routes", "/api/v1/ops/wayfinding/graph"


@pytest.fixture
def mall(rt, client, ops_admin):
    """The venue (its coffee shop is unit L1-02, the door 1-door), a car park whose bay B1-C001 stands by B1-j1, and
    the small graph imported."""
    venue = build_venue(rt)
    park = parkcore_car_park(rt)
    with rt.sessions.begin() as s:
        bay = s.scalar(select(ParkingBay).where(ParkingBay.car_park_id == park, ParkingBay.code == "B1-C001"))
        bay.x, bay.y = 27.0, -10.0
    imported = client.put(GRAPH, json=small_graph(), headers=ops_admin["headers"])
    assert imported.status_code == 200, imported.get_json()
    return {"venue": venue, "park": park}


def _route(client, frm: str, to: str, profile: str = "fastest", headers=None, **params):
    return client.get(ROUTES, query_string={"from": frm, "to": to, "profile": profile, **params}, headers=headers or {})


def _ok(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_from_a_store_to_the_nearest_toilet_the_fastest_rides_the_escalator_in_chinese(client, mall):
    body = _ok(_route(client, f"store:{mall['venue'].store}", "amenity:toilets"))
    assert body["locale"] == "zh-CN" and body["profile"] == "fastest"
    assert [s["text"] for s in body["steps"]] == [
        "从Starlight Coffee出发（1楼）", "步行约15米，到扶梯", "乘扶梯上到2楼", "步行约15米", "到达洗手间"]
    assert [leg["floor_name"] for leg in body["legs"]] == ["L1", "L2"]
    assert body["legs"][0]["polyline"] == [[20.0, 4.0], [20.0, 0.0], [10.0, 0.0]]
    change = body["legs"][0]["change"]
    assert (change["kind"], change["direction"], change["to_floor"], change["to_floor_name"]) == ("escalator", "up", 2,
                                                                                                  "L2")
    assert body["legs"][-1]["polyline"][-1] == [5.0, 0.0]  # the toilets
    assert body["start"] == {"floor": 1, "floor_name": "L1", "x": 20.0, "y": 4.0}
    rides = [leg["change"]["distance_m"] for leg in body["legs"] if leg["change"]]
    assert body["distance_m"] == pytest.approx(sum(leg["distance_m"] for leg in body["legs"]) + sum(rides), abs=0.1)
    assert body["minutes"] >= 1 and body["summary"].startswith("全程约")


def test_step_free_takes_the_lift_never_stairs_or_escalators_and_says_so_in_english(client, mall):
    body = _ok(_route(client, f"store:{mall['venue'].store}", "amenity:toilets", "step_free",
                      headers={"Accept-Language": "en-GB,en;q=0.9"}))
    assert body["locale"] == "en"
    changes = [leg["change"]["kind"] for leg in body["legs"] if leg["change"]]
    assert changes == ["lift"] and not set(changes) & STEPPED
    texts = [s["text"] for s in body["steps"]]
    assert texts[0] == "Start at Starlight Coffee (L1)" and "Take the lift up to L2" in texts
    assert "Walk about 9 m to Lift 1" in texts and texts[-1] == "Arrive at the toilets"


def test_to_my_car_goes_down_to_the_car_park_and_ends_at_the_bay(client, rt, mall, member):
    client.post("/api/v1/me/plates", json={"plate": "沪A12345"}, headers=member["headers"])
    session_id = parkcore_parked_car(rt, mall["park"], "沪A12345", member_id=member["member"]["id"])
    with rt.sessions.begin() as s:
        row = s.get(ParkingSession, session_id)
        row.bay_code, row.bay_source = "B1-C001", "typed"
    body = _ok(_route(client, f"store:{mall['venue'].store}", "car", headers=member["headers"]))
    texts = [s["text"] for s in body["steps"]]
    assert "乘电梯下到B1层" in texts and texts[-1] == "到达您的车位B1-C001"
    assert body["legs"][-1]["floor_name"] == "B1" and body["legs"][-1]["polyline"][-1] == [27.0, -10.0]
    assert body["end"] == {"floor": -1, "floor_name": "B1", "x": 27.0, "y": -10.0}

    reads_english(rt, member["member"]["id"])  # the member's language, unless lang says otherwise
    assert _ok(_route(client, f"store:{mall['venue'].store}", "car", headers=member["headers"]))["steps"][-1]["text"] \
        == "Arrive at your car, bay B1-C001"
    assert _ok(_route(client, f"store:{mall['venue'].store}", "car", headers=member["headers"], lang="zh-CN"))[
        "locale"] == "zh-CN"

    back = _ok(_route(client, "bay:b1-c001", f"item:{mall['venue'].item}", headers=member["headers"]))
    assert back["steps"][0]["text"] == "Start at bay B1-C001 (B1)"
    assert back["steps"][-1]["text"] == "Arrive at Starlight Coffee, unit L1-02: Winter blend is inside"


def _heard(rt, beacons: dict[str, int], member_id: int, readings: dict[str, int], at: float) -> None:
    """The worker's saved state of a member who heard the venue's beacons (``{name: rssi}``) until ``at``."""
    with rt.sessions.begin() as s:
        engine = Engine(EngineConfig.from_settings(rt.settings.beacons), load_registry(s))
    state = MemberState()
    for k in range(3):
        for name, rssi in readings.items():
            engine.observe(state, beacons[name], rssi + k, at - 2 + k)
    rt.redis.set(state_key(member_id), b"7|" + state.to_bytes())


def test_from_me_starts_at_my_estimated_position_and_needs_a_recent_one(client, rt, mall, member, clock):
    member_id = member["member"]["id"]
    refused = _route(client, "me", "amenity:toilets", headers=member["headers"])
    assert api_error(refused, "routes.no_position")

    _heard(rt, mall["venue"].beacons, member_id, {"store": -60, "item": -70, "entrance": -85}, rt.now().timestamp())
    with rt.sessions.begin() as s:
        floor, x, y = current_position(rt.redis, position_engine(s, rt.settings.beacons), member_id, rt.now().timestamp())
    assert floor == 1 and 0 <= x <= 25 and y == pytest.approx(0)
    body = _ok(_route(client, "me", "amenity:toilets", headers=member["headers"]))
    assert body["start"]["floor"] == 1 and body["start"]["x"] == pytest.approx(x)
    assert body["legs"][0]["polyline"][0] == [round(x, 2), round(y, 2)]
    assert body["steps"][0]["text"] == "从您当前的位置出发（1楼）"

    clock.advance(seconds=rt.settings.beacons.zones.exit_timeout_s + 5)  # nothing heard since: gone
    assert api_error(_route(client, "me", "amenity:toilets", headers=member["headers"]), "routes.no_position")


def test_from_me_the_position_stays_on_the_floor_ops_outlined(client, rt, mall, member):
    member_id = member["member"]["id"]
    _heard(rt, mall["venue"].beacons, member_id, {"store": -60, "item": -70, "entrance": -85}, rt.now().timestamp())
    with rt.sessions.begin() as s:
        assert current_position(rt.redis, position_engine(s, rt.settings.beacons), member_id, rt.now().timestamp())[2] < 1
        # The floor as ops outline it starts 3 m north of where the readings alone put her (y = 0).
        floors.put_floor(s, 1, "一层", "Ground floor", [[0, 3], [60, 3], [60, 30], [0, 30]], rt.now())
    with rt.sessions.begin() as s:
        floor, x, y = current_position(rt.redis, position_engine(s, rt.settings.beacons), member_id, rt.now().timestamp())
    assert floor == 1 and y >= 3


def test_from_me_follows_a_floor_outline_ops_draw_after_an_earlier_route(client, rt, mall, member, ops_admin):
    # The API keeps its position engine per venue version: an outline drawn since must still be used.
    _heard(rt, mall["venue"].beacons, member["member"]["id"], {"store": -60, "item": -70, "entrance": -85},
           rt.now().timestamp())
    assert _ok(_route(client, "me", "amenity:toilets", headers=member["headers"]))["start"]["y"] < 1
    drawn = client.put("/api/v1/ops/floors/1", headers=ops_admin["headers"], json={
        "name": "一层", "name_en": "Ground floor", "outline": [[0, 3], [60, 3], [60, 30], [0, 30]]})
    assert drawn.status_code == 200, drawn.get_json()
    assert _ok(_route(client, "me", "amenity:toilets", headers=member["headers"]))["start"]["y"] >= 3


def test_me_and_car_need_a_member_token_and_the_rest_is_public(client, mall):
    assert api_error(_route(client, "me", "amenity:toilets"), "auth.required")
    assert api_error(_route(client, f"store:{mall['venue'].store}", "car"), "auth.required")
    assert _route(client, "node:1-entrance", "node:B1-j1").status_code == 200


def test_without_a_parked_car_with_a_bay_there_is_no_car_to_go_to(client, rt, mall, member):
    assert api_error(_route(client, "node:1-j1", "car", headers=member["headers"]), "routes.no_car")
    client.post("/api/v1/me/plates", json={"plate": "沪A12345"}, headers=member["headers"])
    parkcore_parked_car(rt, mall["park"], "沪A12345", member_id=member["member"]["id"])  # parked, bay unknown
    assert api_error(_route(client, "node:1-j1", "car", headers=member["headers"]), "routes.no_car")


def test_an_unreachable_destination_is_a_clear_422(client, ops_admin, mall):
    closed = client.patch(f"{GRAPH}/edges/lift-1-2", json={"closed": True}, headers=ops_admin["headers"])
    assert closed.status_code == 200, closed.get_json()
    refused = _route(client, f"store:{mall['venue'].store}", "amenity:toilets", "step_free")
    assert api_error(refused, "routes.unreachable")
    assert refused.get_json()["error"]["details"] == {"profile": "step_free"}
    # The fastest profile still has the stairs and the escalator; the compiled graph followed the new version.
    assert _ok(_route(client, f"store:{mall['venue'].store}", "amenity:toilets"))["graph_version"] == 2


@pytest.mark.parametrize(("frm", "to", "code"), [
    ("store:999", "amenity:toilets", "routes.store_not_found"),
    ("store:9999999999", "amenity:toilets", "routes.store_not_found"),
    ("bay:B9-C999", "amenity:toilets", "routes.bay_not_found"),
    ("bay:999", "amenity:toilets", "routes.bay_not_found"),
    ("node:nowhere", "amenity:toilets", "routes.node_not_found"),
    ("node:1-j1", "item:999", "routes.item_not_found"),
    ("node:1-j1", "store:0", "routes.store_not_found"),
])
def test_an_unknown_place_is_a_404_with_its_own_code(client, mall, frm, to, code):
    assert api_error(_route(client, frm, to), code)


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "shop:1", "to": "car"}, "from"),
    ({"from": "store:1", "to": "amenity:bank"}, "to"),
    ({"from": "store:x", "to": "car"}, "from"),
    ({"from": "store:1", "to": "car", "profile": "shortest"}, "profile"),
    ({"to": "car"}, "from"),
])
def test_a_malformed_place_or_profile_is_a_400_naming_the_field(client, mall, params, field):
    response = client.get(ROUTES, query_string=params)
    assert api_error(response, "request.invalid_query")
    assert field in {p["field"] for p in response.get_json()["error"]["details"]["problems"]}


def test_before_any_graph_is_imported_there_is_no_route(client, rt):
    venue = build_venue(rt)
    assert api_error(_route(client, f"store:{venue.store}", "amenity:toilets"), "routes.no_graph")
