"""The demo car park seeds once, whatever the number of starts, and the demo shopper's car can be found."""

from __future__ import annotations

from sqlalchemy import func, select

from mallapp.devtools import demo_parking
from mallapp.domain import members
from mallapp.domain.parking import locate, sessions
from mallapp.domain.parking.models import CarPark, ParkingBay, ParkingGate, PlateBinding


def test_seeding_twice_is_one_car_park_with_its_bays_gates_and_the_demo_plate(rt):
    with rt.sessions.begin() as s:
        member_id = members.sign_in(s, openid="demo-shopper-ada", unionid=None, now=rt.now())[0].id
    first = demo_parking.seed_parking(rt)
    assert demo_parking.seed_parking(rt) == first
    with rt.sessions.begin() as s:
        counts = [s.scalar(select(func.count()).select_from(m)) for m in (CarPark, ParkingBay, ParkingGate, PlateBinding)]
        assert counts == [1, 200, 2, 1]
        park = s.scalar(select(CarPark))
        row, _ = sessions.record_entry(s, park, plate="沪A12345", order_no="P001-1", entered_at=rt.now(), gate="IN-1",
                                       now=rt.now())
        assert row.member_id == member_id
        where = locate.set_bay(s, member_id, secret=rt.secret, now=rt.now(), bay="B2-C058")
        assert (where.level.name, where.bay_code) == ("地下二层 Basement 2", "B2-C058")
