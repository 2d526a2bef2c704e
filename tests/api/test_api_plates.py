"""Members' plates: normalised, one member per plate, the per-tier limit, and what slows tier borrowing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import api_error, race_in_transactions
from sqlalchemy import select

from mallapp.domain.members import Member
from mallapp.domain.parking import bindings
from mallapp.domain.parking.models import PlateBinding
from mallapp.errors import Conflict

PLATES = "/api/v1/me/plates"


def _bindings(rt) -> list[tuple[int, str, bool]]:
    with rt.sessions.begin() as session:
        return [(b.member_id, b.plate, b.unbound_at is None)
                for b in session.scalars(select(PlateBinding).order_by(PlateBinding.id))]


def _tier(rt, member: dict, tier: str | None) -> None:
    with rt.sessions.begin() as session:
        session.get(Member, member["member"]["id"]).tier = tier


def test_a_plate_is_normalised_and_its_type_read_from_it(client, member):
    made = client.post(PLATES, json={"plate": "沪a·d1234 5"}, headers=member["headers"])
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["plate"] == "沪AD12345" and made.get_json()["vehicle_type"] == "new_energy"
    mine = client.get(PLATES, headers=member["headers"]).get_json()
    assert [p["plate"] for p in mine["plates"]] == ["沪AD12345"] and mine["limit"] == 1


def test_the_vehicle_type_given_wins(client, member):
    made = client.post(PLATES, json={"plate": "沪A12345", "vehicle_type": "large"}, headers=member["headers"])
    assert made.get_json()["vehicle_type"] == "large"


def test_binding_a_plate_i_hold_is_idempotent(client, rt, member):
    client.post(PLATES, json={"plate": "沪A12345"}, headers=member["headers"])
    again = client.post(PLATES, json={"plate": "沪A 12345"}, headers=member["headers"])
    assert again.status_code == 200 and again.get_json()["plate"] == "沪A12345"
    assert len(_bindings(rt)) == 1


def test_a_malformed_plate_is_400_and_binds_nothing(client, rt, member):
    for text in ("ABC123", "沪A1234", "沪AI2345", "沪A123456789"):
        api_error(client.post(PLATES, json={"plate": text}, headers=member["headers"]), "parking.plate_invalid")
    assert _bindings(rt) == []


def test_someone_elses_plate_is_taken_and_nothing_changes(client, rt, shoppers):
    ada, bo = shoppers["ada"], shoppers["bo"]
    _tier(rt, bo, "vip")  # bo's tier is the prize of borrowing: it must not help
    client.post(PLATES, json={"plate": "沪A12345"}, headers=ada["headers"])
    before = _bindings(rt)
    error = api_error(client.post(PLATES, json={"plate": "沪A12345"}, headers=bo["headers"]), "parking.plate_taken")
    assert "ada" not in error["message"] and "details" not in error  # who holds it is not said
    assert _bindings(rt) == before
    assert client.get(PLATES, headers=bo["headers"]).get_json()["plates"] == []


def test_the_limit_follows_the_tier(client, rt, member):
    h = member["headers"]
    assert client.post(PLATES, json={"plate": "沪A11111"}, headers=h).status_code == 201
    error = api_error(client.post(PLATES, json={"plate": "沪A22222"}, headers=h), "parking.plate_limit")
    assert error["details"] == {"limit": 1, "bound": 1}
    _tier(rt, member, "major")
    assert client.post(PLATES, json={"plate": "沪A22222"}, headers=h).status_code == 201
    api_error(client.post(PLATES, json={"plate": "沪A33333"}, headers=h), "parking.plate_limit")
    assert client.get(PLATES, headers=h).get_json()["limit"] == 2
    assert len(_bindings(rt)) == 2


def test_unbind_then_another_member_waits_out_the_cooldown(client, rt, clock, shoppers):
    ada, bo = shoppers["ada"], shoppers["bo"]
    client.post(PLATES, json={"plate": "沪A12345"}, headers=ada["headers"])
    assert client.delete(f"{PLATES}/沪A12345", headers=ada["headers"]).status_code == 204
    api_error(client.delete(f"{PLATES}/沪A12345", headers=ada["headers"]), "parking.plate_not_bound")
    api_error(client.post(PLATES, json={"plate": "沪A12345"}, headers=bo["headers"]), "parking.plate_cooling_down")
    # The owner takes it back at once; then gives it up again.
    assert client.post(PLATES, json={"plate": "沪A12345"}, headers=ada["headers"]).status_code == 201
    client.delete(f"{PLATES}/沪A12345", headers=ada["headers"])
    clock.advance(hours=rt.settings.parking.plate_cooldown_hours + 1)
    assert client.post(PLATES, json={"plate": "沪A12345"}, headers=bo["headers"]).status_code == 201
    assert [(m, p, a) for m, p, a in _bindings(rt) if a] == [(bo["member"]["id"], "沪A12345", True)]


@pytest.mark.parametrize("settings_overrides", [{"parking": {"plate_binds_per_30_days": 3}}])
def test_binding_a_new_car_every_visit_runs_out(client, rt, clock, member):
    h = member["headers"]
    for n in range(3):
        assert client.post(PLATES, json={"plate": f"沪A1000{n}"}, headers=h).status_code == 201
        client.delete(f"{PLATES}/沪A1000{n}", headers=h)
    error = api_error(client.post(PLATES, json={"plate": "沪A10009"}, headers=h), "parking.plate_changes_exhausted")
    assert error["details"] == {"limit": 3, "days": 30}
    clock.advance(days=30, minutes=1)
    assert client.post(PLATES, json={"plate": "沪A10009"}, headers=h).status_code == 201


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_members_binding_one_plate_at_once_one_wins(rt, shoppers):
    ids = [shoppers[name]["member"]["id"] for name in ("ada", "bo", "chen")]
    cfg = rt.settings.parking
    results = race_in_transactions(rt, 3, lambda session, i: bindings.bind(
        session, ids[i], "沪A12345", vehicle_type=None, cfg=cfg, now=rt.now() + timedelta(seconds=i)))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, Conflict) and r.code == "parking.plate_taken" for r in results if isinstance(r, Exception))
    assert len([b for b in _bindings(rt) if b[2]]) == 1


def test_my_plates_are_in_my_data_and_freed_when_i_erase_my_account(client, rt, shoppers):
    ada, bo = shoppers["ada"], shoppers["bo"]
    client.post(PLATES, json={"plate": "沪A12345"}, headers=ada["headers"])
    exported = client.get("/api/v1/me/data", headers=ada["headers"]).get_json()
    assert [row["plate"] for row in exported["sections"]["plates"]] == ["沪A12345"]
    assert client.delete("/api/v1/me", headers=ada["headers"]).status_code == 200
    assert _bindings(rt) == []  # erased, not kept under the anonymous id: the plate is free at once
    assert client.post(PLATES, json={"plate": "沪A12345"}, headers=bo["headers"]).status_code == 201
