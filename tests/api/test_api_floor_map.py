"""The floor plan for shoppers (public): the floors in use and one floor's map, their languages, what they leave
out (inactive stores, closed edges, anything ops-only), the 404 and the ETag (docs/directory.md)."""

from __future__ import annotations

import json

import pytest
from factories import api_error, build_venue, small_graph

from mallapp.domain.floors import put_floor
from mallapp.domain.parking.models import CarPark, ParkingLevel
from mallapp.domain.venue import Store

GRAPH = "/api/v1/ops/wayfinding/graph"


@pytest.fixture
def mall(rt, client, ops_admin):
    """The small graph (floors B1, 1, 2), the proximity venue's coffee shop on 1 with its store zone, an inactive
    store on 2, floor 1 named by ops, a car-park level on B1 named "地下一层 Basement 1"."""
    venue = build_venue(rt)
    now = rt.now()
    with rt.sessions.begin() as s:
        put_floor(s, 1, "一层", "Ground floor", [[0, -10], [60, -10], [60, 30], [0, 30]], now)
        s.get(Store, venue.store).name_en = "Starlight Coffee"
        s.get(Store, venue.store).name = "星光咖啡"
        s.get(Store, venue.store).hours = {d: [["10:00", "22:00"]] for d in
                                           ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        gone = Store(name="关门店", name_en="Closed shop", unit="L2-09", category="fashion", floor=2, x=3, y=3,
                     active=False, created_at=now)
        park = CarPark(code="P1", name="Car park", vendor_park_code="P001", fee_source="carpark", tariff={}, rules={},
                       active=True, created_at=now, updated_at=now)
        s.add_all([gone, park])
        s.flush()
        s.add(ParkingLevel(car_park_id=park.id, code="B1", name="地下一层 Basement 1", floor=-1, spaces=10))
    assert client.put(GRAPH, json=small_graph(), headers=ops_admin["headers"]).status_code == 200
    return venue


def test_the_floors_are_listed_lowest_first_with_names_kinds_outlines_and_counts(client, mall):
    body = client.get("/api/v1/floors").get_json()
    assert body["locale"] == "zh-CN"
    floors = {f["number"]: f for f in body["floors"]}
    assert [f["number"] for f in body["floors"]] == [-1, 1, 2]
    assert floors[1] == {"number": 1, "floor_name": "L1", "name": "一层", "kind": "mall",
                         "outline": [[0, -10], [60, -10], [60, 30], [0, 30]], "outline_source": "floor",
                         "stores": 1, "amenities": 2}  # the entrance (exit) and the lift
    # B1: a car-park level, named from parking_levels; outlined by its graph nodes' hull (two nodes: none)
    assert floors[-1]["kind"] == "carpark" and floors[-1]["name"] == "地下一层" and floors[-1]["floor_name"] == "B1"
    assert floors[-1]["amenities"] == 1 and floors[-1]["stores"] == 0
    # floor 2: nobody named it (the catalogue's default), the hull of its nodes, the inactive store not counted
    assert floors[2]["name"] == "2楼" and floors[2]["outline_source"] == "hull" and floors[2]["stores"] == 0
    assert len(floors[2]["outline"]) >= 3
    english = {f["number"]: f["name"] for f in client.get("/api/v1/floors?lang=en").get_json()["floors"]}
    assert english == {-1: "Basement 1", 1: "Ground floor", 2: "L2"}


def test_a_floor_map_has_stores_amenities_corridors_landings_entrances_and_the_graph_version(client, mall):
    body = client.get("/api/v1/floors/1/map").get_json()
    assert body["floor"]["name"] == "一层" and body["graph_version"] == 1 and body["locale"] == "zh-CN"
    [coffee] = body["stores"]
    assert coffee == {"id": mall.store, "display_name": "星光咖啡", "name": "星光咖啡", "name_en": "Starlight Coffee",
                      "unit": "L1-02", "category": {"code": "cafe", "label": "咖啡茶饮"}, "x": 20.0, "y": 0.0,
                      "outline": [[15, 0], [25, 0], [25, 5]], "open_now": True}
    assert {(a["id"], a["kind"], a["label"]) for a in body["amenities"]} == {("1-entrance", "exit", "出口"),
                                                                              ("1-lift", "lift", "电梯")}
    assert body["entrances"] == [{"id": "1-entrance", "display_name": "南门", "name": "南门",
                                  "name_en": "South entrance", "x": 0.0, "y": -5.0}]
    assert len(body["paths"]) == 6 and {p["kind"] for p in body["paths"]} == {"walk"}
    assert [[0.0, 0.0], [10.0, 0.0]] in [p["coords"] for p in body["paths"]]
    landings = {(g["id"], g["kind"]): g for g in body["landings"]}
    assert set(landings) == {("1-lift", "lift"), ("1-stairs", "stairs"), ("1-esc", "escalator")}
    assert landings[("1-lift", "lift")]["floors"] == [-1, 2]
    assert landings[("1-lift", "lift")]["up"] and landings[("1-lift", "lift")]["down"]
    assert landings[("1-esc", "escalator")]["up"] and not landings[("1-esc", "escalator")]["down"]
    upstairs = {(g["id"], g["kind"]): g for g in client.get("/api/v1/floors/2/map").get_json()["landings"]}
    escalator = upstairs[("2-esc", "escalator")]  # it only arrives here: nobody goes down it
    assert escalator["floors"] == [1] and not escalator["up"] and not escalator["down"]


def test_the_map_speaks_the_language_of_lang_accept_language_or_the_member(client, rt, mall, members_api):
    english = client.get("/api/v1/floors/1/map?lang=en").get_json()
    assert english["locale"] == "en" and english["floor"]["name"] == "Ground floor"
    assert english["stores"][0]["display_name"] == "Starlight Coffee"
    assert english["stores"][0]["category"]["label"] == "Cafés & tea"
    assert english["entrances"][0]["display_name"] == "South entrance"
    assert {a["label"] for a in english["amenities"]} == {"Exit", "Lift"}
    header = client.get("/api/v1/floors/B1/map", headers={"Accept-Language": "en-GB,en;q=0.8"}).get_json()
    assert header["floor"]["name"] == "Basement 1" and header["amenities"][0]["label"] == "Car park lift"
    reader = members_api.sign_in(openid="o-floor-en", locale="en")
    assert client.get("/api/v1/floors", headers=reader["headers"]).get_json()["locale"] == "en"


def test_inactive_stores_and_closed_edges_are_left_off_the_map(client, mall, ops_admin):
    before = client.get("/api/v1/floors/2/map").get_json()
    assert before["stores"] == []  # the closed shop on 2 is inactive
    assert client.patch(f"{GRAPH}/edges/2-c1", json={"closed": True}, headers=ops_admin["headers"]).status_code == 200
    after = client.get("/api/v1/floors/2/map").get_json()
    assert after["graph_version"] == before["graph_version"] + 1
    assert len(after["paths"]) == len(before["paths"]) - 1
    assert [[0.0, 0.0], [5.0, 0.0]] not in [p["coords"] for p in after["paths"]]
    # reopened, then the lift between 1 and 2 closed: its landing on 2 goes, the one on 1 leads to B1 only
    assert client.patch(f"{GRAPH}/edges/2-c1", json={"closed": False}, headers=ops_admin["headers"]).status_code == 200
    lift = client.patch(f"{GRAPH}/edges/lift-1-2", json={"closed": True}, headers=ops_admin["headers"])
    assert lift.status_code == 200, lift.get_json()
    upstairs = client.get("/api/v1/floors/2/map").get_json()
    assert len(upstairs["paths"]) == len(before["paths"])
    assert ("2-lift", "lift") not in {(g["id"], g["kind"]) for g in upstairs["landings"]}
    ground = {(g["id"], g["kind"]): g for g in client.get("/api/v1/floors/1/map").get_json()["landings"]}
    assert ground[("1-lift", "lift")]["floors"] == [-1] and not ground[("1-lift", "lift")]["up"]


def test_floors_are_found_by_number_or_name_and_an_unknown_one_is_a_404(client, mall):
    assert client.get("/api/v1/floors/-1/map").get_json() == client.get("/api/v1/floors/b1/map").get_json()
    assert client.get("/api/v1/floors/L2/map").get_json()["floor"]["number"] == 2
    for unknown in ("7", "B3", "L0", "lobby", "-", "1e3", "%00"):
        error = api_error(client.get(f"/api/v1/floors/{unknown}/map"), "floor_map.unknown_floor")
        assert error["message"]


def test_the_answers_carry_nothing_ops_only_and_no_member_data(client, mall):
    text = json.dumps([client.get("/api/v1/floors").get_json(), client.get("/api/v1/floors/1/map").get_json()])
    for word in ("beacon", "gateway", "uuid", "minor", "merchant", "member", "props", "imported_by", "changed_by",
                 "North entrance", "Winter blend"):  # the entrance and item zones are presence's, not the map's
        assert word not in text, word


def test_the_map_answers_304_to_its_own_etag_until_something_changes(client, mall, ops_admin):
    first = client.get("/api/v1/floors/1/map")
    etag = first.headers["ETag"]
    assert etag.startswith('"v1-') and first.headers["Cache-Control"] == "no-cache"
    again = client.get("/api/v1/floors/1/map", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert client.get("/api/v1/floors/1/map?lang=en", headers={"If-None-Match": etag}).status_code == 200
    client.patch(f"{GRAPH}/edges/1-c6", json={"closed": True}, headers=ops_admin["headers"])
    changed = client.get("/api/v1/floors/1/map", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"].startswith('"v2-')


def test_an_empty_mall_has_no_floors_and_every_map_is_a_404(client):
    assert client.get("/api/v1/floors").get_json()["floors"] == []
    api_error(client.get("/api/v1/floors/1/map"), "floor_map.unknown_floor")


def test_a_store_edit_shows_on_the_next_map_without_a_graph_change(client, rt, mall):
    first = client.get("/api/v1/floors/1/map")
    assert [s["id"] for s in first.get_json()["stores"]] == [mall.store]
    with rt.sessions.begin() as s:
        s.get(Store, mall.store).active = False
    later = client.get("/api/v1/floors/1/map", headers={"If-None-Match": first.headers["ETag"]})
    assert later.status_code == 200 and later.get_json()["stores"] == []
    assert later.get_json()["graph_version"] == first.get_json()["graph_version"]
    assert len(later.get_json()["paths"]) == len(first.get_json()["paths"])  # the graph part, kept, is the same
