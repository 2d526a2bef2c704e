"""config/demo_graph.geojson is what mallapp.devtools.demo_graph generates, and every bay of the demo car park has
a place along an aisle."""

from __future__ import annotations

from mallapp.devtools import demo_graph, demo_parking


def test_the_committed_demo_graph_is_the_generators_output():
    assert demo_graph.DEMO_GRAPH_FILE.read_text(encoding="utf-8") == demo_graph.render(), (
        "run: python -m mallapp.devtools.demo_graph")


def test_every_demo_bay_has_a_distinct_place():
    for code, _name, _floor, spaces in demo_parking.DEMO_LEVELS:
        places = list(demo_graph.bay_positions(code))
        assert len(places) >= spaces and len(set(places)) == len(places)
