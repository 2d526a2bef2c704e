"""The restaurant host's reads: the store picker's restaurants and the caller display's numbers called today."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import STAFF_PASSWORD, api_error, staff_headers

from mallapp.domain import merchants, venue_admin

M = "/api/v1/merchant"

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _store(rt, merchant_id: int, name: str, active: bool = True) -> int:
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name=name, floor=3, x=0, y=0, merchant_id=merchant_id, now=rt.now())
        store.active = active
        return store.id


@pytest.fixture
def host(rt, client, merchant) -> dict[str, Any]:
    """The conftest merchant's restaurant, its queue open, and a cashier (the host) signed in."""
    store = _store(rt, merchant["id"], "Noodle House")
    h = {**merchant, "store": store, "cashier": staff_headers(client, merchant["headers"], "host-1", "cashier"),
         "queue": f"{M}/stores/{store}/queue", "calls": f"{M}/stores/{store}/queue/calls"}
    assert client.post(f"{h['queue']}/open", json={}, headers=h["cashier"]).status_code == 200
    return h


def _take(client, host, member, size: int = 2) -> dict[str, Any]:
    taken = client.post(f"/api/v1/stores/{host['store']}/queue/tickets", json={"party_size": size},
                        headers=member["headers"])
    assert taken.status_code == 201, taken.get_json()
    return taken.get_json()


def _call(client, host, band: str, request_id: str) -> dict[str, Any]:
    called = client.post(f"{host['queue']}/call", json={"band": band, "request_id": request_id},
                         headers=host["cashier"])
    assert called.status_code == 201, called.get_json()
    return called.get_json()


def test_the_picker_lists_the_merchants_active_stores_to_any_staff_member(rt, client, host):
    second = _store(rt, host["id"], "Dumpling Bar")
    _store(rt, host["id"], "Closed Kitchen", active=False)
    with rt.sessions.begin() as s:
        other = merchants.create(s, "Rival Grill", rt.now())[0].id
    _store(rt, other, "Rival Grill")
    listed = client.get(f"{M}/stores", headers=host["cashier"])
    assert listed.status_code == 200, listed.get_json()
    assert [(s["id"], s["name"]) for s in listed.get_json()["stores"]] == [(second, "Dumpling Bar"),
                                                                         (host["store"], "Noodle House")]


def test_the_picker_refuses_members_and_ops(client, host, member, ops_admin):
    api_error(client.get(f"{M}/stores", headers=member["headers"]), "auth.wrong_caller")
    api_error(client.get(f"{M}/stores", headers=ops_admin["headers"]), "auth.wrong_caller")
    assert client.get(f"{M}/stores").status_code == 401


def test_the_display_shows_each_bands_called_numbers_newest_first_and_no_member_data(client, host, members_api):
    a, b, c, d = (members_api.sign_in(openid=f"o-host-{i}") for i in range(4))
    first, second = _take(client, host, a), _take(client, host, b)
    big = _take(client, host, c, 6)
    straight = _take(client, host, d, 1)
    _call(client, host, "A", "c-1")
    _call(client, host, "A", "c-2")
    _call(client, host, "C", "c-3")
    # Seated and skipped tickets stay on the display as called; one seated straight from the line was never called.
    assert client.post(f"{host['queue']}/tickets/{first['id']}/seat", headers=host["cashier"]).status_code == 200
    assert client.post(f"{host['queue']}/tickets/{big['id']}/skip", headers=host["cashier"]).status_code == 200
    assert client.post(f"{host['queue']}/tickets/{straight['id']}/seat", headers=host["cashier"]).status_code == 200
    shown = client.get(host["calls"], headers=host["cashier"])
    assert shown.status_code == 200, shown.get_json()
    body = shown.get_json()
    assert body["store_name"] == "Noodle House" and body["date"] == "2026-03-10"
    calls = {band["code"]: [(c["ticket_no"], c["status"]) for c in band["calls"]] for band in body["bands"]}
    assert calls == {"A": [(second["ticket_no"], "called"), (first["ticket_no"], "seated")], "B": [],
                     "C": [(big["ticket_no"], "skipped")]}
    assert {k for band in body["bands"] for call in band["calls"] for k in call} == {"ticket_no", "called_at", "status"}


def test_the_display_keeps_a_few_numbers_per_band_and_only_todays(client, host, members_api, clock):
    people = [members_api.sign_in(openid=f"o-few-{i}") for i in range(4)]
    for n, person in enumerate(people[:3]):
        _take(client, host, person)
        _call(client, host, "A", f"few-{n}")
    newest = client.get(host["calls"], query_string={"per_band": 2}, headers=host["cashier"]).get_json()
    assert [c["ticket_no"] for c in newest["bands"][0]["calls"]] == ["A003", "A002"]
    clock.now += timedelta(days=1)
    _take(client, host, people[3])
    tomorrow = client.get(host["calls"], headers=host["cashier"]).get_json()
    assert tomorrow["date"] == "2026-03-11" and tomorrow["bands"][0]["calls"] == []
    assert tomorrow["bands"][0]["waiting"] == 1


def test_the_display_of_another_merchants_store_is_not_found(rt, client, host):
    with rt.sessions.begin() as s:
        other = merchants.create(s, "Rival Grill", rt.now())[0].id
    theirs = _store(rt, other, "Rival Grill")
    api_error(client.get(f"{M}/stores/{theirs}/queue/calls", headers=host["cashier"]), "store.not_found")
    api_error(client.get(host["calls"], query_string={"per_band": 0}, headers=host["cashier"]),
              "request.invalid_query")


def test_the_boards_places_are_the_ones_each_member_sees(client, host, members_api):
    people = [members_api.sign_in(openid=f"o-place-{i}") for i in range(6)]
    for person, size in zip(people, (2, 1, 4, 2, 6, 3), strict=True):
        _take(client, host, person, size)
    _call(client, host, "A", "place-1")
    board = {t["ticket_no"]: t for t in client.get(host["queue"], headers=host["cashier"]).get_json()["tickets"]}
    seen = {}
    for person in people:
        mine = client.get("/api/v1/me/queue-tickets", headers=person["headers"]).get_json()["tickets"][0]
        seen[mine["ticket_no"]] = (mine["ahead"], mine["people_ahead"], mine["estimated_wait_s"])
    assert {no: (t["ahead"], t["people_ahead"], t["estimated_wait_s"]) for no, t in board.items()} == seen
    assert seen["A003"][:2] == (1, 1) and seen["B002"][:2] == (1, 4) and seen["A001"] == (None, None, None)


def test_the_host_pages_open_for_staff_whatever_store_the_address_names(client, host):
    signed = client.post("/console/session", json={"audience": "staff", "username": "host-1",
                                                   "password": STAFF_PASSWORD})
    assert signed.status_code == 200, signed.get_json()
    for path in ("/console/host/", "/console/host/reservations", "/console/host/display",
                 f"/console/host/display?store={host['store']}", "/console/host/display?store=²",
                 "/console/host/?store=99999999999999"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "Content-Security-Policy" in page.headers
    assert b"sidebar" not in client.get("/console/host/display").data  # the TV shows guests no way elsewhere
