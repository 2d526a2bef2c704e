"""The live channel: open mini-programs get messages at once, across live servers, through Redis."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from factories import (
    ME,
    announce_and_deliver,
    deal_maker,
    deliveries,
    inbox,
    opt_in,
    shop_with_rival,
    subscribe_quota,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from mallapp.adapters import live
from mallapp.domain import notifications
from mallapp.domain.notifications import Delivery, Message, Text
from mallapp.processes.live import TOKEN_CLOSE_CODE


@pytest.fixture
def shop(rt, merchant) -> dict[str, Any]:
    return shop_with_rival(rt, merchant)


@pytest.fixture
def make_deal(client, clock):
    return deal_maker(client, clock)


def _wait_online(rt, member_id: int, expected: bool = True) -> None:
    deadline = time.monotonic() + 5
    while (member_id in live.online(rt.redis, [member_id])) != expected:
        assert time.monotonic() < deadline, f"member {member_id} online should be {expected}"
        time.sleep(0.01)


def _notify(rt, member_id: int, key: str = "k1", **over: Any) -> notifications.Recorded:
    message = Message(kind="deal", key=key, text=Text("Flat white, 5 yuan off", "At Starlight, till Sunday"),
                      page="pages/deals/detail?id=1", **over)
    return notifications.notify(rt.sessions, rt.settings, rt.senders, member_id, message, rt.now())


def _refusal(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as refused, connect(url, additional_headers=headers, open_timeout=5):
        pass
    response = refused.value.response
    return response.status_code, json.loads(response.body)


def test_an_open_mini_program_gets_the_message_live_and_keeps_its_subscribe_quota(client, rt, emulator, shoppers,
                                                                                   live_server):
    ada = shoppers["ada"]
    opt_in(client, emulator, ada)
    with live_server.connect(ada) as ws:
        _wait_online(rt, ada["member"]["id"])
        done = _notify(rt, ada["member"]["id"])
        frame = json.loads(ws.recv(timeout=5))
    assert (done.created, done.live, done.subscribe) == (True, "sent", None)
    # The frame is the inbox item, so the mini-program shows it without asking.
    [item] = inbox(client, ada)["items"]
    assert frame == {"type": "notification", **item}
    assert deliveries(rt, ada["member"]["id"]) == [("inbox", "sent", None), ("live", "sent", None)]
    assert subscribe_quota(client, ada) == 1 and emulator.messages == []


def test_a_member_who_closed_the_mini_program_gets_the_subscribe_message_instead(client, rt, emulator, shoppers,
                                                                                  live_server):
    ada = shoppers["ada"]
    opt_in(client, emulator, ada)
    with live_server.connect(ada):
        pass
    _wait_online(rt, ada["member"]["id"], expected=False)
    done = _notify(rt, ada["member"]["id"])
    assert (done.live, done.subscribe) == (None, "sent")
    assert len(emulator.messages) == 1 and subscribe_quota(client, ada) == 0


def test_messages_fan_out_through_redis_to_every_connection_on_every_live_server(rt, shoppers, start_live_server,
                                                                                 live_server):
    ada, bo = shoppers["ada"], shoppers["bo"]
    other = start_live_server()
    with live_server.connect(ada) as phone, other.connect(ada) as tablet, other.connect(bo) as bos:
        _wait_online(rt, ada["member"]["id"])
        _notify(rt, ada["member"]["id"], key="k-fanout")
        got = [json.loads(ws.recv(timeout=5))["title"] for ws in (phone, tablet)]
        with pytest.raises(TimeoutError):
            bos.recv(timeout=0.3)  # another member's message never reaches bo
    assert got == ["Flat white, 5 yuan off"] * 2


def test_a_message_whose_connection_closed_in_between_is_missed_and_stays_in_the_inbox(client, rt, shoppers):
    ada = shoppers["ada"]
    member_id = ada["member"]["id"]
    message = Message(kind="deal", key="k-missed", text=Text("Nearby: a coffee deal"))
    with rt.sessions.begin() as s:  # the member looked online when the message was recorded
        recorded = notifications.record(s, rt.settings, member_id, message, rt.now(), online={member_id})
        box = notifications.outbox(s)
    assert box.sent[recorded.outbound.delivery_id].outcome == "missed"  # sent by the commit
    assert deliveries(rt, member_id) == [("inbox", "sent", None), ("live", "missed", None)]
    assert [i["title"] for i in inbox(client, ada)["items"]] == ["Nearby: a coffee deal"]


def test_an_announcement_goes_live_to_open_followers_and_by_wechat_to_the_others(client, rt, emulator, shop, shoppers,
                                                                                 make_deal, clock, live_server):
    ada, bo = shoppers["ada"], shoppers["bo"]
    for follower in (ada, bo):
        client.put(f"{ME}/follows/{shop['store']}", headers=follower["headers"])
        opt_in(client, emulator, follower)
    deal_id = make_deal(shop, starts_at=(clock.now - timedelta(hours=1)).isoformat())
    with live_server.connect(ada) as ws:
        _wait_online(rt, ada["member"]["id"])
        reply = announce_and_deliver(client, rt, deal_id, shop["headers"]).get_json()
        frame = json.loads(ws.recv(timeout=5))
    assert (reply["inbox"], reply["live_sent"], reply["subscribe_sent"], reply["pushes"]) == (2, 1, 1, 4)
    assert frame["deal_id"] == deal_id and frame["page"] == f"pages/deals/detail?id={deal_id}"
    assert [m["touser"] for m in emulator.messages] == ["o-bo"] and subscribe_quota(client, ada) == 1


def test_the_handshake_refuses_bad_callers_with_json_errors(client, rt, shoppers, merchant, live_server):
    url = live_server.url
    assert _refusal(url, {}) == (401, {"error": {"code": "auth.required", "message": "send Authorization: Bearer "
                                                                                         "<member token>"}})
    status, body = _refusal(url, merchant["headers"])
    assert (status, body["error"]["code"]) == (401, "auth.invalid_token")
    status, body = _refusal(url, {"Authorization": "Bearer mt_not-a-live-token"})
    assert (status, body["error"]["code"]) == (401, "auth.invalid_token")
    status, body = _refusal(url.replace("/api/v1/live", "/elsewhere"), shoppers["ada"]["headers"])
    assert (status, body["error"]["code"]) == (404, "live.not_found")


def test_a_member_may_hold_a_few_connections_and_no_more(rt, shoppers, live_server):
    ada = shoppers["ada"]
    with contextlib.ExitStack() as held:
        for _ in range(rt.settings.live.max_connections_per_member):
            held.enter_context(live_server.connect(ada))
        status, body = _refusal(live_server.url, ada["headers"])
    assert (status, body["error"]["code"]) == (429, "live.too_many_connections")


def test_the_client_keeps_the_connection_alive_with_pings(shoppers, live_server):
    with live_server.connect(shoppers["ada"]) as ws:
        ws.send(json.dumps({"type": "ping"}))
        ws.send("not json")  # ignored, not fatal
        ws.send(json.dumps({"type": "ping"}))
        assert [json.loads(ws.recv(timeout=5)) for _ in range(2)] == [{"type": "pong"}] * 2


def test_a_signed_out_member_is_disconnected(client, rt, shoppers, start_live_server):
    ada = shoppers["ada"]
    server = start_live_server(recheck_s=0.1)
    with server.connect(ada) as ws:
        assert client.post("/api/v1/auth/logout", headers=ada["headers"]).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == TOKEN_CLOSE_CODE
    _wait_online(rt, ada["member"]["id"], expected=False)


def test_sends_a_crash_cut_off_are_settled_as_unknown_without_giving_quota_back(client, rt, emulator, shoppers,
                                                                                 clock):
    ada = shoppers["ada"]
    member_id = ada["member"]["id"]
    opt_in(client, emulator, ada)
    with rt.sessions.begin() as s:  # recorded and reserved, then the process died before sending
        notifications.record(s, rt.settings, member_id, Message(kind="deal", key="k-crash", text=Text("T")), rt.now())
        notifications.take_outbox(s)  # as a crash between the commit and the send would lose it
    with rt.sessions.begin() as s:
        assert notifications.settle_abandoned(s, clock.now - timedelta(minutes=10)) == 0  # not abandoned yet
    clock.advance(minutes=11)
    with rt.sessions.begin() as s:
        assert notifications.settle_abandoned(s, clock.now - timedelta(minutes=10)) == 1
        assert s.query(Delivery.outcome).filter(Delivery.channel == "subscribe").scalar() == "unknown"
    assert subscribe_quota(client, ada) == 0
