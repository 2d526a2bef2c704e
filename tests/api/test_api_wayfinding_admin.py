"""The walkable graph through the API: import and export round-trip, every check's refusal, edits, the summary,
amenities, and who may do what (docs/wayfinding.md)."""

from __future__ import annotations

import pytest
from factories import build_venue, small_graph
from sqlalchemy import select

from mallapp.domain.venue import Store
from mallapp.domain.wayfinding import store

GRAPH = "/api/v1/ops/wayfinding/graph"


def _put(client, headers, doc):
    return client.put(GRAPH, json=doc, headers=headers)


def _kinds(response) -> set[str]:
    assert response.status_code == 422, response.get_json()
    body = response.get_json()["error"]
    assert body["code"] == "wayfinding.invalid_graph"
    return {p["kind"] for p in body["details"]["problems"]}


def test_import_then_export_round_trips_and_bumps_the_version(rt, client, ops_admin):
    build_venue(rt)
    doc = small_graph()
    first = _put(client, ops_admin["headers"], doc)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["version"] == 1 and first.get_json()["nodes"] == 14 and first.get_json()["edges"] == 15
    exported = client.get(GRAPH, headers=ops_admin["headers"]).get_json()
    assert exported["mall:version"] == 1
    again = _put(client, ops_admin["headers"], exported)
    assert again.get_json()["version"] == 2
    second = client.get(GRAPH, headers=ops_admin["headers"]).get_json()
    assert second["features"] == exported["features"]
    by_id = {f["id"]: f for f in doc["features"]}
    assert {f["id"]: f for f in exported["features"]} == by_id


def test_load_graph_compiles_doors_bays_and_leaves_closed_edges_out(rt, client, ops_admin):
    venue = build_venue(rt)
    assert _put(client, ops_admin["headers"], small_graph()).status_code == 200
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 1
        graph = store.load_graph(session)
    assert graph.version == 1 and len(graph.nodes) == 14 and len(graph.edges) == 15
    assert graph.store_nodes == {venue.store: ("1-door",)}
    door = graph.nodes["1-door"]
    assert (door.kind, door.store_id, door.name, door.name_en) == ("door", venue.store, "咖啡店", "Coffee")
    assert graph.nodes["B1-lift"].amenity == "carpark_lift" and graph.nodes["1-lift"].amenity == "lift"
    assert graph.nodes["1-entrance"].amenity == "exit" and graph.nodes["2-wc"].amenity == "toilets"
    escalator = next(e for e in graph.edges if e.kind == "escalator")
    assert (escalator.a, escalator.b, escalator.oneway) == ("1-esc", "2-esc", True)
    lift = next(e for e in graph.edges if (e.a, e.b) == ("1-lift", "2-lift"))
    costs = rt.settings.wayfinding
    assert lift.seconds == pytest.approx(costs.lift_wait_s + costs.lift_s_per_floor)
    corridor = next(e for e in graph.edges if (e.a, e.b) == ("1-j1", "1-esc"))
    assert corridor.length_m == pytest.approx(10) and corridor.seconds == pytest.approx(10 / costs.walk_speed_mps)

    closed = client.patch(f"{GRAPH}/edges/stairs-1-2", json={"closed": True}, headers=ops_admin["headers"])
    assert closed.status_code == 200, closed.get_json()
    with rt.sessions.begin() as session:
        graph = store.load_graph(session)
    assert graph.version == 2 and "stairs-1-2" not in {f"{e.a}" for e in graph.edges}
    assert not any(e.kind == "stairs" for e in graph.edges)


def test_an_empty_mall_has_version_zero_and_an_empty_graph(rt):
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 0
        graph = store.load_graph(session)
    assert graph.version == 0 and graph.nodes == {} and graph.edges == ()


# --- the checks on import ----------------------------------------------------------------------------------

def _feature(doc, fid):
    return next(f for f in doc["features"] if f["id"] == fid)


def _drop(doc, *fids):
    doc["features"] = [f for f in doc["features"] if f["id"] not in fids]
    return doc


def _tag(fid, **tags):
    def change(doc):
        _feature(doc, fid)["properties"].update({k.replace("__", ":"): v for k, v in tags.items()})
        return doc
    return change


BROKEN = {
    "unknown_tag": _tag("1-j1", shop="coffee"),
    "unknown_value": _tag("1-j1", indoor="room"),
    "name_unprintable": _tag("1-j1", name="Lift\u202e1"),
    "unknown_amenity": _tag("2-wc", amenity="casino"),
    "node_untyped": lambda doc: (_feature(doc, "1-j1")["properties"].pop("indoor"), doc)[1],
    "bad_level": _tag("1-j2", level="first"),
    "level_mismatch": _tag("1-c1", level="2"),
    "bad_geometry": lambda doc: (_feature(doc, "1-j1")["geometry"].update(coordinates=["a", 0]), doc)[1],
    "missing_id": lambda doc: (_feature(doc, "1-j1").update(id="has space"), doc)[1],
    "duplicate_id": lambda doc: (doc["features"].append(_feature(doc, "1-c1")), doc)[1],
    "edge_ends_missing": lambda doc: (_feature(doc, "1-c1")["properties"].pop("mall:to"), doc)[1],
    "edge_node_missing": _tag("1-c5", mall__to="ghost"),
    "untyped_floor_change": _tag("lift-1-2", highway="corridor"),
    "floor_change_same_floor": _tag("1-c1", highway="elevator"),
    "disconnected": lambda doc: _drop(doc, "lift-B1-1"),
    "store_without_door": lambda doc: _drop(doc, "1-door", "1-c3"),
    "unknown_store": _tag("1-door", mall__store="ZZ-99"),
    "store_floor_mismatch": _tag("1-door", level="2"),
    "store_door_untagged": lambda doc: (_feature(doc, "1-door")["properties"].pop("door"), doc)[1],
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_import_refuses_each_problem_by_its_kind(rt, client, ops_admin, kind):
    build_venue(rt)
    response = _put(client, ops_admin["headers"], BROKEN[kind](small_graph()))
    assert {"name_unprintable": "unknown_value"}.get(kind, kind) in _kinds(response)
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 0  # nothing was written


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_import_lists_every_problem_at_once(rt, client, ops_admin):
    build_venue(rt)
    doc = small_graph()
    for kind in ("unknown_tag", "untyped_floor_change", "unknown_amenity", "duplicate_id"):
        doc = BROKEN[kind](doc)
    found = _kinds(_put(client, ops_admin["headers"], doc))
    assert {"unknown_tag", "untyped_floor_change", "unknown_amenity", "duplicate_id"} <= found
    problem = next(p for p in _put(client, ops_admin["headers"], doc).get_json()["error"]["details"]["problems"]
                   if p["kind"] == "untyped_floor_change")
    assert problem["feature"] == "lift-1-2" and "L1" in problem["problem"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_refused_import_leaves_the_stored_graph_as_it_was(rt, client, ops_admin):
    build_venue(rt)
    assert _put(client, ops_admin["headers"], small_graph()).status_code == 200
    before = client.get(GRAPH, headers=ops_admin["headers"]).get_json()
    assert _put(client, ops_admin["headers"], BROKEN["disconnected"](small_graph())).status_code == 422
    assert client.get(GRAPH, headers=ops_admin["headers"]).get_json() == before


def _car_park(client, headers, bays):
    from mallapp.devtools.demo_parking import DEMO_TARIFF

    park = client.post("/api/v1/ops/car-parks", headers=headers, json={
        "code": "P1", "name": "停车场 Car park", "vendor_park_code": "P001", "tariff": DEMO_TARIFF}).get_json()
    level = client.post(f"/api/v1/ops/car-parks/{park['id']}/levels", headers=headers,
                        json={"code": "B1", "name": "地下一层 B1", "floor": -1, "spaces": 10}).get_json()
    ids = {}
    for code, x, y in bays:
        made = client.post(f"/api/v1/ops/car-parks/{park['id']}/bays", headers=headers,
                           json={"code": code, **({} if x is None else {"x": x, "y": y})})
        assert made.status_code == 201, made.get_json()
        ids[code] = made.get_json()["id"]
    assert level["floor"] == -1
    return ids


def test_bays_snap_to_their_levels_nearest_node_and_unplaced_ones_are_warnings(rt, client, ops_admin):
    build_venue(rt)
    bays = _car_park(client, ops_admin["headers"], [("B1-C001", 27.0, -11.0), ("B1-C002", 24.0, 2.0),
                                                    ("B1-C003", None, None)])
    response = _put(client, ops_admin["headers"], small_graph())
    assert response.status_code == 200, response.get_json()
    assert [w["kind"] for w in response.get_json()["warnings"]] == ["bays_unplaced"]
    with rt.sessions.begin() as session:
        graph = store.load_graph(session)
    assert graph.bay_nodes == {bays["B1-C001"]: "B1-j1", bays["B1-C002"]: "B1-lift"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_placed_bay_far_from_every_node_is_refused(rt, client, ops_admin):
    build_venue(rt)
    _car_park(client, ops_admin["headers"], [("B1-C001", 27.0, -11.0), ("B1-C002", 300.0, 300.0)])
    response = _put(client, ops_admin["headers"], small_graph())
    assert _kinds(response) == {"bay_not_snapped"}
    assert response.get_json()["error"]["details"]["problems"][0]["bay"] == "B1-C002"


# --- edits ---------------------------------------------------------------------------------------------------

@pytest.fixture
def imported(rt, client, ops_admin):
    build_venue(rt)
    assert _put(client, ops_admin["headers"], small_graph()).status_code == 200
    return ops_admin["headers"]


def _version(client, headers) -> int:
    return client.get(f"{GRAPH}/summary", headers=headers).get_json()["version"]


def test_adding_a_node_with_its_edge_bumps_the_version(client, imported):
    from factories import wf_edge, wf_node

    node = wf_node("2-nursing", 2, 0, 5, mall__amenity="nursing_room", name="母婴室", name__en="Nursing room")
    stairs = _feature(small_graph(), "2-j1")
    added = client.post(f"{GRAPH}/nodes", headers=imported,
                        json={"node": node, "edges": [wf_edge("2-c9", stairs, node, highway="corridor")]})
    assert added.status_code == 201, added.get_json()
    assert (added.get_json()["version"], added.get_json()["nodes"], added.get_json()["edges"]) == (2, 15, 16)
    floors = {f["floor"]: f for f in client.get(f"{GRAPH}/summary", headers=imported).get_json()["floors"]}
    assert floors[2]["nodes"] == 6


def test_a_node_added_alone_is_refused_as_disconnected(client, imported):
    from factories import wf_node

    alone = client.post(f"{GRAPH}/nodes", headers=imported, json={"node": wf_node("2-x", 2, 50, 50, indoor="area")})
    assert _kinds(alone) == {"disconnected"}
    assert _version(client, imported) == 1


def test_an_existing_id_is_a_conflict(client, imported):
    again = client.post(f"{GRAPH}/nodes", headers=imported, json={"node": _feature(small_graph(), "1-j1")})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "wayfinding.feature_exists"


def test_moving_a_node_moves_its_edges_ends_and_their_lengths(rt, client, imported):
    moved = client.patch(f"{GRAPH}/nodes/1-entrance", headers=imported, json={"x": 0, "y": -15})
    assert moved.status_code == 200, moved.get_json()
    exported = client.get(GRAPH, headers=imported).get_json()
    assert _feature(exported, "1-entrance")["geometry"]["coordinates"] == [0, -15]
    assert _feature(exported, "1-c4")["geometry"]["coordinates"] == [[0, 0], [0, -15]]
    with rt.sessions.begin() as session:
        edge = next(e for e in store.load_graph(session).edges if "1-entrance" in (e.a, e.b))
    assert edge.length_m == pytest.approx(15)


def test_removing_a_node_takes_its_edges_and_is_refused_when_it_cuts_the_graph(client, imported):
    gone = client.delete(f"{GRAPH}/nodes/1-entrance", headers=imported)
    assert gone.status_code == 200 and gone.get_json()["edges"] == 14
    assert _kinds(client.delete(f"{GRAPH}/nodes/1-lift", headers=imported)) == {"disconnected"}
    assert _kinds(client.delete(f"{GRAPH}/nodes/1-door", headers=imported)) == {"store_without_door"}
    assert client.delete(f"{GRAPH}/nodes/nowhere", headers=imported).status_code == 404


def test_removing_and_adding_an_edge(client, imported):
    assert client.delete(f"{GRAPH}/edges/stairs-1-2", headers=imported).status_code == 200
    assert _kinds(client.delete(f"{GRAPH}/edges/lift-B1-1", headers=imported)) == {"disconnected"}
    back = client.post(f"{GRAPH}/edges", headers=imported, json=_feature(small_graph(), "stairs-1-2"))
    assert back.status_code == 201 and back.get_json()["version"] == 3
    assert _kinds(client.post(f"{GRAPH}/edges", headers=imported, json={
        **_feature(small_graph(), "1-c1"), "id": "bad", "properties": {"level": "1;2", "mall:from": "1-j1",
                                                                       "mall:to": "2-j1"}})) == {
        "untyped_floor_change"}


def test_closing_the_only_step_free_way_is_accepted_with_a_warning_and_cutting_the_graph_is_refused(client, imported):
    closed = client.patch(f"{GRAPH}/edges/lift-1-2", headers=imported, json={"closed": True})
    assert closed.status_code == 200, closed.get_json()
    assert [w["kind"] for w in closed.get_json()["warnings"]] == ["step_free_unreachable"]
    exported = client.get(GRAPH, headers=imported).get_json()
    assert _feature(exported, "lift-1-2")["properties"]["mall:closed"] == "yes"  # and it round-trips
    summary = client.get(f"{GRAPH}/summary", headers=imported).get_json()
    assert summary["problems"] == [] and summary["version"] == 2
    assert sum(f["closed_edges"] for f in summary["floors"]) == 1
    reopened = client.patch(f"{GRAPH}/edges/lift-1-2", headers=imported, json={"closed": False})
    assert reopened.get_json()["warnings"] == [] and reopened.get_json()["version"] == 3
    assert "mall:closed" not in _feature(client.get(GRAPH, headers=imported).get_json(), "lift-1-2")["properties"]
    assert _kinds(client.patch(f"{GRAPH}/edges/lift-B1-1", headers=imported, json={"closed": True})) == {"disconnected"}


def test_an_edit_before_any_import_is_not_found(client, ops_admin):
    refused = client.patch(f"{GRAPH}/edges/e1", headers=ops_admin["headers"], json={"closed": True})
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "wayfinding.no_graph"


# --- who may -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_any_ops_user_reads_and_only_an_admin_changes_the_graph(client, imported, ops_viewer):
    viewer = ops_viewer["headers"]
    assert client.get(GRAPH, headers=viewer).status_code == 200
    assert client.get(f"{GRAPH}/summary", headers=viewer).status_code == 200
    refused = client.put(GRAPH, headers=viewer, json=small_graph())
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "ops.admin_required"
    assert client.patch(f"{GRAPH}/edges/lift-1-2", headers=viewer, json={"closed": True}).status_code == 403
    assert client.get(GRAPH).status_code == 401
    assert _version(client, imported) == 1


# --- amenities -----------------------------------------------------------------------------------------------

def test_amenities_are_public_filtered_and_labelled_in_the_callers_language(client, imported):
    everything = client.get("/api/v1/amenities")
    assert everything.status_code == 200
    kinds = {(a["id"], a["kind"], a["label"]) for a in everything.get_json()["amenities"]}
    assert kinds == {("1-entrance", "exit", "出口"), ("1-lift", "lift", "电梯"), ("2-lift", "lift", "电梯"),
                     ("2-wc", "toilets", "洗手间"), ("B1-lift", "carpark_lift", "停车场电梯")}
    toilets = client.get("/api/v1/amenities?floor=2&kind=toilets&lang=en").get_json()["amenities"]
    assert toilets == [{"id": "2-wc", "kind": "toilets", "label": "Toilets", "name": "洗手间", "name_en": "Toilets",
                        "floor": 2, "floor_name": "L2", "x": 5.0, "y": 0.0}]
    english = client.get("/api/v1/amenities?floor=-1", headers={"Accept-Language": "en-GB,en;q=0.8"}).get_json()
    assert [(a["label"], a["floor_name"]) for a in english["amenities"]] == [("Car park lift", "B1")]
    assert client.get("/api/v1/amenities?kind=casino").status_code == 400


def test_a_store_opened_after_the_import_does_not_block_edits_and_its_door_can_be_added(rt, client, imported):
    from factories import wf_edge, wf_node

    made = client.post("/api/v1/ops/stores", headers=imported, json={
        "name": "Tea", "unit": "L2-09", "category": "cafe", "floor": 2, "x": 0.0, "y": -5.0})
    assert made.status_code == 201, made.get_json()
    summary = client.get(f"{GRAPH}/summary", headers=imported).get_json()
    assert [p["kind"] for p in summary["problems"]] == ["store_without_door"]
    assert summary["version"] == 2  # opening a store moves the version: its door may already be in the graph
    assert client.delete(f"{GRAPH}/edges/stairs-1-2", headers=imported).status_code == 200
    door = wf_node("2-door-tea", 2, 0, -3, door="yes", mall__store="L2-09")
    added = client.post(f"{GRAPH}/nodes", headers=imported, json={
        "node": door, "edges": [wf_edge("2-c-tea", _feature(small_graph(), "2-j1"), door)]})
    assert added.status_code == 201, added.get_json()
    assert client.get(f"{GRAPH}/summary", headers=imported).get_json()["problems"] == []
    with rt.sessions.begin() as session:
        store_id = session.scalar(select(Store.id).where(Store.unit == "L2-09"))
        assert store.load_graph(session).store_nodes[store_id] == ("2-door-tea",)


def test_placing_a_bay_or_changing_a_store_bumps_the_graph_version(rt, client, imported):
    bays = _car_park(client, imported, [("B1-C001", None, None)])
    park = client.get("/api/v1/ops/car-parks", headers=imported).get_json()["car_parks"][0]["id"]
    placed = client.patch(f"/api/v1/ops/car-parks/{park}/bays/{bays['B1-C001']}", headers=imported,
                          json={"x": 26.0, "y": -9.0})
    assert placed.status_code == 200 and _version(client, imported) == 2
    with rt.sessions.begin() as session:
        assert store.load_graph(session).bay_nodes == {bays["B1-C001"]: "B1-j1"}
        store_id = session.scalar(select(Store.id).where(Store.unit == "L1-02"))
    renamed = client.patch(f"/api/v1/ops/stores/{store_id}", headers=imported, json={"name": "Starlight"})
    assert renamed.status_code == 200 and _version(client, imported) == 3
    opened = client.post("/api/v1/ops/stores", headers=imported, json={"name": "Tea", "unit": "L2-09", "floor": 2,
                                                                        "x": 5.0, "y": 5.0})
    assert opened.status_code == 201 and _version(client, imported) == 4  # a door imported earlier may be its own
    level = client.get(f"/api/v1/ops/car-parks/{park}", headers=imported).get_json()["levels"][0]["id"]
    moved = client.patch(f"/api/v1/ops/car-parks/{park}/levels/{level}", headers=imported, json={"floor": -2})
    assert moved.status_code == 200 and _version(client, imported) == 5  # its bays snap on another floor
    renamed_level = client.patch(f"/api/v1/ops/car-parks/{park}/levels/{level}", headers=imported,
                                 json={"name": "负一层"})
    assert renamed_level.status_code == 200 and _version(client, imported) == 5


# --- the documentation's worked example ------------------------------------------------------------------------

def test_the_docs_worked_example_imports_and_compiles_as_the_docs_say(rt, client, ops_admin):
    import json
    import re

    from factories import PROJECT

    text = (PROJECT / "docs" / "wayfinding.md").read_text(encoding="utf-8")
    doc = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    venue = build_venue(rt)
    response = _put(client, ops_admin["headers"], doc)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"version": 1, "nodes": 6, "edges": 6, "warnings": []}
    with rt.sessions.begin() as session:
        graph = store.load_graph(session)
    edges = {(e.a, e.b): e for e in graph.edges}
    assert (round(edges["1-j1", "1-door"].length_m, 2), round(edges["1-j1", "1-door"].seconds, 2)) == (10.77, 8.98)
    assert (edges["1-lift", "2-lift"].length_m, edges["1-lift", "2-lift"].seconds) == (0, 46)
    escalator = edges["1-j1", "2-wc"]
    assert (escalator.kind, escalator.oneway, escalator.length_m, escalator.seconds) == ("escalator", True, 12, 24)
    assert graph.store_nodes == {venue.store: ("1-door",)}
    assert {n.id: n.amenity for n in graph.nodes.values() if n.amenity} == {
        "1-gate": "exit", "1-lift": "lift", "2-lift": "lift", "2-wc": "toilets"}
    assert client.get(GRAPH, headers=ops_admin["headers"]).get_json()["features"] == sorted(
        [f for f in doc["features"] if f["geometry"]["type"] == "Point"], key=lambda f: f["id"]) + sorted(
        [f for f in doc["features"] if f["geometry"]["type"] == "LineString"], key=lambda f: f["id"])


def test_an_edit_given_the_wrong_kind_of_feature_is_refused(client, imported):
    as_node = client.post(f"{GRAPH}/nodes", headers=imported, json={"node": _feature(small_graph(), "1-c1")})
    assert _kinds(as_node) == {"bad_geometry"}
    as_edge = client.post(f"{GRAPH}/edges", headers=imported, json=_feature(small_graph(), "1-j1"))
    assert _kinds(as_edge) == {"bad_geometry"}
