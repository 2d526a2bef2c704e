"""Restaurant queues through the API: numbers, the one-ticket rule, staff operations, permissions, messages, lapsing."""

from __future__ import annotations

from typing import Any

import pytest
from factories import api_error, bearer, staff_headers
from sqlalchemy import func, select

from mallapp.domain import merchants, notifications, queueing, venue_admin
from mallapp.domain.notifications import Notification
from mallapp.domain.queueing.models import QueueTicket

M = "/api/v1/merchant"


pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def restaurant(rt, client, merchant) -> dict[str, Any]:
    """The conftest merchant running a restaurant, with a manager and a cashier signed in, its queue open."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Noodle House", floor=3, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
    r = {**merchant, "store": store, "manager": staff_headers(client, merchant["headers"], "noodle-manager", "manager"),
         "cashier": staff_headers(client, merchant["headers"], "noodle-cashier", "cashier")}
    r["queue"] = f"{M}/stores/{store}/queue"
    r["take"] = f"/api/v1/stores/{store}/queue/tickets"
    opened = client.post(f"{r['queue']}/open", json={}, headers=r["cashier"])
    assert opened.status_code == 200, opened.get_json()
    return r


def _take(client, restaurant, member, size: int = 2):
    return client.post(restaurant["take"], json={"party_size": size}, headers=member["headers"])


def _call(client, restaurant, band: str = "A", request_id: str = "call-1"):
    return client.post(f"{restaurant['queue']}/call", json={"band": band, "request_id": request_id},
                       headers=restaurant["cashier"])


def _inbox(client, member) -> list[dict[str, Any]]:
    return client.get("/api/v1/me/inbox", headers=member["headers"]).get_json()["items"]


# --- taking numbers --------------------------------------------------------------------------------

def _read_english(client, member) -> None:
    assert client.patch("/api/v1/me", json={"locale": "en"}, headers=member["headers"]).get_json()["locale"] == "en"


def test_members_take_numbers_per_band_and_see_parties_people_and_wait_ahead(client, restaurant, members_api):
    a, b, c = (members_api.sign_in(openid=f"o-q-{i}") for i in range(3))
    first = _take(client, restaurant, a, 2)
    assert first.status_code == 201, first.get_json()
    assert first.get_json() | {"ahead": 0, "people_ahead": 0} == first.get_json()
    assert first.get_json()["ticket_no"] == "A001" and first.get_json()["status"] == "waiting"
    second = _take(client, restaurant, b, 1).get_json()
    assert (second["ticket_no"], second["ahead"], second["people_ahead"]) == ("A002", 1, 2)
    assert second["estimated_wait_s"] == second["estimated_at_take_s"] > 0
    big = _take(client, restaurant, c, 6).get_json()
    assert (big["ticket_no"], big["band"], big["ahead"]) == ("C001", "C", 0)
    state = client.get(f"/api/v1/stores/{restaurant['store']}/queue", headers=a["headers"]).get_json()
    assert [(band["code"], band["waiting"], band["people_waiting"]) for band in state["bands"]] == [
        ("A", 2, 3), ("B", 0, 0), ("C", 1, 6)]


def test_numbers_start_again_on_the_next_mall_local_day(client, restaurant, members_api, clock):
    a, b = members_api.sign_in(openid="o-day-1"), members_api.sign_in(openid="o-day-2")
    assert _take(client, restaurant, a).get_json()["ticket_no"] == "A001"
    clock.now = clock.now.replace(hour=16, minute=30)  # 00:30 on 11 March in Shanghai, the same UTC day
    assert _take(client, restaurant, b).get_json()["ticket_no"] == "A001"


def test_a_member_holds_one_active_ticket_per_restaurant_until_it_ends(client, restaurant, member):
    ticket = _take(client, restaurant, member).get_json()
    error = api_error(_take(client, restaurant, member, 4), "queue.ticket_active")
    assert error["details"] == {"ticket_id": ticket["id"], "ticket_no": "A001"}
    cancelled = client.post(f"/api/v1/me/queue-tickets/{ticket['id']}/cancel", headers=member["headers"])
    assert cancelled.get_json()["status"] == "cancelled" and not cancelled.get_json()["replayed"]
    again = client.post(f"/api/v1/me/queue-tickets/{ticket['id']}/cancel", headers=member["headers"])
    assert again.status_code == 200 and again.get_json()["replayed"]
    assert _take(client, restaurant, member, 4).get_json()["ticket_no"] == "B001"


def test_closed_bands_oversized_parties_and_unknown_stores_take_no_number(client, restaurant, member, rt):
    client.post(f"{restaurant['queue']}/close", json={"bands": ["A"]}, headers=restaurant["cashier"])
    assert api_error(_take(client, restaurant, member, 2), "queue.closed")["details"] == {"band": "A"}
    api_error(_take(client, restaurant, member, rt.settings.queue.max_party + 1), "queue.party_too_large")
    api_error(client.post("/api/v1/stores/9999/queue/tickets", json={"party_size": 2}, headers=member["headers"]),
              "store.not_found")
    assert _take(client, restaurant, member, 3).get_json()["ticket_no"] == "B001"


def test_a_restaurant_whose_bands_leave_a_gap_says_no_band_for_that_party(client, restaurant, member):
    bands = [{"code": "A", "label": "1-2", "min_party": 1, "max_party": 2},
             {"code": "C", "label": "6+", "min_party": 6}]
    assert client.put(f"{restaurant['queue']}/bands", json={"bands": bands},
                      headers=restaurant["manager"]).status_code == 200
    client.post(f"{restaurant['queue']}/open", json={}, headers=restaurant["cashier"])
    api_error(_take(client, restaurant, member, 4), "queue.no_band")


def test_a_member_never_sees_or_cancels_another_members_ticket(client, restaurant, members_api):
    owner, stranger = members_api.sign_in(openid="o-owner"), members_api.sign_in(openid="o-stranger")
    ticket = _take(client, restaurant, owner).get_json()
    api_error(client.get(f"/api/v1/me/queue-tickets/{ticket['id']}", headers=stranger["headers"]),
              "queue.ticket_not_found")
    api_error(client.post(f"/api/v1/me/queue-tickets/{ticket['id']}/cancel", headers=stranger["headers"]),
              "queue.ticket_not_found")
    assert client.get("/api/v1/me/queue-tickets", headers=stranger["headers"]).get_json() == {"tickets": []}
    mine = client.get("/api/v1/me/queue-tickets", headers=owner["headers"]).get_json()["tickets"]
    assert [t["id"] for t in mine] == [ticket["id"]]


# --- staff -----------------------------------------------------------------------------------------

def test_staff_call_seat_and_skip_and_a_call_retried_with_its_request_id_calls_no_second_party(
        client, restaurant, members_api):
    a, b, c = (members_api.sign_in(openid=f"o-s-{i}") for i in range(3))
    tickets = [_take(client, restaurant, m).get_json() for m in (a, b, c)]
    called = _call(client, restaurant, request_id="till-1#1")
    assert called.status_code == 201 and called.get_json()["id"] == tickets[0]["id"]
    assert called.get_json()["status"] == "called" and called.get_json()["lapses_at"]
    retry = _call(client, restaurant, request_id="till-1#1")
    assert retry.status_code == 200 and retry.get_json()["id"] == tickets[0]["id"] and retry.get_json()["replayed"]
    assert client.get(f"/api/v1/me/queue-tickets/{tickets[1]['id']}", headers=b["headers"]).get_json()["ahead"] == 0
    seat = f"{restaurant['queue']}/tickets/{tickets[0]['id']}/seat"
    assert client.post(seat, headers=restaurant["cashier"]).get_json()["status"] == "seated"
    assert client.post(seat, headers=restaurant["cashier"]).get_json()["replayed"]
    skipped = client.post(f"{restaurant['queue']}/tickets/{tickets[1]['id']}/skip", headers=restaurant["cashier"])
    assert skipped.get_json()["status"] == "skipped"
    told = [m for m in _inbox(client, b) if m["kind"] == "queue"][0]  # b reads zh-CN, the default
    assert (told["title"], told["body"]) == ("您的号码已过号", "Noodle House A002 号已过号，如您已在店内，请联系前台。")
    again = client.post(f"{restaurant['queue']}/tickets/{tickets[1]['id']}/skip", headers=restaurant["cashier"])
    assert again.get_json()["replayed"] and _inbox(client, b)[0]["title"] == "您的号码已过号"
    assert sum(m["title"] == "您的号码已过号" for m in _inbox(client, b)) == 1
    api_error(client.post(f"{restaurant['queue']}/tickets/{tickets[1]['id']}/seat", headers=restaurant["cashier"]),
              "queue.ticket_closed")
    assert _call(client, restaurant, request_id="till-1#2").get_json()["id"] == tickets[2]["id"]
    api_error(_call(client, restaurant, request_id="till-1#3"), "queue.nobody_waiting")
    board = client.get(restaurant["queue"], headers=restaurant["cashier"]).get_json()
    assert [(t["ticket_no"], t["status"]) for t in board["tickets"]] == [("A003", "called")]


def test_a_walk_in_gets_a_ticket_once_per_request_id(client, restaurant):
    url = f"{restaurant['queue']}/walk-ins"
    first = client.post(url, json={"party_size": 3, "request_id": "w-1"}, headers=restaurant["cashier"])
    again = client.post(url, json={"party_size": 3, "request_id": "w-1"}, headers=restaurant["cashier"])
    assert first.status_code == 201 and again.status_code == 200
    assert first.get_json()["ticket_no"] == again.get_json()["ticket_no"] == "B001"
    assert first.get_json()["walk_in"] and again.get_json()["replayed"]
    other = client.post(url, json={"party_size": 3, "request_id": "w-2"}, headers=restaurant["cashier"])
    assert other.get_json()["ticket_no"] == "B002"


def test_a_cashier_runs_the_queue_but_only_a_manager_or_the_key_sets_its_bands(client, restaurant):
    bands = {"bands": [{"code": "A", "label": "anyone", "min_party": 1}]}
    api_error(client.put(f"{restaurant['queue']}/bands", json=bands, headers=restaurant["cashier"]),
              "merchant.role_required")
    done = client.put(f"{restaurant['queue']}/bands", json=bands, headers=restaurant["manager"])
    assert done.status_code == 200, done.get_json()
    assert [(b["code"], b["open"]) for b in done.get_json()["bands"]] == [("A", False)]
    assert client.put(f"{restaurant['queue']}/bands", json=bands, headers=restaurant["headers"]).status_code == 200


def test_bands_must_not_overlap_and_do_not_change_while_tickets_are_active(client, restaurant, member):
    overlapping = {"bands": [{"code": "A", "label": "1-4", "min_party": 1, "max_party": 4},
                             {"code": "B", "label": "3+", "min_party": 3}]}
    api_error(client.put(f"{restaurant['queue']}/bands", json=overlapping, headers=restaurant["manager"]),
              "queue.invalid_bands")
    _take(client, restaurant, member)
    fine = {"bands": [{"code": "A", "label": "anyone", "min_party": 1}]}
    api_error(client.put(f"{restaurant['queue']}/bands", json=fine, headers=restaurant["manager"]), "queue.busy")


def test_another_merchants_staff_find_no_queue_or_ticket_of_this_restaurant(client, restaurant, member, rt):
    ticket = _take(client, restaurant, member).get_json()
    with rt.sessions.begin() as s:
        _, key = merchants.create(s, "Harbour Books", rt.now())
    other = bearer(key)
    api_error(client.get(restaurant["queue"], headers=other), "store.not_found")
    api_error(client.post(f"{restaurant['queue']}/call", json={"band": "A", "request_id": "x"}, headers=other),
              "store.not_found")
    api_error(client.post(f"{restaurant['queue']}/tickets/{ticket['id']}/seat", headers=other), "store.not_found")
    api_error(client.post(f"{restaurant['queue']}/open", json={}, headers=other), "store.not_found")
    # A member token is no staff token.
    api_error(client.get(restaurant["queue"], headers=member["headers"]), "auth.wrong_caller")


# --- messages and lapsing --------------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [{"queue": {"near_tables_ahead": 1}}])
def test_members_hear_when_one_table_is_ahead_and_when_their_table_is_ready_once_each(client, restaurant, members_api):
    people = [members_api.sign_in(openid=f"o-n-{i}") for i in range(4)]
    _read_english(client, people[2])  # the others read zh-CN, the default
    tickets = [_take(client, restaurant, m).get_json() for m in people]
    _call(client, restaurant, request_id="c1")
    _call(client, restaurant, request_id="c1")  # a retry tells nobody again
    assert [(i["title"], i["body"]) for i in _inbox(client, people[0])] == [
        ("您的桌位已备好", "Noodle House A001 号：请在 10 分钟内到前台入座。")]
    assert _inbox(client, people[1]) == []  # taken with one ahead: it knew
    assert [(i["title"], i["body"]) for i in _inbox(client, people[2])] == [
        ("1 table ahead of you", "Noodle House, number A003: please head back to the restaurant.")]
    assert _inbox(client, people[3]) == []
    client.post(f"/api/v1/me/queue-tickets/{tickets[1]['id']}/cancel", headers=people[1]["headers"])
    assert [i["title"] for i in _inbox(client, people[2])] == ["1 table ahead of you"]
    assert [(i["title"], i["body"]) for i in _inbox(client, people[3])] == [("您前面还有 1 桌", "Noodle House A004 号：请尽快回到餐厅。")]
    item = _inbox(client, people[0])[0]
    assert item["kind"] == "queue" and item["store_id"] == restaurant["store"]
    assert item["page"] == f"pages/queue/ticket?id={tickets[0]['id']}"


def test_lapse_due_lapses_called_tickets_after_the_grace_period_once_and_frees_the_member(
        client, restaurant, member, rt, clock):
    _read_english(client, member)
    ticket = _take(client, restaurant, member).get_json()
    _call(client, restaurant)
    clock.advance(seconds=rt.settings.queue.grace_s - 1)
    assert queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now()) == 0
    clock.advance(seconds=1)
    assert queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now()) == 1
    assert queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now()) == 0
    mine = client.get(f"/api/v1/me/queue-tickets/{ticket['id']}", headers=member["headers"]).get_json()
    assert mine["status"] == "lapsed"
    assert [(i["title"], i["body"]) for i in _inbox(client, member)] == [
        ("Your number lapsed", "Noodle House, number A001 was not claimed in time."),
        ("Your table is ready", "Noodle House, number A001: please come to the host within 10 minutes.")]
    api_error(client.post(f"{restaurant['queue']}/tickets/{ticket['id']}/seat", headers=restaurant["cashier"]),
              "queue.ticket_closed")
    assert _take(client, restaurant, member).status_code == 201


def test_lapse_due_run_again_after_a_crash_before_sending_lapses_and_tells_each_member_once(
        client, restaurant, member, rt, clock, monkeypatch):
    _take(client, restaurant, member)
    _call(client, restaurant)
    clock.advance(seconds=rt.settings.queue.grace_s)

    def crash(*_args, **_kwargs):
        raise SystemExit("the clock process died after the commit, before sending")

    monkeypatch.setattr(notifications, "take_outbox", crash)  # the process dies right after the commit
    with pytest.raises(SystemExit):
        queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now())
    monkeypatch.undo()
    assert queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now()) == 0
    with rt.sessions.begin() as s:
        assert s.scalar(select(func.count()).where(Notification.key.like("queue:%:lapsed"))) == 1


def test_tickets_left_waiting_from_an_earlier_day_lapse_overnight(client, restaurant, member, rt, clock):
    _take(client, restaurant, member)
    clock.advance(days=1)
    assert queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now()) == 1
    assert _take(client, restaurant, member).get_json()["ticket_no"] == "A001"


# --- the estimate ----------------------------------------------------------------------------------

def test_the_estimate_learns_this_restaurants_own_waits(client, restaurant, members_api, rt, clock):
    # Today, at this hour, every party with k ahead in band A waits (k + 1) x 3 minutes.
    with rt.sessions.begin() as s:
        today = rt.settings.mall.local_day(clock.now)
        minute = queueing.service.local_minute(rt.settings, clock.now)
        for n in range(1, 161):
            ahead = n % 8
            s.add(QueueTicket(store_id=restaurant["store"], band="A", day=today, number=n, ticket_no=f"A{n:03d}",
                              party_size=2, member_id=None, status="seated", taken_at=clock.now,
                              taken_minute=minute, ahead_at_take=ahead, estimate_s=0, naive_estimate_s=0,
                              wait_s=(ahead + 1) * 180, near_notified=True))
    # The estimate learns from the days before today (fitted once a day): tomorrow, at this hour.
    clock.advance(days=1)
    people = [members_api.sign_in(openid=f"o-e-{i}") for i in range(4)]
    tickets = [_take(client, restaurant, m).get_json() for m in people]
    naive = rt.settings.queue.naive_seconds_per_party
    assert [t["ahead"] for t in tickets] == [0, 1, 2, 3]
    for t in tickets[1:]:
        assert abs(t["estimated_wait_s"] - (t["ahead"] + 1) * 180) < 60  # not ahead x 600 s
        assert t["estimated_wait_s"] != t["ahead"] * naive
