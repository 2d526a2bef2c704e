"""Delivery: follows, mutes, subscribe-message quota, the inbox, and deal announcements to followers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import (
    DEAL_TEMPLATE,
    ME,
    M,
    announce_and_deliver,
    api_error,
    deal_maker,
    deliveries,
    drain_sends,
    inbox,
    opt_in,
    shop_with_rival,
    subscribe_quota,
)

from mallapp.domain import notifications
from mallapp.domain.notifications import Message, Text

SEND_PATH = "/cgi-bin/message/subscribe/send"


@pytest.fixture
def shop(rt, merchant) -> dict[str, Any]:
    return shop_with_rival(rt, merchant)


@pytest.fixture
def make_deal(client, clock):
    return deal_maker(client, clock)


# --- follows, mutes, opt-ins -----------------------------------------------------------------------

def test_following_and_unfollowing_are_idempotent(client, shop, member):
    first = client.put(f"{ME}/follows/{shop['store']}", headers=member["headers"])
    again = client.put(f"{ME}/follows/{shop['store']}", headers=member["headers"])
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() and first.get_json()["store_name"] == "Starlight"
    listed = client.get(f"{ME}/follows", headers=member["headers"]).get_json()["follows"]
    assert [f["store_id"] for f in listed] == [shop["store"]]
    for _ in range(2):
        assert client.delete(f"{ME}/follows/{shop['store']}", headers=member["headers"]).status_code == 204
    assert client.get(f"{ME}/follows", headers=member["headers"]).get_json()["follows"] == []


def test_following_an_unknown_store_is_a_404(client, member):
    api_error(client.put(f"{ME}/follows/999999", headers=member["headers"]), "store.not_found")
    api_error(client.put(f"{ME}/mutes/stores/999999", headers=member["headers"]), "store.not_found")


def test_mutes_of_a_store_and_of_everything_are_kept_and_lifted(client, shop, member):
    h = member["headers"]
    assert client.get(f"{ME}/mutes", headers=h).get_json() == {"all": False, "store_ids": []}
    client.put(f"{ME}/mutes/stores/{shop['store']}", headers=h)
    assert client.put(f"{ME}/mutes/all", headers=h).get_json() == {"all": True, "store_ids": [shop["store"]]}
    assert client.put(f"{ME}/mutes/all", headers=h).get_json() == {"all": True, "store_ids": [shop["store"]]}
    assert client.delete(f"{ME}/mutes/all", headers=h).get_json() == {"all": False, "store_ids": [shop["store"]]}
    assert client.delete(f"{ME}/mutes/stores/{shop['store']}", headers=h).get_json() == {"all": False,
                                                                                        "store_ids": []}


def test_each_accepted_opt_in_adds_one_quota_and_unknown_templates_are_ignored(client, member):
    h = member["headers"]
    assert client.get(f"{ME}/subscriptions", headers=h).get_json()["quotas"] == {DEAL_TEMPLATE: 0}
    for _ in range(2):
        reply = client.post(f"{ME}/subscriptions", headers=h,
                            json={"results": {DEAL_TEMPLATE: "accept", "tmpl-elsewhere": "accept"}})
        assert reply.status_code == 200
    assert reply.get_json() == {"quotas": {DEAL_TEMPLATE: 2}, "ignored": ["tmpl-elsewhere"]}
    reply = client.post(f"{ME}/subscriptions", headers=h, json={"results": {DEAL_TEMPLATE: "reject"}})
    assert reply.get_json()["quotas"] == {DEAL_TEMPLATE: 2}


@pytest.mark.parametrize("body", [{"results": {DEAL_TEMPLATE: "maybe"}}, {"results": {"bad id!": "accept"}},
                                  {"results": []}, {DEAL_TEMPLATE: "accept"}, {}])
def test_bad_opt_in_reports_are_400_json_errors(client, member, body):
    api_error(client.post(f"{ME}/subscriptions", json=body, headers=member["headers"]), "request.invalid")


def test_bad_inbox_queries_and_unauthenticated_calls_are_json_errors(client, member):
    api_error(client.get(f"{ME}/inbox?cursor=abc", headers=member["headers"]), "request.invalid_query")
    api_error(client.get(f"{ME}/inbox?limit=0", headers=member["headers"]), "request.invalid_query")
    api_error(client.get(f"{ME}/inbox"), "auth.required")
    api_error(client.post(f"{ME}/subscriptions", data="{no", content_type="application/json",
                       headers=member["headers"]), "request.malformed_json")


# --- announcements ---------------------------------------------------------------------------------

def test_an_announcement_reaches_followers_only_once_with_subscribe_messages_where_they_opted_in(
        client, rt, emulator, shop, shoppers, make_deal):
    ada, bo, chen = shoppers["ada"], shoppers["bo"], shoppers["chen"]
    for follower in (ada, bo):
        client.put(f"{ME}/follows/{shop['store']}", headers=follower["headers"])
    opt_in(client, emulator, ada)
    opt_in(client, emulator, chen)  # opted in, but does not follow the store
    deal_id = make_deal(shop)

    first = client.post(f"{M}/deals/{deal_id}/announce", headers=shop["headers"])
    assert first.status_code == 201, first.get_json()
    assert first.get_json() | {"announced_at": None} == {"deal_id": deal_id, "announced_at": None,
                                                         "replayed": False, "inbox": 0, "subscribe_sent": 0, "live_sent": 0,
                                                         "pushes": 0}
    assert emulator.messages == [] and inbox(client, ada)["items"] == []  # nothing is sent inside the request
    drain_sends(rt)  # the sends workers deliver it
    [sent] = emulator.messages
    assert sent["touser"] == "o-ada" and sent["template_id"] == DEAL_TEMPLATE
    assert sent["page"] == f"pages/deals/detail?id={deal_id}"
    assert sent["data"]["thing1"]["value"] == "Limited: flat white"  # cut to WeChat's 20 characters
    assert sent["data"]["thing2"]["value"] == "Starlight"
    assert sent["data"]["time3"]["value"] == "2026-03-11 10:00"  # the mall's time
    for follower in (ada, bo):
        [item] = inbox(client, follower)["items"]
        assert item["kind"] == "deal" and item["deal_id"] == deal_id and item["read_at"] is None
    assert inbox(client, chen)["items"] == []
    assert subscribe_quota(client, ada) == 0 and subscribe_quota(client, chen) == 1
    assert deliveries(rt, ada["member"]["id"]) == [("inbox", "sent", None), ("subscribe", "sent", None)]
    assert deliveries(rt, bo["member"]["id"]) == [("inbox", "sent", None), ("subscribe", "no_quota", None)]

    again = client.post(f"{M}/deals/{deal_id}/announce", headers=shop["headers"])
    assert again.status_code == 200
    assert again.get_json() == first.get_json() | {"replayed": True, "inbox": 2, "subscribe_sent": 1, "pushes": 3}
    drain_sends(rt)  # a replay queues nothing
    assert len(emulator.messages) == 1 and len(inbox(client, bo)["items"]) == 1
    figures = client.get(f"{M}/deals/{deal_id}", headers=shop["headers"]).get_json()["figures"]
    assert figures == {"claimed": 0, "redeemed": 0, "pushes": 3}


def test_an_announcement_reads_in_each_followers_language_inbox_and_subscribe_message_alike(
        client, rt, emulator, shop, shoppers, make_deal):
    ada, bo = shoppers["ada"], shoppers["bo"]
    assert client.patch(ME, json={"locale": "en"}, headers=bo["headers"]).status_code == 200  # ada: zh-CN, the default
    for follower in (ada, bo):
        client.put(f"{ME}/follows/{shop['store']}", headers=follower["headers"])
        opt_in(client, emulator, follower)
    deal_id = make_deal(shop, text="")  # no text of the merchant's: the benefit speaks
    announce_and_deliver(client, rt, deal_id, shop["headers"])
    assert [(i["title"], i["body"]) for i in inbox(client, ada)["items"]] == [
        ("Limited: flat white for 5 yuan", "Starlight：立减 ¥5.00")]  # the title is the merchant's own words
    assert [(i["title"], i["body"]) for i in inbox(client, bo)["items"]] == [
        ("Limited: flat white for 5 yuan", "Starlight: ¥5.00 off")]
    data = {sent["touser"]: sent["data"] for sent in emulator.messages}
    assert (data["o-ada"]["thing4"]["value"], data["o-bo"]["thing4"]["value"]) == ("立减 ¥5.00", "¥5.00 off")
    assert data["o-ada"]["time3"] == data["o-bo"]["time3"] == {"value": "2026-03-11 10:00"}  # WeChat's time format


def test_a_subscribe_message_keeps_wechats_limits_in_chinese():
    long_title = "春季会员日全场双倍积分还有停车券和新品试吃等你来领取"
    data = notifications._data({"thing1": "title", "phrase2": "store", "character_string3": "body"},
                               Text(long_title, "编号" * 40, {"store": "星光咖啡馆"}))
    assert data == {"thing1": {"value": long_title[:20]}, "phrase2": {"value": "星光咖啡馆"},
                    "character_string3": {"value": ("编号" * 40)[:32]}}
    assert len(data["thing1"]["value"]) == 20


def test_wechat_43101_is_an_outcome_that_zeroes_the_quota(client, rt, emulator, shop, shoppers, make_deal):
    ada = shoppers["ada"]
    client.put(f"{ME}/follows/{shop['store']}", headers=ada["headers"])
    opt_in(client, emulator, ada, count=2, at_wechat=False)  # the app believes in quota WeChat does not hold
    deal_id = make_deal(shop)
    reply = announce_and_deliver(client, rt, deal_id, shop["headers"])
    assert reply.status_code == 200
    assert reply.get_json()["subscribe_sent"] == 0 and reply.get_json()["pushes"] == 1
    assert emulator.messages == [] and emulator.request_count(SEND_PATH) == 1
    assert deliveries(rt, ada["member"]["id"]) == [("inbox", "sent", None), ("subscribe", "refused", 43101)]
    assert subscribe_quota(client, ada) == 0


def test_a_failed_send_is_recorded_and_gives_the_quota_back(client, rt, emulator, shop, shoppers, make_deal):
    ada = shoppers["ada"]
    client.put(f"{ME}/follows/{shop['store']}", headers=ada["headers"])
    opt_in(client, emulator, ada)
    deal_id = make_deal(shop)
    emulator.script_status(SEND_PATH, 503)
    reply = announce_and_deliver(client, rt, deal_id, shop["headers"])
    assert reply.status_code == 200 and reply.get_json()["subscribe_sent"] == 0
    assert deliveries(rt, ada["member"]["id"]) == [("inbox", "sent", None), ("subscribe", "failed", None)]
    assert subscribe_quota(client, ada) == 1


@pytest.mark.parametrize("mute", ["store", "all"])
def test_a_muted_member_gets_the_announcement_in_the_inbox_only(client, rt, emulator, shop, shoppers, make_deal,
                                                                mute):
    ada = shoppers["ada"]
    client.put(f"{ME}/follows/{shop['store']}", headers=ada["headers"])
    opt_in(client, emulator, ada)
    path = f"{ME}/mutes/stores/{shop['store']}" if mute == "store" else f"{ME}/mutes/all"
    assert client.put(path, headers=ada["headers"]).status_code == 200
    reply = announce_and_deliver(client, rt, make_deal(shop), shop["headers"])
    assert reply.get_json()["inbox"] == 1 and reply.get_json()["subscribe_sent"] == 0
    assert emulator.request_count(SEND_PATH) == 0
    assert len(inbox(client, ada)["items"]) == 1 and subscribe_quota(client, ada) == 1
    assert deliveries(rt, ada["member"]["id"]) == [("inbox", "sent", None), ("subscribe", "muted", None)]


def test_a_muted_other_store_does_not_silence_this_one(client, rt, emulator, shop, shoppers, make_deal):
    ada = shoppers["ada"]
    client.put(f"{ME}/follows/{shop['store']}", headers=ada["headers"])
    client.put(f"{ME}/mutes/stores/{shop['other']['store']}", headers=ada["headers"])
    opt_in(client, emulator, ada)
    assert announce_and_deliver(client, rt, make_deal(shop), shop["headers"]).get_json()["subscribe_sent"] == 1


def test_a_merchant_cannot_announce_another_merchants_deal(client, emulator, shop, shoppers, make_deal):
    client.put(f"{ME}/follows/{shop['other']['store']}", headers=shoppers["ada"]["headers"])
    theirs = make_deal(shop["other"])
    api_error(client.post(f"{M}/deals/{theirs}/announce", headers=shop["headers"]), "deal.not_found")
    api_error(client.post(f"{M}/deals/999999/announce", headers=shop["headers"]), "deal.not_found")
    api_error(client.post(f"{M}/deals/{theirs}/announce", headers=shoppers["ada"]["headers"]), "auth.wrong_caller")
    api_error(client.post(f"{M}/deals/{theirs}/announce"), "auth.required")
    assert inbox(client, shoppers["ada"])["items"] == []


def test_only_a_live_deal_that_has_not_ended_can_be_announced(client, clock, shop, make_deal):
    draft = make_deal(shop, submit=False)
    api_error(client.post(f"{M}/deals/{draft}/announce", headers=shop["headers"]), "deal.invalid_state")
    paused = make_deal(shop)
    client.post(f"{M}/deals/{paused}/pause", headers=shop["headers"])
    api_error(client.post(f"{M}/deals/{paused}/announce", headers=shop["headers"]), "deal.invalid_state")
    over = make_deal(shop)
    clock.advance(days=4)
    api_error(client.post(f"{M}/deals/{over}/announce", headers=shop["headers"]), "deal.invalid_state")


def test_an_open_deal_can_be_announced_and_its_member_rule_filters_followers(client, clock, rt, shop, shoppers,
                                                                             make_deal):
    for follower in shoppers.values():
        client.put(f"{ME}/follows/{shop['store']}", headers=follower["headers"])
    clock.advance(days=40)  # nobody is a new member any more
    deal_id = make_deal(shop, targeting={"member_rule": "new_members"},
                        starts_at=(clock.now - timedelta(hours=1)).isoformat())
    reply = announce_and_deliver(client, rt, deal_id, shop["headers"])
    assert reply.status_code == 200 and reply.get_json()["inbox"] == 0
    everyone = make_deal(shop, starts_at=(clock.now - timedelta(hours=1)).isoformat())
    assert announce_and_deliver(client, rt, everyone, shop["headers"]).get_json()["inbox"] == 3


# --- the service and the inbox ---------------------------------------------------------------------

def _notify(rt, member_id: int, message: Message) -> notifications.Recorded:
    return notifications.notify(rt.sessions, rt.settings, rt.senders, member_id, message, rt.now())


def test_the_same_key_never_delivers_twice(client, rt, emulator, shoppers):
    ada = shoppers["ada"]
    opt_in(client, emulator, ada, count=2)
    message = Message(kind="deal", key="deal:7:nearby", text=Text("Nearby: a coffee deal", "Two steps away"))
    first = _notify(rt, ada["member"]["id"], message)
    again = _notify(rt, ada["member"]["id"], message)
    assert (first.created, first.subscribe) == (True, "sent")
    assert (again.created, again.subscribe, again.notification_id) == (False, None, first.notification_id)
    assert len(emulator.messages) == 1 and subscribe_quota(client, ada) == 1
    assert len(inbox(client, ada)["items"]) == 1
    # The same key for another member is that member's own message.
    assert _notify(rt, shoppers["bo"]["member"]["id"], message).created


def test_a_kind_without_a_template_goes_to_the_inbox_only(client, rt, emulator, shoppers):
    ada = shoppers["ada"]
    opt_in(client, emulator, ada)
    done = _notify(rt, ada["member"]["id"], Message(kind="reminder", key="r1", text=Text("Your coupon expires soon")))
    assert done.subscribe is None and emulator.request_count(SEND_PATH) == 0
    assert deliveries(rt, ada["member"]["id"]) == [("inbox", "sent", None)]
    assert inbox(client, ada)["items"][0]["title"] == "Your coupon expires soon"


def test_the_inbox_pages_newest_first_and_counts_unread(client, rt, shoppers):
    ada, bo = shoppers["ada"], shoppers["bo"]
    ids = [_notify(rt, ada["member"]["id"], Message(kind="reminder", key=f"r{i}", text=Text(f"Note {i}"))).notification_id
           for i in range(5)]
    page = inbox(client, ada, limit=2)
    assert [i["id"] for i in page["items"]] == [ids[4], ids[3]]
    assert page["unread"] == 5
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"] is not None:
        page = inbox(client, ada, limit=2, cursor=page["next_cursor"])
        seen += [i["id"] for i in page["items"]]
    assert seen == ids[::-1]

    read = client.post(f"{ME}/inbox/{ids[0]}/read", headers=ada["headers"])
    assert read.status_code == 200 and read.get_json()["read_at"] is not None
    assert client.post(f"{ME}/inbox/{ids[0]}/read", headers=ada["headers"]).get_json() == read.get_json()
    assert inbox(client, ada)["unread"] == 4

    # Another member sees none of it and cannot touch it.
    assert inbox(client, bo) == {"items": [], "next_cursor": None, "unread": 0}
    api_error(client.post(f"{ME}/inbox/{ids[1]}/read", headers=bo["headers"]), "notification.not_found")
    api_error(client.post(f"{ME}/inbox/99999999/read", headers=ada["headers"]), "notification.not_found")
    assert inbox(client, ada)["unread"] == 4
