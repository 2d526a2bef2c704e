"""The demo mall's car park: two levels with numbered bays (placed along the demo graph's aisles), an entrance and
an exit, and a demo shopper's plate.

Idempotent like the rest of the demo seeding (``mallapp demo`` seeds at every start). The car park's
vendor code is the car-park emulator's default park code, so the emulator's notifications find it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallapp.devtools import demo_graph
from mallapp.domain import points
from mallapp.domain.members import Member
from mallapp.domain.parking import bindings, carparks
from mallapp.runtime import Runtime

DEMO_PARK_CODE = "P001"  # mallapp.devtools.carpark_emulator's default park_code
# The car-park emulator's credentials in the demo; they guard nothing real.
DEMO_CARPARK_APP_ID = "demo-carpark"
DEMO_CARPARK_SECRET = "demo-carpark-secret"
DEMO_LEVELS = (("B1", "地下一层 Basement 1", -1, 120), ("B2", "地下二层 Basement 2", -2, 80))
DEMO_PLATE = ("demo-shopper-ada", "沪A12345")
# Enough points for the tour to pay two hours of parking with them (600 points an hour).
DEMO_PARKING_POINTS = 3000
# The MixC-like tariff of docs/parking.md: 15 free minutes, 10 yuan the first hour, then 5 yuan (day) or
# 2 yuan (night) per started half hour, at most 10 yuan a night and 60 yuan per 24 hours.
DEMO_TARIFF = {"grace_minutes": 15, "plans": {
    "small": {"free_minutes": 15, "first_period_minutes": 60, "first_period_fen": 1000, "step_minutes": 30,
              "bands": [{"name": "白天 day", "start": "08:00", "end": "22:00", "step_fen": 500},
                        {"name": "夜间 night", "start": "22:00", "end": "08:00", "step_fen": 200}],
              "overnight": {"start": "22:00", "end": "08:00", "cap_fen": 1000}, "daily_cap_fen": 6000},
    "new_energy": {"free_minutes": 30, "first_period_minutes": 60, "first_period_fen": 500, "step_minutes": 30,
                   "bands": [{"name": "全天 all day", "start": "00:00", "end": "00:00", "step_fen": 250}],
                   "daily_cap_fen": 3000}}}


def _place_bays(session: Session, car_park_id: int, code: str) -> None:
    """Give the level's bays that have no position their place along the demo car park's aisles (the demo graph's
    layout, mallapp.devtools.demo_graph.bay_positions), so routes can start and end at them."""
    level = carparks.level_by_code(session, car_park_id, code)
    assert level is not None
    places = list(demo_graph.bay_positions(code))
    for bay in carparks.bays(session, car_park_id, level.id):
        number = int(bay.code.rsplit("C", 1)[1])
        if bay.x is None and bay.y is None and number <= len(places):
            bay.x, bay.y = places[number - 1]


def seed_parking(rt: Runtime) -> str:
    """Create the demo car park once (and bind a demo shopper's plate, with points to pay parking); return a line."""
    now = rt.now()
    with rt.sessions.begin() as session:
        park = carparks.by_vendor_code(session, DEMO_PARK_CODE)
        if park is None:
            park = carparks.create_car_park(session, code="P1", name="商场停车场 Mall car park",
                                            vendor_park_code=DEMO_PARK_CODE, tariff_doc=DEMO_TARIFF, now=now)
        for code, name, floor, spaces in DEMO_LEVELS:
            if carparks.level_by_code(session, park.id, code) is None:
                carparks.create_level(session, park.id, code=code, name=name, floor=floor, spaces=spaces)
            carparks.create_bay_range(session, park.id, prefix=f"{code}-C", first=1, last=spaces)
            _place_bays(session, park.id, code)
        existing = {gate.code for gate in carparks.gates(session, park.id)}
        for code, name, kind in (("IN-1", "北入口 North entrance", "entrance"), ("OUT-1", "北出口 North exit", "exit")):
            if code not in existing:
                carparks.create_gate(session, park.id, code=code, name=name, kind=kind)
        openid, plate = DEMO_PLATE
        member_id = session.scalar(select(Member.id).where(Member.openid == openid))
        if member_id is not None and bindings.active_for_plate(session, plate) is None:
            bindings.bind(session, member_id, plate, vehicle_type=None, cfg=rt.settings.parking, now=now)
        if member_id is not None:  # once: the ledger's key makes a second start a replay
            points.credit(session, rt.settings, member_id, DEMO_PARKING_POINTS, "adjustment", source_ref="demo:parking",
                          idempotency_key="demo:parking-points", now=now,
                          note="演示：停车积分 / Demo: points for parking")
        return f"demo car park: {park.code} (parkCode {DEMO_PARK_CODE}), levels B1 and B2, {plate} bound to {openid}"
