"""Ops' car parks: car parks with validated tariffs and rules, levels, bays (one and numbered ranges), gates, QR."""

from __future__ import annotations

import pytest
from factories import PARKCORE_TARIFF, api_error
from sqlalchemy import func, select

from mallapp.domain.parking import locate, rules
from mallapp.domain.parking.models import CarPark, ParkingBay

OPS = "/api/v1/ops/car-parks"
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _park(client, headers, **over):
    body = {"code": "P1", "name": "北区停车场 North", "vendor_park_code": "P001", "tariff": PARKCORE_TARIFF, **over}
    return client.post(OPS, json=body, headers=headers)


def _count(rt, model) -> int:
    with rt.sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_new_car_park_stores_the_validated_tariff_and_the_default_rules(client, ops_admin):
    made = _park(client, ops_admin["headers"])
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["rules"] == rules.default_rules()
    assert body["tariff"]["grace_minutes"] == 15  # the defaults filled in: what parse_tariff validated
    assert body["tariff"]["plans"]["small"]["first_period_fen"] == 1000
    assert body["levels"] == [] and body["gates"] == [] and body["fee_source"] == "carpark"


def test_a_duplicate_car_park_is_409_and_adds_nothing(client, rt, ops_admin):
    _park(client, ops_admin["headers"])
    api_error(_park(client, ops_admin["headers"], vendor_park_code="P002"), "parking.car_park_exists")
    api_error(_park(client, ops_admin["headers"], code="P2"), "parking.car_park_exists")
    assert _count(rt, CarPark) == 1


def test_an_invalid_tariff_is_400_naming_the_field(client, rt, ops_admin):
    bad = {"plans": {"small": {"bands": [{"name": "day", "start": "08:00", "end": "20:00", "step_fen": 500}]}}}
    error = api_error(_park(client, ops_admin["headers"], tariff=bad), "parking.tariff_invalid")
    assert error["message"]
    assert _count(rt, CarPark) == 0


def test_tariff_and_rules_are_replaced_only_when_valid(client, ops_admin):
    park = _park(client, ops_admin["headers"]).get_json()
    url = f"{OPS}/{park['id']}"
    api_error(client.put(f"{url}/rules", json={"points": {"points_per_hour": 0}}, headers=ops_admin["headers"]),
              "parking.rules_invalid")
    api_error(client.put(f"{url}/tariff", json={"plans": {}}, headers=ops_admin["headers"]), "parking.tariff_invalid")
    unchanged = client.get(url, headers=ops_admin["headers"]).get_json()
    assert unchanged["rules"] == rules.default_rules() and unchanged["tariff"] == park["tariff"]
    changed = client.put(f"{url}/rules", json={"points": {"points_per_hour": 500}}, headers=ops_admin["headers"])
    assert changed.status_code == 200 and changed.get_json()["rules"]["points"]["points_per_hour"] == 500
    tariff = {"grace_minutes": 20, **PARKCORE_TARIFF}
    assert client.put(f"{url}/tariff", json=tariff, headers=ops_admin["headers"]).get_json()["tariff"]["grace_minutes"] == 20


def test_levels_bays_and_gates(client, ops_admin):
    h = ops_admin["headers"]
    park = _park(client, h).get_json()["id"]
    level = client.post(f"{OPS}/{park}/levels", json={"code": "b2", "name": "地下二层 B2", "floor": -2, "spaces": 80},
                        headers=h)
    assert level.status_code == 201 and level.get_json()["code"] == "B2"
    api_error(client.post(f"{OPS}/{park}/levels", json={"code": "B2", "name": "again", "floor": -2, "spaces": 1},
                          headers=h), "parking.level_exists")
    bay = client.post(f"{OPS}/{park}/bays", json={"code": "b2-c058"}, headers=h)
    assert bay.status_code == 201 and bay.get_json()["code"] == "B2-C058"
    api_error(client.post(f"{OPS}/{park}/bays", json={"code": "B2-C058"}, headers=h), "parking.bay_exists")
    api_error(client.post(f"{OPS}/{park}/bays", json={"code": "B3-C001"}, headers=h), "parking.level_unknown")
    api_error(client.post(f"{OPS}/{park}/bays", json={"code": "B2C058"}, headers=h), "parking.bay_invalid")
    gate = client.post(f"{OPS}/{park}/gates", json={"code": "IN-1", "name": "北入口 North in", "kind": "entrance"},
                       headers=h)
    assert gate.status_code == 201
    api_error(client.post(f"{OPS}/{park}/gates", json={"code": "IN-1", "name": "x", "kind": "entrance"}, headers=h),
              "parking.gate_exists")
    detail = client.get(f"{OPS}/{park}", headers=h).get_json()
    assert [(lv["code"], lv["bays"]) for lv in detail["levels"]] == [("B2", 1)]
    assert [g["code"] for g in detail["gates"]] == ["IN-1"]


def test_a_bay_range_is_numbered_and_idempotent(client, rt, ops_admin):
    h = ops_admin["headers"]
    park = _park(client, h).get_json()["id"]
    client.post(f"{OPS}/{park}/levels", json={"code": "B2", "name": "B2", "floor": -2, "spaces": 120}, headers=h)
    client.post(f"{OPS}/{park}/bays", json={"code": "B2-C058"}, headers=h)
    first = client.post(f"{OPS}/{park}/bays/range", json={"prefix": "B2-C", "first": 1, "last": 120}, headers=h)
    assert first.status_code == 200 and first.get_json() == {"created": 119, "existing": 1}
    again = client.post(f"{OPS}/{park}/bays/range", json={"prefix": "B2-C", "first": 1, "last": 120}, headers=h)
    assert again.get_json() == {"created": 0, "existing": 120}
    codes = [b["code"] for b in client.get(f"{OPS}/{park}/bays", headers=h).get_json()["bays"]]
    assert codes[0] == "B2-C001" and codes[-1] == "B2-C120" and len(codes) == 120
    api_error(client.post(f"{OPS}/{park}/bays/range", json={"prefix": "B9-C", "first": 1, "last": 3}, headers=h),
              "parking.level_unknown")
    api_error(client.post(f"{OPS}/{park}/bays/range", json={"prefix": "B2-C", "first": 5, "last": 1}, headers=h),
              "parking.bay_range_invalid")
    assert _count(rt, ParkingBay) == 120


def test_a_bays_qr_payload_opens_to_that_bay(client, rt, ops_viewer, ops_admin):
    h = ops_admin["headers"]
    park = _park(client, h).get_json()["id"]
    client.post(f"{OPS}/{park}/levels", json={"code": "B1", "name": "B1", "floor": -1, "spaces": 10}, headers=h)
    bay = client.post(f"{OPS}/{park}/bays", json={"code": "B1-A007"}, headers=h).get_json()
    qr = client.get(f"{OPS}/{park}/bays/{bay['id']}/qr", headers=ops_viewer["headers"])
    assert qr.status_code == 200
    assert locate.BAY_QR.open(rt.secret, qr.get_json()["qr"]) == (park, bay["id"])
    api_error(client.get(f"{OPS}/{park}/bays/999/qr", headers=h), "parking.bay_not_found")
    every = client.get(f"{OPS}/{park}/bays/qr", headers=ops_viewer["headers"]).get_json()["bays"]
    assert every == [qr.get_json()]


def test_a_viewer_reads_but_cannot_change(client, ops_admin, ops_viewer):
    park = _park(client, ops_admin["headers"]).get_json()["id"]
    assert client.get(OPS, headers=ops_viewer["headers"]).get_json()["car_parks"][0]["id"] == park
    api_error(client.patch(f"{OPS}/{park}", json={"name": "x"}, headers=ops_viewer["headers"]), "ops.admin_required")
    api_error(_park(client, ops_viewer["headers"], code="P9", vendor_park_code="P9"), "ops.admin_required")


def test_patch_changes_name_and_refuses_a_taken_vendor_code(client, ops_admin):
    h = ops_admin["headers"]
    one = _park(client, h).get_json()["id"]
    _park(client, h, code="P2", vendor_park_code="P002")
    assert client.patch(f"{OPS}/{one}", json={"name": "新名字 Renamed", "active": False}, headers=h).get_json()["active"] is False
    api_error(client.patch(f"{OPS}/{one}", json={"vendor_park_code": "P002"}, headers=h), "parking.car_park_exists")
    assert client.get(f"{OPS}/{one}", headers=h).get_json()["vendor_park_code"] == "P001"
