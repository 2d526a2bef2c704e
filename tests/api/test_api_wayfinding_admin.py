"""The walkable graph through the API: import and export round-trip, every check's refusal, edits, the summary,
amenities, and who may do what (docs/wayfinding.md)."""

from __future__ import annotations

import pytest
from factories import build_venue, small_graph

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
