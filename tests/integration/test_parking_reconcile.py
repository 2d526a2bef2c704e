"""Reconciliation of a day's parking payments with the car park, against the running car-park emulator.

Our payments are ORM rows (tests/factories.py parking_history); the car park's are taken by the emulator,
either through a real bill/pay by the adapter or recorded on a chosen day (take_payment). The clock is
2026-03-10 10:00 in Shanghai; the day reconciled is 03-09.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from factories import parking_history
from sqlalchemy import func, select

from mallapp.adapters.carpark import Item
from mallapp.devtools.carpark_emulator import CarParkEmulator
from mallapp.domain.parking import reconcile
from mallapp.domain.parking.models import ParkingReconciliation
from mallapp.processes.clock import find, run_job

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

APP_ID, SECRET = "park-app-ops", "carpark-secret-ops"
URL = "/api/v1/ops/parking/reconciliations"
MALL = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=MALL).astimezone(UTC)


@pytest.fixture(scope="module")
def park_server() -> Iterator[CarParkEmulator]:
    with CarParkEmulator(APP_ID, SECRET, park_code="P001") as emulator:
        yield emulator


@pytest.fixture
def park(park_server: CarParkEmulator) -> CarParkEmulator:
    park_server.reset()
    return park_server


@pytest.fixture
def settings_overrides(park_server: CarParkEmulator) -> dict:
    return {"carpark": {"api_base": park_server.base_url, "app_id": APP_ID, "secret": SECRET, "retries": 0,
                        "timeout_s": 2}}


@pytest.fixture
def day_of_payments(rt, park):
    """Each kind of mismatch on 03-09, a match, and the payments near midnight that are none."""
    h = parking_history(rt)
    stay = h.stay("沪A11111", at(9, 8), at(9, 23, 59, 59))

    def both(order_id: str, ours_at: datetime, theirs_at: datetime, cash: int, discount: int = 0) -> None:
        h.payment(stay, cash_fen=cash, discount_fen=discount, at=ours_at, order_id=order_id, seq=int(order_id[1:]))
        park.take_payment(order_id, cash, discount_fen=discount, at=theirs_at.timestamp())

    both("M1", at(9, 12), at(9, 12, 0, 30), 500, 1000)                            # the same on both sides
    h.payment(stay, cash_fen=800, at=at(9, 14), order_id="M2", seq=2)
    park.take_payment("M2", 700, at=at(9, 14, 0, 20).timestamp())                 # amount_differs: cash
    h.payment(stay, cash_fen=600, at=at(9, 15), order_id="M3", seq=3)            # missing_there
    park.take_payment("X1", 300, at=at(9, 16).timestamp())                        # missing_here
    both("M4", at(9, 23, 59, 50), at(10, 0, 0, 5), 400)                           # ours on 03-09, theirs after midnight
    both("M5", at(8, 23, 59, 55), at(9, 0, 0, 10), 200)                           # ours on 03-08, theirs after midnight
    h.payment(stay, cash_fen=900, at=at(9, 17), order_id="M6", seq=6, status="failed")  # not paid: not ours
    park.take_payment("Y1", 100, at=at(8, 12).timestamp())                        # another day
    return h


def _problems(body) -> list[tuple[str, str]]:
    return [(m["order_id"], m["problem"]) for m in body["mismatches"]]


def test_each_kind_of_mismatch_is_reported_and_near_midnight_payments_are_none(client, ops_admin, day_of_payments):
    answer = client.post(URL, json={"car_park": "P1", "day": "2026-03-09"}, headers=ops_admin["headers"])
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["car_park"], body["day"], body["ours"], body["theirs"]) == ("P1", "2026-03-09", 4, 4)
    assert _problems(body) == [("M2", "amount_differs"), ("M3", "missing_there"), ("X1", "missing_here")]
    differs, there, here = body["mismatches"]
    assert differs["fields"] == ["cash"]
    assert (differs["ours"]["cash_fen"], differs["theirs"]["cash_fen"]) == (800, 700)
    assert (there["ours"]["cash_fen"], there["theirs"]) == (600, None)
    assert (here["ours"], here["theirs"]["cash_fen"]) == (None, 300)


def test_a_rerun_replaces_the_days_reconciliation(client, ops_admin, ops_viewer, day_of_payments, park, rt):
    client.post(URL, json={"car_park": "P1", "day": "2026-03-09"}, headers=ops_admin["headers"])
    park.take_payment("M3", 600, at=at(9, 15, 1).timestamp())  # the car park's record turned up
    again = client.post(URL, json={"car_park": "P1", "day": "2026-03-09"}, headers=ops_admin["headers"]).get_json()
    assert _problems(again) == [("M2", "amount_differs"), ("X1", "missing_here")]
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ParkingReconciliation)) == 1
    listed = client.get(URL, query_string={"car_park": "P1", "from": "2026-03-01", "to": "2026-03-10"},
                        headers=ops_viewer["headers"]).get_json()["reconciliations"]
    assert [(r["day"], len(r["mismatches"])) for r in listed] == [("2026-03-09", 2)]


def test_an_unreachable_car_park_is_502_and_keeps_the_last_run(client, ops_admin, day_of_payments, park, rt):
    client.post(URL, json={"car_park": "P1", "day": "2026-03-09"}, headers=ops_admin["headers"])
    park.fail_next("bill/payments", status=500)
    down = client.post(URL, json={"car_park": "P1", "day": "2026-03-09"}, headers=ops_admin["headers"])
    assert down.status_code == 502 and down.get_json()["error"]["code"] == "carpark.unavailable"
    with rt.sessions() as s:
        [row] = s.scalars(select(ParkingReconciliation))
        assert len(row.mismatches) == 3


def test_today_cannot_be_reconciled_yet(client, ops_admin, day_of_payments):
    today = client.post(URL, json={"car_park": "P1", "day": "2026-03-10"}, headers=ops_admin["headers"])
    assert today.status_code == 400 and today.get_json()["error"]["code"] == "parking.day_not_over"


def test_a_payment_taken_through_bill_pay_is_listed_and_matches_ours(rt, park):
    """The car park's own record of a real payment (the emulator's bill/pay) lists by its time and matches."""
    h = parking_history(rt)
    now = time.time()
    order_no = park.drive_in("沪A77777", at=now - 3 * 3600 - 60)   # 4 hours started: 2000 fen
    adapter = rt.carpark("P001")
    taken = adapter.pay(plate="沪A77777", order_no=order_no, order_id="REAL-1", paid_fen=1000,
                        items=[Item(code="tier", name="金卡 2 小时 / Gold tier: 2 h", seconds=7200)])
    stay = h.stay("沪A77777", datetime.fromtimestamp(now - 3 * 3600 - 60, UTC))
    h.payment(stay, cash_fen=1000, discount_fen=taken.discount_fen, at=taken.paid_at, order_id="REAL-1")
    day = rt.settings.mall.local_day(taken.paid_at)
    theirs = adapter.payments(*reconcile.window(rt.settings.mall, day))
    assert [(t.order_id, t.trade_no, t.paid_fen, t.discount_fen) for t in theirs] == [
        ("REAL-1", taken.trade_no, 1000, 1000)]
    with rt.sessions.begin() as s:
        row = reconcile.record(s, rt.settings.mall, h.car_park_id, day, theirs, rt.now())
        assert (row.ours, row.theirs, row.mismatches) == (1, 1, [])


def test_the_car_parks_list_of_payments_pages(rt, park):
    for n in range(205):
        park.take_payment(f"P{n:03d}", 100, at=at(9, 12).timestamp() + n)
    theirs = rt.carpark("P001").payments(at(9, 0), at(10, 0))
    assert [t.order_id for t in theirs] == [f"P{n:03d}" for n in range(205)]


def test_the_clock_job_reconciles_yesterday_and_retries_a_day_the_car_park_was_down(rt, clock, park):
    clock.now = at(5, 10)
    h = parking_history(rt)                                   # created on 03-05
    stay = h.stay("沪A11111", at(8, 8), at(8, 9))
    h.payment(stay, cash_fen=500, at=at(8, 8, 50), order_id="D8")
    park.fail_next("bill/payments", status=500, times=10)
    clock.now = at(9, 3, 10)
    assert run_job(rt, find("parking-reconcile")).count == 0   # down: nothing stored, logged
    park.reset()
    park.take_payment("D8", 500, at=at(8, 8, 51).timestamp())
    clock.now = at(10, 3, 10)
    assert run_job(rt, find("parking-reconcile")).count == 5    # 03-05 … 03-08, then 03-09
    with rt.sessions() as s:
        rows = {r.day: r for r in s.scalars(select(ParkingReconciliation))}
    assert sorted(rows) == [date(2026, 3, d) for d in range(5, 10)]
    assert (rows[date(2026, 3, 8)].ours, rows[date(2026, 3, 8)].mismatches) == (1, [])
