"""Messages leave after the unit of work that recorded them commits, for every endpoint that tells a member.

With the member's mini-program open on the live channel, each endpoint's message must reach it
only once the request's transaction has committed: a spy on the runtime's senders reads, on a
connection of its own, whether the message's inbox row is committed at the moment it is sent.
(Before the unit of work sent its outbox after the commit, the restaurant's cancel sent inside its
transaction: on SQLite the send's settlement waited on the request's own lock for 30 s and answered 500.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from datetime import timedelta
from typing import Any

import pytest
from factories import drain_sends

from mallapp.domain import deals, venue_admin
from mallapp.domain.notifications import Delivery, Notification

M, ME = "/api/v1/merchant", "/api/v1/me"


class CommitSpy:
    """The runtime's senders, noting for each live frame whether its inbox row was committed when it left."""

    def __init__(self, real: Any, engine: Any) -> None:
        self.real, self.engine = real, engine
        self.seen: list[tuple[int, bool]] = []

    def online(self, member_ids: Iterable[int]) -> set[int]:
        return self.real.online(member_ids)

    def publish_live(self, messages: Collection[tuple[int, str]]) -> list[int]:
        for _member_id, text in messages:
            self.seen.append((json.loads(text)["id"], self._committed(json.loads(text)["id"])))
        return self.real.publish_live(messages)

    def send_subscribe(self, *args: Any) -> int:
        return self.real.send_subscribe(*args)

    def _committed(self, notification_id: int) -> bool:
        # A DBAPI connection of its own, outside SQLAlchemy's BEGIN: it sees only committed rows and
        # never waits on the request's write lock.
        conn = self.engine.raw_connection()
        try:
            mark = "?" if self.engine.dialect.name == "sqlite" else "%s"
            cursor = conn.cursor()
            cursor.execute(f"SELECT 1 FROM {Notification.__tablename__} WHERE id = {mark}", (notification_id,))
            found = cursor.fetchone() is not None
            conn.rollback()
            return found
        finally:
            conn.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"queue": {"near_tables_ahead": 1}}


@pytest.fixture
def spy(rt) -> CommitSpy:
    spy = CommitSpy(rt.senders, rt.engine)
    rt.__dict__["senders"] = spy  # the cached property, replaced for this runtime
    return spy


@pytest.fixture
def world(rt, client, merchant, members_api) -> dict[str, Any]:
    """A restaurant (auto-approved deals, an open queue, tomorrow's slots), and three members."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Noodle House", floor=3, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
        deals.set_auto_approve(s, merchant["id"], True)
    key = merchant["headers"]
    assert client.post(f"{M}/stores/{store}/queue/open", json={}, headers=key).status_code == 200
    tomorrow = (rt.now() + timedelta(days=1)).astimezone(rt.settings.mall.tz).date()
    published = client.post(f"{M}/stores/{store}/reservation-slots", headers=key, json={
        "first_day": tomorrow.isoformat(), "times": ["12:00"], "duration_minutes": 90,
        "bands": [{"min_party": 1, "max_party": 4, "tables": 3}]})
    assert published.status_code == 200, published.get_json()
    return {"store": store, "key": key, "slot": published.get_json()["slots"][0]["id"],
            **{name: members_api.sign_in(openid=f"o-{name}") for name in ("ada", "bo", "cy")}}


def _ok(reply: Any) -> Any:
    assert reply.status_code in (200, 201), reply.get_json()
    return reply.get_json()


def _book(client, world, who: str = "ada") -> Callable[[], Any]:
    return lambda: client.post(f"{ME}/reservations", headers=world[who]["headers"],
                               json={"slot_id": world["slot"], "party_size": 2, "request_id": "r-1"})


def _take(client, world, who: str) -> int:
    return _ok(client.post(f"/api/v1/stores/{world['store']}/queue/tickets", json={"party_size": 2},
                           headers=world[who]["headers"]))["id"]


def _call(client, world) -> Any:
    return client.post(f"{M}/stores/{world['store']}/queue/call", json={"band": "A", "request_id": "call-1"},
                       headers=world["key"])


# Each scenario sets the scene with ada offline, and returns the request that tells her something.
def booking_confirmed(client, world) -> Callable[[], Any]:
    return _book(client, world)


def booking_cancelled_by_the_restaurant(client, world) -> Callable[[], Any]:
    booking = _ok(_book(client, world)())["id"]
    return lambda: client.post(f"{M}/reservations/{booking}/cancel", json={"reason": "The kitchen is closed"},
                               headers=world["key"])


def table_ready(client, world) -> Callable[[], Any]:
    _take(client, world, "ada")
    return lambda: _call(client, world)


def number_skipped(client, world) -> Callable[[], Any]:
    ticket = _take(client, world, "ada")
    _ok(_call(client, world))
    return lambda: client.post(f"{M}/stores/{world['store']}/queue/tickets/{ticket}/skip", headers=world["key"])


def near_the_front_after_a_member_cancels(client, world) -> Callable[[], Any]:
    first = _take(client, world, "bo")
    _take(client, world, "cy")
    _take(client, world, "ada")  # two ahead: not yet near (near_tables_ahead is 1 here)
    return lambda: client.post(f"{ME}/queue-tickets/{first}/cancel", headers=world["bo"]["headers"])


def deal_announced_to_followers(client, world) -> Callable[[], Any]:
    _ok(client.put(f"{ME}/follows/{world['store']}", headers=world["ada"]["headers"]))
    now = client.application.extensions["mallapp"].now()
    deal = _ok(client.post(f"{M}/deals", headers=world["key"], json={
        "title": "Noodles, 5 yuan off", "store_id": world["store"], "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=3)).isoformat(), "quota": 50,
        "benefit": {"kind": "amount_off", "amount_fen": 500}}))["id"]
    _ok(client.post(f"{M}/deals/{deal}/submit", headers=world["key"]))

    def announce() -> Any:  # the request queues it; the sends workers deliver it, each batch after its commit
        reply = client.post(f"{M}/deals/{deal}/announce", headers=world["key"])
        drain_sends(client.application.extensions["mallapp"])
        return reply
    return announce


SCENARIOS = [booking_confirmed, booking_cancelled_by_the_restaurant, table_ready, number_skipped,
             near_the_front_after_a_member_cancels, deal_announced_to_followers]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_an_online_member_is_told_only_after_the_request_commits(scenario, client, rt, world, live_server, spy):
    act = scenario(client, world)
    ada = world["ada"]
    with live_server.connect(ada) as ws:
        live_server.wait_online(rt, ada["member"]["id"])
        spy.seen.clear()
        _ok(act())
        frame = json.loads(ws.recv(timeout=10))
    assert frame["type"] == "notification"
    assert spy.seen == [(frame["id"], True)], "a message left before its unit of work committed"
    with rt.sessions() as s:
        outcome = s.query(Delivery.outcome).filter(Delivery.notification_id == frame["id"],
                                                   Delivery.channel == "live").scalar()
    assert outcome == "sent"  # settled after the send, in a transaction of its own


def test_a_request_that_fails_after_recording_sends_nothing(client, rt, world, live_server, spy, monkeypatch):
    from mallapp.api import reservations as reservations_api

    ada = world["ada"]
    booking = _ok(_book(client, world)())["id"]

    def fail_after_recording(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the reply could not be built")

    monkeypatch.setattr(reservations_api, "CancelledOut", fail_after_recording)
    with live_server.connect(ada) as ws:
        live_server.wait_online(rt, ada["member"]["id"])
        spy.seen.clear()
        reply = client.post(f"{M}/reservations/{booking}/cancel", json={"reason": "closed"}, headers=world["key"])
        assert reply.status_code == 500
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    assert spy.seen == []  # rolled back: nothing recorded, nothing sent
    with rt.sessions() as s:
        assert s.query(Notification).filter(Notification.key.like("%cancelled")).count() == 0
