"""Table reservations: slots, bookings and their rules through the API, and the clock's two jobs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import (
    NOON,
    TOMORROW,
    api_error,
    bearer,
    book,
    inbox_keys,
    inbox_texts,
    new_member,
    publish,
    reads_english,
    restaurant,
    slot_figures,
    staff_headers,
)

from mallapp.domain import (
    merchants,
    notifications,
    reservation_admin,
    reservations,
    venue_admin,
)
from mallapp.domain.reservation_admin import Band
from mallapp.domain.reservations import Reservation

M = "/api/v1/merchant"
MALL_TZ = ZoneInfo("Asia/Shanghai")


pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def status_of(rt, reservation_id: int) -> str:
    with rt.sessions.begin() as s:
        return s.get(Reservation, reservation_id).status


# --- API fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def shop(rt, client, merchant) -> dict[str, Any]:
    """A restaurant with a manager and a cashier, and a second merchant with its own restaurant and manager."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Noodle House", floor=3, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
        other, key = merchants.create(s, "Dumpling Bar Ltd", rt.now())
        other_store = venue_admin.create_store(s, name="Dumpling Bar", floor=3, x=9, y=0, merchant_id=other.id,
                                               now=rt.now()).id
    return {**merchant, "store": store,
            "manager": staff_headers(client, merchant["headers"], "noodle-manager", "manager"),
            "cashier": staff_headers(client, merchant["headers"], "noodle-cashier", "cashier"),
            "other": {"store": other_store, "manager": staff_headers(client, bearer(key), "dumpling-manager", "manager")}}


def _pattern(**over: Any) -> dict[str, Any]:
    return {"first_day": TOMORROW.isoformat(), "times": ["12:00", "18:00"], "duration_minutes": 90,
            "bands": [{"min_party": 1, "max_party": 2, "tables": 2}, {"min_party": 3, "max_party": 4, "tables": 1}],
            **over}


@pytest.fixture
def slots(client, shop) -> dict[str, int]:
    """Tomorrow's slots at the shop, by "HH:MM/min_party": tables 2 for 1-2, 1 for 3-4."""
    done = client.post(f"{M}/stores/{shop['store']}/reservation-slots", json=_pattern(), headers=shop["manager"])
    assert done.status_code == 200, done.get_json()
    local = [(datetime.fromisoformat(s["starts_at"]).astimezone(MALL_TZ), s) for s in done.get_json()["slots"]]
    return {f"{at:%H:%M}/{s['min_party']}": s["id"] for at, s in local}


def _book(client, member, slot_id: int, party: int = 2, request_id: str = "r-1"):
    return client.post("/api/v1/me/reservations", json={"slot_id": slot_id, "party_size": party,
                                                          "request_id": request_id}, headers=member["headers"])


# --- publishing slots ------------------------------------------------------------------------------

def test_a_manager_publishes_a_weekly_pattern_and_publishing_again_updates_the_same_slots(client, shop):
    url = f"{M}/stores/{shop['store']}/reservation-slots"
    # Tuesday 10 March (12:00 and 18:00 still ahead) to Monday 23 March, Tuesdays and Fridays only.
    body = _pattern(first_day="2026-03-10", last_day="2026-03-23", weekdays=[2, 5])
    first = client.post(url, json=body, headers=shop["manager"]).get_json()
    assert (first["created"], first["updated"], first["skipped_past"]) == (16, 0, 0)  # 4 days x 2 times x 2 bands
    again = client.post(url, json={**body, "bands": [{"min_party": 1, "max_party": 2, "tables": 5},
                                                     {"min_party": 3, "max_party": 4, "tables": 1}]},
                        headers=shop["manager"]).get_json()
    assert (again["created"], again["updated"]) == (0, 16)
    day = client.get(url, query_string={"date": "2026-03-13"}, headers=shop["cashier"]).get_json()
    assert [(s["starts_at"], s["min_party"], s["capacity"]) for s in day["slots"]] == [
        ("2026-03-13T04:00:00Z", 1, 5), ("2026-03-13T04:00:00Z", 3, 1),
        ("2026-03-13T10:00:00Z", 1, 5), ("2026-03-13T10:00:00Z", 3, 1)]


def test_publishing_skips_start_times_already_past(client, shop):
    done = client.post(f"{M}/stores/{shop['store']}/reservation-slots",
                       json=_pattern(first_day="2026-03-10", times=["09:00", "12:00"]), headers=shop["manager"])
    assert (done.get_json()["created"], done.get_json()["skipped_past"]) == (2, 1)


@pytest.mark.parametrize(("over", "code"), [
    ({"bands": [{"min_party": 1, "max_party": 4, "tables": 1}, {"min_party": 3, "max_party": 6, "tables": 1}]},
     "reservation.invalid_bands"),
    ({"bands": [{"min_party": 3, "max_party": 2, "tables": 1}]}, "reservation.invalid_bands"),
    ({"last_day": "2026-03-01"}, "reservation.invalid_range"),
    ({"times": ["25:00"]}, "request.invalid"),
    ({"duration_minutes": 0}, "request.invalid"),
])
def test_a_bad_pattern_is_refused_and_publishes_nothing(client, shop, over, code):
    url = f"{M}/stores/{shop['store']}/reservation-slots"
    api_error(client.post(url, json=_pattern(**over), headers=shop["manager"]), code)
    assert client.get(url, query_string={"date": TOMORROW.isoformat()}, headers=shop["manager"]).get_json()["slots"] == []


def test_only_a_manager_publishes_and_a_merchant_reaches_only_its_own_stores(client, shop, slots):
    url = f"{M}/stores/{shop['store']}/reservation-slots"
    api_error(client.post(url, json=_pattern(), headers=shop["cashier"]), "merchant.role_required")
    assert client.post(url, json=_pattern(), headers=shop["headers"]).status_code == 200  # the merchant's key
    other = shop["other"]["manager"]
    api_error(client.post(url, json=_pattern(), headers=other), "store.not_found")
    api_error(client.get(url, headers=other), "store.not_found")
    api_error(client.get(f"{M}/stores/{shop['store']}/reservations", headers=other), "store.not_found")
    api_error(client.patch(f"{M}/reservation-slots/{slots['12:00/1']}", json={"open": False}, headers=other),
              "reservation.slot_not_found")


def test_a_slot_keeps_at_least_the_tables_it_has_booked_and_a_closed_slot_takes_no_bookings(client, shop, slots,
                                                                                            member):
    slot = slots["12:00/1"]
    assert _book(client, member, slot).status_code == 201
    url = f"{M}/reservation-slots/{slot}"
    api_error(client.patch(url, json={"capacity": 0}, headers=shop["manager"]), "reservation.capacity_below_booked")
    closed = client.patch(url, json={"open": False, "capacity": 1}, headers=shop["manager"]).get_json()
    assert (closed["open"], closed["capacity"], closed["booked"], closed["remaining"]) == (False, 1, 1, 0)
    api_error(_book(client, member, slot, request_id="r-2"), "reservation.slot_not_available")


# --- members booking -------------------------------------------------------------------------------

def test_a_member_sees_open_slots_with_the_tables_left_for_their_party(client, shop, slots, member):
    url = f"/api/v1/stores/{shop['store']}/reservation-slots"
    seen = client.get(url, query_string={"date": TOMORROW.isoformat(), "party_size": 4}, headers=member["headers"])
    assert [(s["id"], s["remaining"]) for s in seen.get_json()["slots"]] == [(slots["12:00/3"], 1),
                                                                             (slots["18:00/3"], 1)]
    assert _book(client, member, slots["12:00/3"], party=4).status_code == 201
    after = client.get(url, query_string={"date": TOMORROW.isoformat()}, headers=member["headers"]).get_json()
    assert [s["id"] for s in after["slots"]] == [slots["12:00/1"], slots["18:00/1"], slots["18:00/3"]]
    api_error(client.get("/api/v1/stores/999/reservation-slots", headers=member["headers"]),
              "reservation.store_not_found")


def test_booking_takes_a_table_confirms_it_and_a_retry_with_the_same_request_id_takes_no_second(client, rt, slots,
                                                                                                member):
    first = _book(client, member, slots["12:00/1"])
    assert first.status_code == 201
    booked = first.get_json()
    assert (booked["status"], booked["store_name"], booked["party_size"], booked["replayed"]) == (
        "booked", "Noodle House", 2, False)
    retry = _book(client, member, slots["12:00/1"])
    assert retry.status_code == 200 and retry.get_json() == {**booked, "replayed": True}
    assert slot_figures(rt, slots["12:00/1"]) == (1, 1)
    api_error(_book(client, member, slots["18:00/1"]), "reservation.request_id_reused")
    inbox = client.get("/api/v1/me/inbox", headers=member["headers"]).get_json()  # zh-CN, the default
    assert [(n["kind"], n["title"], n["body"]) for n in inbox["items"]] == [
        ("reservation", "订座成功", "Noodle House：3月11日 12:00，2 位。")]


def test_a_full_slot_refuses_the_next_party(client, members_api, slots):
    for n in range(2):
        assert _book(client, members_api.sign_in(openid=f"o-guest-{n}"), slots["12:00/1"]).status_code == 201
    late = members_api.sign_in(openid="o-late")
    api_error(_book(client, late, slots["12:00/1"]), "reservation.full")
    assert client.get("/api/v1/me/reservations", headers=late["headers"]).get_json()["reservations"] == []


def test_a_member_cannot_hold_overlapping_bookings_at_one_restaurant(client, rt, shop, slots, member):
    assert _book(client, member, slots["12:00/1"]).status_code == 201
    # 12:00 + 90 minutes overlaps a 13:00 slot; another band at the same time is the same clash.
    later = publish(rt, shop["id"], shop["store"], ["13:00"], [Band(1, 2, 3)])[0]
    api_error(_book(client, member, later, request_id="r-2"), "reservation.overlap")
    api_error(_book(client, member, slots["12:00/3"], party=3, request_id="r-3"), "reservation.overlap")
    assert _book(client, member, slots["18:00/1"], request_id="r-4").status_code == 201
    # Another restaurant at the same time is another matter.
    elsewhere = publish(rt, *_other(rt, shop), ["12:00"], [Band(1, 2, 1)])[0]
    assert _book(client, member, elsewhere, request_id="r-5").status_code == 201


def _other(rt, shop) -> tuple[int, int]:
    with rt.sessions.begin() as s:
        store = s.get(reservations.Store, shop["other"]["store"])
        return store.merchant_id, store.id


@pytest.mark.parametrize(("party", "code"), [(3, "reservation.party_size_mismatch"),
                                             (0, "request.invalid")])
def test_a_party_outside_the_slots_band_is_refused(client, slots, member, party, code):
    error = api_error(_book(client, member, slots["12:00/1"], party=party), code)
    if code == "reservation.party_size_mismatch":
        # The same spelling as the queue's bands: min_party/max_party.
        assert error["details"] == {"min_party": 1, "max_party": 2}


def test_a_slot_that_has_started_or_is_beyond_the_horizon_cannot_be_booked(client, rt, clock, shop, slots, member):
    far = publish(rt, shop["id"], shop["store"], ["12:00"], [Band(1, 2, 1)], day=TOMORROW + timedelta(days=45))[0]
    api_error(_book(client, member, far), "reservation.slot_not_available")
    clock.advance(days=1, hours=3)  # 13:00 tomorrow
    api_error(_book(client, member, slots["12:00/1"], request_id="r-2"), "reservation.slot_not_available")
    api_error(_book(client, member, 99999, request_id="r-3"), "reservation.slot_not_found")


def test_a_member_holds_at_most_the_configured_number_of_upcoming_bookings(client, rt, shop, member):
    cap = rt.settings.reservations.max_upcoming_per_member
    ids = [publish(rt, shop["id"], shop["store"], ["12:00"], [Band(1, 2, 1)], day=TOMORROW + timedelta(days=n))[0]
           for n in range(cap + 1)]
    for n, slot_id in enumerate(ids[:cap]):
        assert _book(client, member, slot_id, request_id=f"r-{n}").status_code == 201
    api_error(_book(client, member, ids[cap], request_id="r-last"), "reservation.too_many")


# --- changing and cancelling -----------------------------------------------------------------------

def test_changing_a_booking_moves_its_table_to_the_new_slot(client, rt, slots, member):
    booked = _book(client, member, slots["12:00/1"]).get_json()
    moved = client.patch(f"/api/v1/me/reservations/{booked['id']}", json={"slot_id": slots["18:00/3"], "party_size": 4},
                         headers=member["headers"])
    assert moved.status_code == 200, moved.get_json()
    assert (moved.get_json()["slot_id"], moved.get_json()["party_size"]) == (slots["18:00/3"], 4)
    assert slot_figures(rt, slots["12:00/1"]) == (0, 0) and slot_figures(rt, slots["18:00/3"]) == (1, 1)
    smaller = client.patch(f"/api/v1/me/reservations/{booked['id']}", json={"party_size": 3},
                           headers=member["headers"])
    assert smaller.get_json()["party_size"] == 3 and slot_figures(rt, slots["18:00/3"]) == (1, 1)


def test_changing_to_a_full_slot_changes_nothing(client, rt, members_api, slots):
    other = members_api.sign_in(openid="o-other")
    assert _book(client, other, slots["18:00/3"], party=3).status_code == 201
    me = members_api.sign_in(openid="o-me")
    booked = _book(client, me, slots["12:00/1"]).get_json()
    refused = client.patch(f"/api/v1/me/reservations/{booked['id']}", json={"slot_id": slots["18:00/3"],
                                                                           "party_size": 3}, headers=me["headers"])
    api_error(refused, "reservation.full")
    still = client.get(f"/api/v1/me/reservations/{booked['id']}", headers=me["headers"]).get_json()
    assert still == {k: v for k, v in booked.items() if k != "replayed"}
    assert slot_figures(rt, slots["12:00/1"]) == (1, 1) and slot_figures(rt, slots["18:00/3"]) == (1, 1)
    api_error(client.patch(f"/api/v1/me/reservations/{booked['id']}", json={"party_size": 4},
                           headers=me["headers"]), "reservation.party_size_mismatch")


def test_cancelling_frees_the_table_and_cancelling_again_changes_nothing(client, rt, clock, slots, member):
    booked = _book(client, member, slots["12:00/1"]).get_json()
    url = f"/api/v1/me/reservations/{booked['id']}/cancel"
    cancelled = client.post(url, headers=member["headers"]).get_json()
    assert cancelled["status"] == "cancelled" and slot_figures(rt, slots["12:00/1"]) == (0, 0)
    clock.advance(minutes=5)
    assert client.post(url, headers=member["headers"]).get_json() == cancelled
    api_error(client.patch(f"/api/v1/me/reservations/{booked['id']}", json={"party_size": 1},
                           headers=member["headers"]), "reservation.not_changeable")


def test_a_booking_cannot_be_changed_or_cancelled_once_its_slot_has_started(client, clock, slots, member):
    booked = _book(client, member, slots["12:00/1"]).get_json()
    clock.now = datetime.fromisoformat(booked["starts_at"])
    api_error(client.post(f"/api/v1/me/reservations/{booked['id']}/cancel", headers=member["headers"]),
              "reservation.not_changeable")


def test_a_member_never_sees_or_changes_another_members_booking(client, members_api, slots):
    owner = members_api.sign_in(openid="o-owner")
    booked = _book(client, owner, slots["12:00/1"]).get_json()
    snoop = members_api.sign_in(openid="o-snoop")
    url = f"/api/v1/me/reservations/{booked['id']}"
    api_error(client.get(url, headers=snoop["headers"]), "reservation.not_found")
    api_error(client.patch(url, json={"party_size": 1}, headers=snoop["headers"]), "reservation.not_found")
    api_error(client.post(f"{url}/cancel", headers=snoop["headers"]), "reservation.not_found")
    assert client.get("/api/v1/me/reservations", headers=snoop["headers"]).get_json()["reservations"] == []
    assert client.get(url, headers=owner["headers"]).get_json()["status"] == "booked"


def test_a_members_bookings_list_upcoming_soonest_first_and_past_ones_apart(client, clock, slots, member):
    evening = _book(client, member, slots["18:00/1"], request_id="a").get_json()
    lunch = _book(client, member, slots["12:00/1"], request_id="b").get_json()
    mine = "/api/v1/me/reservations"
    upcoming = client.get(mine, query_string={"when": "upcoming"}, headers=member["headers"]).get_json()
    assert [r["id"] for r in upcoming["reservations"]] == [lunch["id"], evening["id"]]
    client.post(f"{mine}/{lunch['id']}/cancel", headers=member["headers"])
    past = client.get(mine, query_string={"when": "past"}, headers=member["headers"]).get_json()
    assert [r["id"] for r in past["reservations"]] == [lunch["id"]]


# --- staff -----------------------------------------------------------------------------------------

def test_staff_see_the_days_bookings_and_confirm_arrival_once(client, clock, shop, slots, members_api):
    guest = members_api.sign_in(openid="o-guest")
    assert client.patch("/api/v1/me", json={"nickname": "Lin"}, headers=guest["headers"]).status_code == 200
    booked = _book(client, guest, slots["12:00/1"]).get_json()
    day = client.get(f"{M}/stores/{shop['store']}/reservations", query_string={"date": TOMORROW.isoformat()},
                     headers=shop["cashier"]).get_json()
    assert [(r["id"], r["member"]["nickname"], r["status"]) for r in day["reservations"]] == [
        (booked["id"], "Lin", "booked")]
    api_error(client.post(f"{M}/reservations/{booked['id']}/arrive", headers=shop["cashier"]),
              "reservation.not_today")
    clock.now = datetime.fromisoformat(booked["starts_at"]) - timedelta(minutes=10)
    arrived = client.post(f"{M}/reservations/{booked['id']}/arrive", headers=shop["cashier"])
    assert arrived.status_code == 200 and arrived.get_json()["status"] == "arrived"
    assert arrived.get_json()["replayed"] is False and arrived.get_json()["arrived_by_staff_id"] is not None
    again = client.post(f"{M}/reservations/{booked['id']}/arrive", headers=shop["cashier"]).get_json()
    assert again["replayed"] is True and again["arrived_at"] == arrived.get_json()["arrived_at"]
    api_error(client.post(f"{M}/reservations/{booked['id']}/arrive", headers=shop["other"]["manager"]),
              "reservation.not_found")
    assert client.get(f"/api/v1/me/reservations/{booked['id']}", headers=guest["headers"]).get_json()["status"] == \
        "arrived"


def test_a_released_booking_cannot_be_confirmed(client, rt, clock, shop, slots, member):
    booked = _book(client, member, slots["12:00/1"]).get_json()
    clock.now = datetime.fromisoformat(booked["starts_at"]) + timedelta(minutes=30)
    assert reservations.release_no_shows(rt.sessions, rt.settings, rt.senders, rt.now()) == 1
    api_error(client.post(f"{M}/reservations/{booked['id']}/arrive", headers=shop["cashier"]),
              "reservation.not_active")


def test_the_restaurant_cancels_a_booking_frees_its_table_and_tells_the_member_why_once(client, rt, shop, slots,
                                                                                       members_api):
    guest = members_api.sign_in(openid="o-called")
    assert client.patch("/api/v1/me", json={"locale": "en"}, headers=guest["headers"]).status_code == 200
    booked = _book(client, guest, slots["12:00/1"]).get_json()
    url = f"{M}/reservations/{booked['id']}/cancel"
    reason = {"reason": "  the guest called to cancel "}
    api_error(client.post(url, json={"reason": " "}, headers=shop["cashier"]), "request.invalid")
    api_error(client.post(url, json=reason, headers=shop["other"]["manager"]), "reservation.not_found")
    api_error(client.post(url, json=reason, headers=guest["headers"]), "auth.wrong_caller")
    cancelled = client.post(url, json=reason, headers=shop["cashier"])
    assert cancelled.status_code == 200, cancelled.get_json()
    out = cancelled.get_json()
    assert (out["status"], out["cancelled_by"], out["cancel_reason"], out["replayed"]) == (
        "cancelled", "restaurant", "the guest called to cancel", False)
    assert slot_figures(rt, slots["12:00/1"]) == (0, 0)
    again = client.post(url, json={"reason": "twice"}, headers=shop["manager"]).get_json()
    assert again["replayed"] and again["cancel_reason"] == "the guest called to cancel"
    mine = client.get(f"/api/v1/me/reservations/{booked['id']}", headers=guest["headers"]).get_json()
    assert (mine["status"], mine["cancelled_by"]) == ("cancelled", "restaurant")
    assert inbox_keys(rt, out["member"]["id"]).count(f"reservation:{booked['id']}:cancelled") == 1
    told = client.get("/api/v1/me/inbox", headers=guest["headers"]).get_json()["items"][0]
    assert (told["title"], told["body"]) == (
        "Booking cancelled", "Noodle House cancelled your table for 2 at 11 Mar 12:00: the guest called to cancel")


def test_a_member_cancelling_is_recorded_as_theirs_and_the_restaurant_cannot_cancel_an_arrived_party(
        client, clock, shop, slots, members_api):
    first, second = members_api.sign_in(openid="o-first"), members_api.sign_in(openid="o-second")
    mine = _book(client, first, slots["12:00/1"]).get_json()
    theirs = _book(client, second, slots["12:00/1"]).get_json()
    done = client.post(f"/api/v1/me/reservations/{mine['id']}/cancel", headers=first["headers"]).get_json()
    assert (done["cancelled_by"], done["cancel_reason"]) == ("member", None)
    clock.now = datetime.fromisoformat(theirs["starts_at"])
    client.post(f"{M}/reservations/{theirs['id']}/arrive", headers=shop["cashier"])
    api_error(client.post(f"{M}/reservations/{theirs['id']}/cancel", json={"reason": "closing"},
                          headers=shop["cashier"]), "reservation.not_active")


# --- the clock: reminders --------------------------------------------------------------------------



@pytest.fixture
def table(rt) -> dict[str, int]:
    """A member booked at a restaurant's 12:00 slot tomorrow (three tables)."""
    merchant_id, store_id = restaurant(rt)
    slot_id = publish(rt, merchant_id, store_id, ["12:00"], [Band(1, 4, 3)])[0]
    member_id = new_member(rt, "o-diner")
    return {"merchant": merchant_id, "store": store_id, "slot": slot_id, "member": member_id,
            "reservation": book(rt, member_id, slot_id).reservation.id}


def _remind(rt) -> int:
    return reservations.remind_due(rt.sessions, rt.settings, rt.senders, rt.now())


def _release(rt) -> int:
    return reservations.release_no_shows(rt.sessions, rt.settings, rt.senders, rt.now())


def test_a_reminder_goes_once_within_the_lead_time(rt, clock, table):
    clock.now = NOON - timedelta(minutes=rt.settings.reservations.reminder_lead_minutes + 1)
    assert _remind(rt) == 0
    clock.advance(minutes=2)
    assert _remind(rt) == 1
    assert _remind(rt) == 0
    key = f"reservation:{table['reservation']}"
    assert inbox_keys(rt, table["member"]) == [f"{key}:booked", f"{key}:reminder:{table['slot']}"]


def test_reminders_and_releases_read_in_each_members_language(rt, clock, table):
    english = new_member(rt, "o-diner-en")
    reads_english(rt, english)
    book(rt, english, table["slot"])
    clock.now = NOON - timedelta(minutes=30)
    assert _remind(rt) == 2
    clock.now = NOON + timedelta(minutes=rt.settings.reservations.no_show_grace_minutes + 1)
    assert _release(rt) == 2
    assert inbox_texts(rt, table["member"]) == [
        ("订座成功", "Noodle House：3月11日 12:00，2 位。"),
        ("您的订座时间快到了", "Noodle House：您预订的 2 位餐位在 3月11日 12:00，到店时请向店员出示此预订。"),
        ("订座已释放", "Noodle House：您预订的 3月11日 12:00、2 位餐位因未到店已释放。")]
    assert inbox_texts(rt, english) == [
        ("Table booked", "Noodle House: a table for 2 at 11 Mar 12:00."),
        ("Your table is coming up", "Noodle House: your table for 2 is at 11 Mar 12:00. Show this booking to the "
                                    "staff when you arrive."),
        ("Booking released", "Noodle House: your table for 2 at 11 Mar 12:00 was released because nobody arrived.")]


def test_a_booking_made_inside_the_lead_time_is_not_reminded_apart_from_its_confirmation(rt, clock, table):
    clock.now = NOON - timedelta(minutes=30)
    late = new_member(rt, "o-late")
    late_id = book(rt, late, table["slot"]).reservation.id
    assert _remind(rt) == 1  # the earlier booking only
    assert inbox_keys(rt, late) == [f"reservation:{late_id}:booked"]


def test_a_booking_moved_after_its_reminder_is_reminded_of_the_new_time(rt, clock, table):
    later = publish(rt, table["merchant"], table["store"], ["19:00"], [Band(1, 4, 1)])[0]
    clock.now = NOON - timedelta(minutes=60)
    assert _remind(rt) == 1
    with rt.sessions.begin() as s:
        reservations.change(s, rt.settings, table["member"], table["reservation"], slot_id=later, now=rt.now())
    assert _remind(rt) == 0  # 19:00 is not yet within the lead time
    clock.now = NOON + timedelta(hours=6)
    assert _remind(rt) == 1
    assert inbox_keys(rt, table["member"])[-1] == f"reservation:{table['reservation']}:reminder:{later}"


def test_a_reminder_run_that_died_after_its_commit_reminds_no_one_twice(rt, clock, table, monkeypatch):
    clock.now = NOON - timedelta(minutes=60)

    def crash(*_args, **_kwargs):
        raise SystemExit("killed after the commit, before the sends")

    monkeypatch.setattr(notifications, "take_outbox", crash)  # the process dies right after the commit
    with pytest.raises(SystemExit):
        _remind(rt)
    monkeypatch.undo()
    assert _remind(rt) == 0
    assert inbox_keys(rt, table["member"]).count(f"reservation:{table['reservation']}:reminder:{table['slot']}") == 1


def test_a_reminder_run_that_died_before_its_commit_leaves_the_reminder_to_the_next_run(rt, clock, table,
                                                                                         monkeypatch):
    clock.now = NOON - timedelta(minutes=60)

    def crash(*_args, **_kwargs):
        raise RuntimeError("killed mid-transaction")

    monkeypatch.setattr(notifications, "record_many", crash)
    with pytest.raises(RuntimeError):
        _remind(rt)
    monkeypatch.undo()
    with rt.sessions.begin() as s:
        assert s.get(Reservation, table["reservation"]).reminded_at is None
    assert _remind(rt) == 1 and _remind(rt) == 0


# --- the clock: no-shows ---------------------------------------------------------------------------

def test_an_unclaimed_booking_is_released_after_the_grace_period_and_the_member_told_once(rt, clock, table):
    grace = timedelta(minutes=rt.settings.reservations.no_show_grace_minutes)
    clock.now = NOON + grace - timedelta(seconds=1)
    assert _release(rt) == 0
    clock.now = NOON + grace
    assert _release(rt) == 1
    assert _release(rt) == 0
    assert status_of(rt, table["reservation"]) == "no_show"
    assert slot_figures(rt, table["slot"]) == (0, 0)
    assert inbox_keys(rt, table["member"])[-1] == f"reservation:{table['reservation']}:no_show"


def test_an_arrived_or_cancelled_booking_is_never_released(rt, clock, table):
    other = new_member(rt, "o-other")
    cancelled = book(rt, other, table["slot"]).reservation.id
    with rt.sessions.begin() as s:
        reservations.cancel(s, other, cancelled, rt.now())
    clock.now = NOON - timedelta(minutes=5)
    with rt.sessions.begin() as s:
        reservation_admin.arrive(s, rt.settings, table["merchant"], table["reservation"], None, rt.now())
    clock.now = NOON + timedelta(hours=3)
    assert _release(rt) == 0
    assert (status_of(rt, table["reservation"]), status_of(rt, cancelled)) == ("arrived", "cancelled")
    assert slot_figures(rt, table["slot"]) == (1, 1)


def test_a_release_run_that_died_after_its_commit_frees_no_table_twice(rt, clock, table, monkeypatch):
    second = book(rt, new_member(rt, "o-second"), table["slot"]).reservation.id
    clock.now = NOON + timedelta(hours=1)

    def crash(*_args, **_kwargs):
        raise SystemExit("killed after the commit, before the sends")

    monkeypatch.setattr(notifications, "take_outbox", crash)  # the process dies right after the commit
    with pytest.raises(SystemExit):
        _release(rt)
    monkeypatch.undo()
    assert _release(rt) == 0
    assert status_of(rt, table["reservation"]) == status_of(rt, second) == "no_show"
    assert slot_figures(rt, table["slot"]) == (0, 0)
    assert inbox_keys(rt, table["member"]).count(f"reservation:{table['reservation']}:no_show") == 1


def test_the_jobs_work_through_more_bookings_than_one_batch(rt, clock, table):
    for n in range(4):
        book(rt, new_member(rt, f"o-batch-{n}"), publish(rt, table["merchant"], table["store"], ["12:00"],
                                                         [Band(5 + n, 5 + n, 1)])[0], party=5 + n)
    clock.now = NOON - timedelta(minutes=30)
    assert reservations.remind_due(rt.sessions, rt.settings, rt.senders, rt.now(), limit=2) == 5
    clock.now = NOON + timedelta(hours=1)
    assert reservations.release_no_shows(rt.sessions, rt.settings, rt.senders, rt.now(), limit=2) == 5
