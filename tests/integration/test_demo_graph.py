"""The demo mall's walkable graph is valid for the demo's stores and bays, seeds once, and compiles to a Graph
where every store has a door and every bay a node (docs/wayfinding.md, "The demo mall's graph")."""

from __future__ import annotations

import networkx as nx
from sqlalchemy import delete, select

from mallapp.devtools import demo, demo_graph, demo_parking
from mallapp.domain.venue import Store
from mallapp.domain.wayfinding import store
from mallapp.domain.wayfinding.graph import STEPPED


def _demo_venue(rt) -> None:
    demo.seed_venue(rt)
    demo_parking.seed_parking(rt)


def test_the_demo_graph_imports_once_with_every_store_and_bay_reached(rt):
    _demo_venue(rt)
    line = demo_graph.seed_graph(rt)
    assert "no store for units" not in line, line
    assert demo_graph.seed_graph(rt) == "demo walkable graph: version 1 already there"
    with rt.sessions.begin() as s:
        graph = store.load_graph(s)
        stores = dict(s.execute(select(Store.id, Store.unit).where(Store.active)).all())
        checked = store.revalidate(s, rt.settings.wayfinding.bay_snap_m)
    assert checked.problems == [] and checked.warnings == []  # step-free everywhere, every bay placed
    assert set(graph.store_nodes) == set(stores)
    assert len(graph.bay_nodes) == 200
    assert {n.floor for n in graph.nodes.values()} == {-2, -1, 1, 2, 3}
    step_free = nx.DiGraph()
    for e in graph.edges:
        if e.kind not in STEPPED:
            step_free.add_edge(e.a, e.b)
            if not e.oneway:
                step_free.add_edge(e.b, e.a)
    assert nx.is_strongly_connected(step_free) and step_free.number_of_nodes() == len(graph.nodes)
    kinds = {n.amenity for n in graph.nodes.values()} - {None}
    assert kinds == {"toilets", "service_desk", "exit", "lift", "nursing_room", "carpark_lift"}
    assert {n.floor for n in graph.nodes.values() if n.amenity == "toilets"} == {1, 2, 3}
    escalators = [(graph.nodes[e.a].floor, graph.nodes[e.b].floor) for e in graph.edges if e.kind == "escalator"]
    assert sorted(escalators) == [(1, 2), (2, 1), (2, 3), (3, 2)]


def test_doors_of_stores_the_database_lacks_are_plain_doors_and_the_seed_says_so(rt):
    _demo_venue(rt)
    with rt.sessions.begin() as s:  # a mall whose directory has no Sichuan Bistro (yet)
        s.execute(delete(Store).where(Store.unit == "L3-03"))
    line = demo_graph.seed_graph(rt)
    assert line.endswith("no store for units L3-03: their doors are plain doors"), line


def test_the_demo_graph_round_trips_through_export_and_import(rt):
    _demo_venue(rt)
    demo_graph.seed_graph(rt)
    with rt.sessions.begin() as s:
        first = store.export_graph(s)
    with rt.sessions.begin() as s:
        change = store.replace_graph(s, first, by=None, now=rt.now(), costs=rt.settings.wayfinding)
    with rt.sessions.begin() as s:
        second = store.export_graph(s)
    assert change.version == 2 and second["features"] == first["features"]
    assert second["features"] == sorted([f for f in demo_graph.load()["features"] if f["geometry"]["type"] == "Point"],
                                        key=lambda f: f["id"]) + sorted(
        [f for f in demo_graph.load()["features"] if f["geometry"]["type"] == "LineString"], key=lambda f: f["id"])


def test_the_stored_graph_built_from_columns_equals_its_features_read_again(rt):
    # stored_specs (the summary's and the edits' input) skips parsing each stored feature again: same specs
    _demo_venue(rt)
    demo_graph.seed_graph(rt)
    with rt.sessions.begin() as s:
        fast, read = store.stored_specs(s), store.read_specs(s)
    assert fast == read
    assert {n.amenity for n in fast[0].values() if n.floor < 0 and n.kind == "lift"} == {"lift"}
