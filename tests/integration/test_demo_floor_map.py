"""The demo mall's floor plan for shoppers: three mall floors and car-park levels B1 and B2, every floor's map drawn
from the demo graph, and every active store on its floor's map (docs/directory.md, "The floor plan for shoppers")."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mallapp.devtools import demo, demo_graph, demo_parking
from mallapp.domain.venue import Store
from mallapp.domain.wayfinding.store import WayfindingNode

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the answers do not depend on the database


@pytest.fixture
def demo_mall(rt):
    demo.seed_venue(rt)
    demo_parking.seed_parking(rt)
    assert "nodes" in demo_graph.seed_graph(rt)


def test_the_demo_has_three_mall_floors_over_two_car_park_levels(client, demo_mall):
    floors = client.get("/api/v1/floors").get_json()["floors"]
    assert [(f["floor_name"], f["kind"]) for f in floors] == [("B2", "carpark"), ("B1", "carpark"), ("L1", "mall"),
                                                              ("L2", "mall"), ("L3", "mall")]
    names = {f["floor_name"]: f["name"] for f in floors}
    assert names["L1"] == "一层" and names["L2"] == "美食广场" and names["B1"] == "地下一层" and names["B2"] == "地下二层"
    english = {f["floor_name"]: f["name"] for f in client.get("/api/v1/floors?lang=en").get_json()["floors"]}
    assert english["L3"] == "Cinema and family" and english["B2"] == "Basement 2"
    assert all(len(f["outline"]) >= 3 for f in floors)  # the car-park levels: the hull of their aisles
    assert sum(f["stores"] for f in floors) > 0 and all(f["amenities"] > 0 for f in floors)


def test_every_floor_map_draws_its_stores_corridors_and_way_between_floors(client, rt, demo_mall):
    with rt.sessions.begin() as s:
        stores = dict(s.execute(select(Store.floor, func.count()).where(Store.active).group_by(Store.floor)).all())
        nodes = dict(s.execute(select(WayfindingNode.floor, func.count()).group_by(WayfindingNode.floor)).all())
    for floor in (-2, -1, 1, 2, 3):
        body = client.get(f"/api/v1/floors/{floor}/map").get_json()
        assert body["floor"]["number"] == floor and body["graph_version"] == 1
        assert len(body["stores"]) == stores.get(floor, 0)
        assert body["paths"] and all(len(p["coords"]) >= 2 for p in body["paths"])
        assert len(body["paths"]) >= nodes[floor] - 1  # a connected floor has at least a tree's edges
        assert {g["kind"] for g in body["landings"]} & {"lift"}, floor  # every level is reached by a lift
        if floor < 0:
            assert any(a["kind"] == "carpark_lift" for a in body["amenities"])
    ground = client.get("/api/v1/floors/L1/map").get_json()
    assert ground["entrances"] and any(a["kind"] == "service_desk" for a in ground["amenities"])
