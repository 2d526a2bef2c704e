"""Routes on the demo mall's graph (three floors, car-park levels B1 and B2): every store to the nearest toilets and
from a bay, on both profiles, step-free without stairs or escalators; the steps from a bay up to a store."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from mallapp.devtools import demo, demo_graph, demo_parking
from mallapp.domain.parking.models import ParkingBay
from mallapp.domain.venue import Store

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the answers do not depend on the database


@pytest.fixture
def demo_mall(rt):
    demo.seed_venue(rt)
    demo_parking.seed_parking(rt)
    line = demo_graph.seed_graph(rt)
    assert "nodes" in line, line
    with rt.sessions.begin() as s:
        stores = list(s.scalars(select(Store.id).where(Store.active)))
        bays = list(s.scalars(select(ParkingBay.code).where(ParkingBay.active, ParkingBay.x.is_not(None))))
    return stores, bays


def test_every_store_reaches_the_nearest_toilets_and_is_reached_from_a_bay_on_both_profiles(client, demo_mall):
    stores, bays = demo_mall
    rng = random.Random(17)
    for store_id in stores:
        bay = rng.choice(bays)
        for profile in ("fastest", "step_free"):
            toilets = client.get("/api/v1/routes", query_string={"from": f"store:{store_id}", "to": "amenity:toilets",
                                                                 "profile": profile})
            assert toilets.status_code == 200, toilets.get_json()
            assert toilets.get_json()["steps"][-1]["text"] == "到达洗手间"
            back = client.get("/api/v1/routes", query_string={"from": f"bay:{bay}", "to": f"store:{store_id}",
                                                              "profile": profile})
            assert back.status_code == 200, back.get_json()
            body = back.get_json()
            kinds = {leg["change"]["kind"] for leg in body["legs"] if leg["change"]}
            if profile == "step_free":
                assert not kinds & {"stairs", "escalator"}
            assert body["legs"][0]["floor"] < 0 and body["steps"][0]["text"].startswith(f"从{bay}车位出发")
            assert sum(1 for s in body["steps"] if s["kind"] == "change") == sum(1 for leg in body["legs"]
                                                                                if leg["change"])


def test_from_a_bay_on_b2_to_a_store_on_l2_step_free_takes_the_lift_up(client, rt, demo_mall):
    _stores, bays = demo_mall
    with rt.sessions.begin() as s:
        store = s.scalar(select(Store).where(Store.floor == 2, Store.active).order_by(Store.id))
        store_id, name, unit = store.id, store.name, store.unit
    bay = next(code for code in bays if code.startswith("B2-"))
    with rt.sessions.begin() as s:
        bay_id = s.scalar(select(ParkingBay.id).where(ParkingBay.code == bay))
    for spec in (f"bay:{bay}", f"bay:{bay_id}"):
        back = client.get("/api/v1/routes", query_string={"from": spec, "to": f"store:{store_id}",
                                                          "profile": "step_free"}).get_json()
        texts = [s["text"] for s in back["steps"]]
        assert "乘电梯上到2楼" in texts, texts
        assert texts[-1] == f"到达{name}，位于{unit}"
