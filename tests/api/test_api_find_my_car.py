"""Find my car (bay cameras through the car-park emulator, the pillar QR, typed) and the public free spaces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from factories import api_error, parkcore_car_park, parkcore_parked_car
from sqlalchemy import select

from mallapp.devtools.carpark_emulator import CarParkEmulator
from mallapp.domain.parking import locate
from mallapp.domain.parking.models import ParkingSession

APP_ID, SECRET = "park-app-test", "carpark-secret-test"
CAR, BAY, PLATES = "/api/v1/me/parking/car", "/api/v1/me/parking/car/bay", "/api/v1/me/plates"


@pytest.fixture(scope="module")
def carpark_server() -> Iterator[CarParkEmulator]:
    with CarParkEmulator(APP_ID, SECRET, park_code="P001") as emulator:
        yield emulator


@pytest.fixture
def settings_overrides(carpark_server) -> dict[str, Any]:
    return {"carpark": {"api_base": carpark_server.base_url, "app_id": APP_ID, "secret": SECRET, "retries": 0}}


@pytest.fixture
def park(carpark_server) -> CarParkEmulator:
    carpark_server.reset()
    carpark_server.webhook_url = None
    return carpark_server


@pytest.fixture
def world(rt, client, park, member) -> dict[str, Any]:
    """A car park (B1, B2 with bays C001..C010), the member's plate bound, the car in (emulator and our session)."""
    car_park = parkcore_car_park(rt)
    client.post(PLATES, json={"plate": "沪A12345"}, headers=member["headers"])
    session_id = parkcore_parked_car(rt, car_park, "沪A12345", member_id=member["member"]["id"])
    return {"car_park": car_park, "session": session_id, "headers": member["headers"]}


def _session(rt, session_id: int) -> tuple[str | None, str | None]:
    with rt.sessions.begin() as s:
        row = s.get(ParkingSession, session_id)
        return row.bay_code, row.bay_source


def _qr(client, ops_admin, car_park: int, code: str) -> str:
    bays = client.get(f"/api/v1/ops/car-parks/{car_park}/bays", headers=ops_admin["headers"]).get_json()["bays"]
    bay_id = next(b["id"] for b in bays if b["code"] == code)
    return client.get(f"/api/v1/ops/car-parks/{car_park}/bays/{bay_id}/qr", headers=ops_admin["headers"]).get_json()["qr"]


def test_the_bay_camera_finds_the_car_and_it_is_kept(client, rt, park, world):
    park.drive_in("沪A12345", bay="B2-C007")
    [car] = client.get(CAR, headers=world["headers"]).get_json()["cars"]
    assert (car["plate"], car["bay"], car["bay_source"]) == ("沪A12345", "B2-C007", "camera")
    assert car["level"] == {"code": "B2", "name": "地下2层 Basement 2", "floor": -2}
    assert car["car_park"]["code"] == "P1"
    assert _session(rt, world["session"]) == ("B2-C007", "camera")


def test_no_camera_saw_it_and_the_car_park_down_still_answer(client, rt, park, world):
    park.drive_in("沪A12345")
    body = client.get(CAR, headers=world["headers"]).get_json()
    assert [(c["bay"], c["level"]) for c in body["cars"]] == [(None, None)] and body["carpark_unavailable"] is False
    park.fail_next("car/location", status=500)
    body = client.get(CAR, headers=world["headers"]).get_json()
    assert len(body["cars"]) == 1 and body["carpark_unavailable"] is True
    park.park("沪A12345", "B1-C004")  # the camera sees it now, but a car park that just failed is not asked at once
    assert client.get(CAR, headers=world["headers"]).get_json()["cars"][0]["bay"] is None
    rt.redis.delete(locate.down_key(world["car_park"]))
    assert client.get(CAR, headers=world["headers"]).get_json()["cars"][0]["bay"] == "B1-C004"


def test_the_pillar_qr_sets_the_bay_and_the_camera_no_longer_overrides_it(client, rt, park, world, ops_admin):
    park.drive_in("沪A12345", bay="B1-C001")
    scanned = client.post(BAY, json={"qr": _qr(client, ops_admin, world["car_park"], "B2-C003")},
                          headers=world["headers"])
    assert scanned.status_code == 200, scanned.get_json()
    assert (scanned.get_json()["bay"], scanned.get_json()["bay_source"]) == ("B2-C003", "qr")
    [car] = client.get(CAR, headers=world["headers"]).get_json()["cars"]
    assert (car["bay"], car["bay_source"], car["level"]["code"]) == ("B2-C003", "qr", "B2")


def test_a_typed_bay_must_exist_in_that_car_park(client, rt, world):
    typed = client.post(BAY, json={"bay": "b1-c005"}, headers=world["headers"])
    assert (typed.get_json()["bay"], typed.get_json()["bay_source"]) == ("B1-C005", "typed")
    api_error(client.post(BAY, json={"bay": "B1-C999"}, headers=world["headers"]), "parking.bay_not_found")
    api_error(client.post(BAY, json={"bay": "not a bay"}, headers=world["headers"]), "parking.bay_invalid")
    api_error(client.post(BAY, json={}, headers=world["headers"]), "parking.bay_input")
    assert _session(rt, world["session"]) == ("B1-C005", "typed")


def test_a_forged_or_foreign_qr_is_refused_and_changes_nothing(client, rt, world, ops_admin):
    genuine = _qr(client, ops_admin, world["car_park"], "B2-C003")
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    api_error(client.post(BAY, json={"qr": forged}, headers=world["headers"]), "parking.qr_invalid")
    card = client.get("/api/v1/me/card", headers=world["headers"]).get_json()["code"]
    api_error(client.post(BAY, json={"qr": card}, headers=world["headers"]), "parking.qr_invalid")
    api_error(client.post(BAY, json={"qr": "PB1.1.999999.AAAAAAAAAAAAAAAAAAAA"}, headers=world["headers"]),
              "parking.qr_invalid")
    assert _session(rt, world["session"]) == (None, None)


def test_a_qr_of_a_car_park_my_car_is_not_in(client, rt, world, ops_admin):
    other = parkcore_car_park(rt, code="P2", vendor_park_code="P002")
    api_error(client.post(BAY, json={"qr": _qr(client, ops_admin, other, "B1-C001")}, headers=world["headers"]),
              "parking.not_parked")


def test_with_two_cars_in_the_member_names_the_plate(client, rt, world):
    from mallapp.domain.members import Member

    with rt.sessions.begin() as s:
        s.scalar(select(Member)).tier = "vip"
    client.post(PLATES, json={"plate": "沪B54321"}, headers=world["headers"])
    parkcore_parked_car(rt, world["car_park"], "沪B54321", minutes_ago=10)
    error = api_error(client.post(BAY, json={"bay": "B1-C002"}, headers=world["headers"]), "parking.plate_required")
    assert error["details"]["plates"] == ["沪A12345", "沪B54321"]
    done = client.post(BAY, json={"bay": "B1-C002", "plate": "沪b 54321"}, headers=world["headers"])
    assert done.get_json()["plate"] == "沪B54321"


def test_without_a_car_in_there_is_nothing_to_place(client, member, rt, park):
    parkcore_car_park(rt)
    assert client.get(CAR, headers=member["headers"]).get_json() == {"cars": [], "carpark_unavailable": False}
    api_error(client.post(BAY, json={"bay": "B1-C001"}, headers=member["headers"]), "parking.not_parked")


def test_public_car_parks_show_free_spaces_per_level_or_say_they_are_unknown(client, rt, park):
    car_park_id = parkcore_car_park(rt)
    park.drive_in("沪A12345", bay="B2-C001")
    [car_park] = client.get("/api/v1/parking/car-parks").get_json()["car_parks"]
    assert car_park["free_spaces_known"] is True
    assert [(lv["code"], lv["spaces"], lv["free"]) for lv in car_park["levels"]] == [("B1", 120, 120), ("B2", 80, 79)]
    park.drive_in("沪B12345", bay="B2-C002")
    [cached] = client.get("/api/v1/parking/car-parks").get_json()["car_parks"]
    assert cached["levels"][1]["free"] == 79  # kept [parking] free_spaces_cache_s: the car park is not asked
    rt.redis.delete(locate.free_spaces_key(car_park_id))
    park.fail_next("space/free", status=503)
    [car_park] = client.get("/api/v1/parking/car-parks").get_json()["car_parks"]
    assert car_park["free_spaces_known"] is False and [lv["free"] for lv in car_park["levels"]] == [None, None]
    # Not asked again at once (a car park that is down is not waited on by every visitor); later it is.
    assert client.get("/api/v1/parking/car-parks").get_json()["car_parks"][0]["free_spaces_known"] is False
    rt.redis.delete(locate.down_key(car_park_id))
    assert client.get("/api/v1/parking/car-parks").get_json()["car_parks"][0]["levels"][1]["free"] == 78
