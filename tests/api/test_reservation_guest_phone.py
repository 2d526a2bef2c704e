"""A cashier recognises a booking's guest by the last four digits of the phone; a manager and the key see it whole."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import TOMORROW, bearer, book, new_member, publish, staff_headers

from mallapp.domain import members, merchants, venue_admin
from mallapp.domain.members import Member
from mallapp.domain.reservation_admin import Band

M = "/api/v1/merchant"
PHONE = "+8613812341234"

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def booked(rt, client) -> dict[str, Any]:
    """A restaurant's key, manager and cashier, and a guest with a phone booked at noon tomorrow."""
    with rt.sessions.begin() as s:
        merchant, key = merchants.create(s, "Noodle House Ltd", rt.now())
        merchant_id = merchant.id
        store_id = venue_admin.create_store(s, name="Noodle House", floor=3, x=0, y=0, merchant_id=merchant_id,
                                            now=rt.now()).id
    slot, = publish(rt, merchant_id, store_id, ["12:00"], [Band(1, 4, 2)])
    guest = new_member(rt, "o-guest-phone")
    with rt.sessions.begin() as s:
        members.set_phone(s, s.get_one(Member, guest), country_code="86", pure_number="13812341234")
    reservation = book(rt, guest, slot).reservation
    return {"store": store_id, "reservation": reservation.id, "starts_at": reservation.starts_at,
            "key": bearer(key), "manager": staff_headers(client, bearer(key), "noodle-manager", "manager"),
            "cashier": staff_headers(client, bearer(key), "noodle-cashier", "cashier")}


def _listed_phone(client, booked, caller: str) -> str:
    day = client.get(f"{M}/stores/{booked['store']}/reservations", query_string={"date": TOMORROW.isoformat()},
                     headers=booked[caller])
    assert day.status_code == 200, day.get_json()
    guest, = [r["member"] for r in day.get_json()["reservations"]]
    return guest["phone"]


def test_the_day_list_shows_a_cashier_the_last_four_digits_and_a_manager_and_the_key_the_whole_number(
        client, booked):
    assert _listed_phone(client, booked, "cashier") == "*******1234"
    assert _listed_phone(client, booked, "manager") == PHONE
    assert _listed_phone(client, booked, "key") == PHONE


def test_confirming_arrival_and_cancelling_answer_a_cashier_with_the_masked_number_too(client, clock, booked):
    clock.now = booked["starts_at"] - timedelta(minutes=10)
    arrived = client.post(f"{M}/reservations/{booked['reservation']}/arrive", headers=booked["cashier"])
    assert arrived.status_code == 200 and arrived.get_json()["member"]["phone"] == "*******1234"
    again = client.post(f"{M}/reservations/{booked['reservation']}/arrive", headers=booked["manager"])
    assert again.get_json()["member"]["phone"] == PHONE


def test_a_cashier_cancelling_sees_the_masked_number(client, booked):
    done = client.post(f"{M}/reservations/{booked['reservation']}/cancel", json={"reason": "the guest called"},
                       headers=booked["cashier"])
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["member"]["phone"] == "*******1234"


def test_the_mask_keeps_four_digits_and_leaves_no_phone_as_none():
    assert members.masked_phone(None) is None
    assert members.masked_phone("+8613812341234") == "*******1234"
