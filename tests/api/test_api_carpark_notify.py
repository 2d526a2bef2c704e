"""The car park's webhook: signed entry and exit notifications open and close sessions; refusals change nothing.

Driven two ways: signed bodies posted with the test client, and the real car-park emulator posting to the
app served over HTTP on loopback.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from factories import api_error, parkcore_car_park
from sqlalchemy import select

from mallapp.adapters.carpark_open import sign
from mallapp.devtools.carpark_emulator import CarParkEmulator
from mallapp.domain.parking import sessions as parking_sessions
from mallapp.domain.parking.models import ParkingSession, PlateBinding
from mallapp.processes import clock as clock_process

APP_ID, SECRET, PARK = "park-app-test", "carpark-secret-test", "P001"
NOTIFY = "/api/v1/parking/carpark/notify"
_nonces = itertools.count()


@pytest.fixture(scope="module")
def carpark_server() -> Iterator[CarParkEmulator]:
    with CarParkEmulator(APP_ID, SECRET, park_code=PARK) as emulator:
        yield emulator


@pytest.fixture
def settings_overrides(carpark_server) -> dict[str, Any]:
    return {"carpark": {"api_base": carpark_server.base_url, "app_id": APP_ID, "secret": SECRET}}


@pytest.fixture
def park(rt, clock, carpark_server) -> CarParkEmulator:
    carpark_server.reset()
    carpark_server.webhook_url = None
    carpark_server.clock = lambda: clock.now.timestamp()
    parkcore_car_park(rt)
    return carpark_server


def _ms(dt) -> int:
    return int(dt.timestamp() * 1000)


def signed(clock, event: str, plate: str = "沪A12345", order_no: str = "P001-00000001", *, secret: str = SECRET,
           **fields: Any) -> dict[str, Any]:
    body = {"event": event, "plateNo": plate, "orderNo": order_no, "appId": APP_ID, "parkCode": PARK,
            "timestamp": _ms(clock.now), "nonce": f"n-{next(_nonces)}", "gate": "IN-1" if event == "entry" else "OUT-1",
            "entryTime": _ms(clock.now - timedelta(hours=2)), **fields}
    if event == "exit":
        body = {"exitTime": _ms(clock.now), "totalAmount": 1500, "discountAmount": 0, "paidAmount": 1500,
                "payableAmount": 0, "openedBy": "camera", **body}
    body["sign"] = sign(body, secret)
    return body


def _rows(rt) -> list[dict[str, Any]]:
    with rt.sessions.begin() as session:
        return [{c: getattr(r, c) for c in ("plate", "order_no", "member_id", "vehicle_type", "status", "exit_kind",
                                            "gross_fen", "unpaid_fen", "exited_at", "exit_gate")}
                for r in session.scalars(select(ParkingSession).order_by(ParkingSession.id))]


def _ok(response) -> None:
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"code": 0, "message": "ok"}


def test_an_entry_opens_a_session_for_the_plates_member(client, rt, clock, park, member):
    client.post("/api/v1/me/plates", json={"plate": "沪A12345", "vehicle_type": "large"}, headers=member["headers"])
    _ok(client.post(NOTIFY, json=signed(clock, "entry")))
    [row] = _rows(rt)
    assert (row["member_id"], row["vehicle_type"], row["status"]) == (member["member"]["id"], "large", "parked")


def test_an_entry_sent_again_is_one_session(client, rt, clock, park):
    _ok(client.post(NOTIFY, json=signed(clock, "entry")))
    _ok(client.post(NOTIFY, json=signed(clock, "entry")))  # the car park's retry: a fresh nonce, the same order
    [row] = _rows(rt)
    assert row["member_id"] is None and row["vehicle_type"] == "small"


def test_a_camera_exit_closes_the_session_and_a_retry_changes_nothing(client, rt, clock, park):
    client.post(NOTIFY, json=signed(clock, "entry"))
    clock.advance(hours=2)
    _ok(client.post(NOTIFY, json=signed(clock, "exit")))
    first = _rows(rt)
    assert [(r["status"], r["exit_kind"], r["gross_fen"], r["unpaid_fen"], r["exit_gate"]) for r in first] == [
        ("left", "camera", 1500, None, "OUT-1")]
    clock.advance(minutes=5)
    _ok(client.post(NOTIFY, json=signed(clock, "exit")))
    assert _rows(rt) == first


def test_a_staff_exit_with_money_due_is_recorded_unpaid(client, rt, clock, park):
    client.post(NOTIFY, json=signed(clock, "entry"))
    _ok(client.post(NOTIFY, json=signed(clock, "exit", openedBy="staff", paidAmount=0, payableAmount=1500)))
    [row] = _rows(rt)
    assert (row["exit_kind"], row["unpaid_fen"]) == ("staff", 1500)


def test_an_exit_we_never_saw_enter_is_recorded_closed(client, rt, clock, park):
    _ok(client.post(NOTIFY, json=signed(clock, "exit", order_no="P001-00000042")))
    [row] = _rows(rt)
    assert (row["order_no"], row["status"], row["exit_kind"]) == ("P001-00000042", "left", "camera")


def test_an_entry_while_the_plate_is_still_in_closes_the_old_stay_as_unknown(client, rt, clock, park):
    client.post(NOTIFY, json=signed(clock, "entry", order_no="A"))
    clock.advance(hours=1)
    _ok(client.post(NOTIFY, json=signed(clock, "entry", order_no="B", entryTime=_ms(clock.now))))
    rows = _rows(rt)
    assert [(r["order_no"], r["status"], r["exit_kind"]) for r in rows] == [("A", "left", "unknown"),
                                                                          ("B", "parked", None)]


def _refused(client, rt, body: dict[str, Any], code: str) -> None:
    before = _rows(rt)
    api_error(client.post(NOTIFY, json=body), code)
    assert _rows(rt) == before


def test_refusals_change_nothing(client, rt, clock, park):
    client.post(NOTIFY, json=signed(clock, "entry"))
    exit_ = signed(clock, "exit")
    _refused(client, rt, {**exit_, "payableAmount": 0, "totalAmount": 1}, "parking.notify_signature")  # tampered
    _refused(client, rt, signed(clock, "exit", secret="not-the-secret"), "parking.notify_signature")
    _refused(client, rt, signed(clock, "exit", timestamp=_ms(clock.now - timedelta(minutes=6))), "parking.notify_stale")
    _refused(client, rt, signed(clock, "exit", appId="someone-else"), "parking.notify_app_unknown")
    _refused(client, rt, signed(clock, "exit", parkCode="P404"), "parking.car_park_unknown")
    _refused(client, rt, signed(clock, "exit", exitTime=_ms(clock.now - timedelta(hours=3))),
             "parking.times_out_of_order")
    _refused(client, rt, signed(clock, "entry", plate="ABC123", order_no="X"), "parking.plate_invalid")
    assert [r["status"] for r in _rows(rt)] == ["parked"]
    _ok(client.post(NOTIFY, json=exit_))
    _refused(client, rt, exit_, "parking.notify_replayed")


def test_a_refused_notification_can_be_retried_with_its_nonce(client, rt, clock, park):
    body = signed(clock, "entry", parkCode="P404")
    body["sign"] = sign(body, SECRET)
    api_error(client.post(NOTIFY, json=body), "parking.car_park_unknown")
    assert not rt.redis.exists(parking_sessions.nonce_key(APP_ID, body["nonce"]))


def test_a_body_that_is_not_a_notification_is_400(client, rt, clock, park):
    api_error(client.post(NOTIFY, json={"event": "entry"}), "request.invalid")
    body = signed(clock, "exit")
    del body["exitTime"]
    body["sign"] = sign(body, SECRET)
    api_error(client.post(NOTIFY, json=body), "parking.notify_invalid")
    assert _rows(rt) == []


def test_the_clock_closes_sessions_whose_exit_never_came(client, rt, clock, park):
    client.post(NOTIFY, json=signed(clock, "entry", order_no="old"))
    client.post(NOTIFY, json=signed(clock, "entry", plate="沪B12345", order_no="new", entryTime=_ms(clock.now)))
    clock.advance(hours=rt.settings.parking.stale_session_hours, minutes=-60)
    result = clock_process.run_job(rt, clock_process.find("parking-stale-sessions"))
    assert (result.outcome, result.count) == ("done", 1)
    assert [(r["order_no"], r["status"], r["exit_kind"]) for r in _rows(rt)] == [
        ("old", "closed_stale", "unknown"), ("new", "parked", None)]
    # The real exit arriving late puts itself on the stale-closed session.
    _ok(client.post(NOTIFY, json=signed(clock, "exit", order_no="old", entryTime=None)))
    assert _rows(rt)[0]["status"] == "left" and _rows(rt)[0]["exit_kind"] == "camera"



def test_the_emulators_notifications_over_http_open_and_close_the_session(rt, clock, park, app_url, member, client):
    client.post("/api/v1/me/plates", json={"plate": "粤BD12345"}, headers=member["headers"])
    park.webhook_url = app_url + NOTIFY
    order_no = park.drive_in("粤BD12345", bay="B2-C007", at=clock.now.timestamp() - 3 * 3600)
    assert park.drive_out("粤BD12345") is False  # unpaid: staff let it out
    assert [n["status"] for n in park.notifications()] == [200, 200]
    [row] = _rows(rt)
    assert (row["order_no"], row["member_id"], row["vehicle_type"]) == (order_no, member["member"]["id"], "new_energy")
    assert (row["status"], row["exit_kind"], row["unpaid_fen"], row["gross_fen"]) == ("left", "staff", 1500, 1500)
    with rt.sessions.begin() as session:
        assert session.scalar(select(PlateBinding.plate)) == "粤BD12345"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_same_entry_delivered_twice_at_once_is_one_session(rt, clock, park):
    from factories import race_in_transactions

    from mallapp.domain.parking import carparks

    def deliver(session, _i):
        car_park = carparks.by_vendor_code(session, PARK)
        return parking_sessions.record_entry(session, car_park, plate="沪A12345", order_no="P001-7",
                                             entered_at=clock.now, gate="IN-1", now=clock.now)[1]

    results = race_in_transactions(rt, 4, deliver)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(results) == [False, False, False, True]
    assert [r["order_no"] for r in _rows(rt)] == ["P001-7"]
