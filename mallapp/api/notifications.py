"""Delivery for members (follows, mutes, subscribe opt-ins, the inbox) and deal announcements for merchants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints
from sqlalchemy.orm import Session

from mallapp.api.core import (
    REPLAY,
    AfterCommit,
    Body,
    Out,
    Query,
    current_member_id,
    current_merchant_id,
    operation,
    runtime,
    transaction,
)
from mallapp.domain import follows, notifications, sends

member_bp = Blueprint("member_delivery", __name__, url_prefix="/api/v1/me")
merchant_bp = Blueprint("merchant_announcements", __name__, url_prefix="/api/v1/merchant")


# --- shapes ----------------------------------------------------------------------------------------

class FollowOut(Out):
    store_id: int
    store_name: str
    followed_at: datetime


class FollowsOut(Out):
    follows: list[FollowOut] = Field(description="most recent first")


class MutesOut(Out):
    all: bool = Field(description="every deal push is muted (messages still reach the inbox)")
    store_ids: list[int] = Field(description="stores whose deal pushes are muted")


TemplateId = Annotated[str, StringConstraints(pattern=r"^[\w-]{1,64}$")]


class SubscriptionsIn(Body):
    results: dict[TemplateId, Literal["accept", "reject", "ban", "filter"]] = Field(
        max_length=20, description="the template ids and answers of a wx.requestSubscribeMessage result "
                                   "(leave out its errMsg); each accept allows one message of that template")


class QuotasOut(Out):
    quotas: dict[str, int] = Field(description="subscribe messages the member may still receive, per configured "
                                               "template")
    ignored: list[str] = Field(default_factory=list, description="template ids this mall does not send")


class InboxItemOut(Out):
    id: int
    kind: Literal["deal", "reminder", "queue", "reservation", "campaign"]
    title: str
    body: str
    deal_id: int | None
    store_id: int | None
    page: str | None = Field(description="the mini-program page to open")
    created_at: datetime
    read_at: datetime | None


class InboxOut(Out):
    items: list[InboxItemOut] = Field(description="newest first")
    next_cursor: int | None = Field(description="pass as cursor for the next page; null on the last page")
    unread: int = Field(description="unread items in the whole inbox")


class InboxQuery(Query):
    cursor: int | None = Field(default=None, ge=1, le=2**62, description="next_cursor of the previous page")
    limit: int = Field(default=20, ge=1, le=100)


class AnnounceOut(Out):
    deal_id: int
    announced_at: datetime
    replayed: bool = Field(description="true when the deal had been announced before; nothing was queued now")
    inbox: int = Field(description="followers who got it in their inbox so far (the sends workers deliver it "
                                   "after the reply, a batch at a time: call again to see the figures grow)")
    subscribe_sent: int = Field(description="followers who got a WeChat subscribe message")
    live_sent: int = Field(description="followers whose open mini-program got it live (they keep their "
                                       "subscribe-message quota)")
    pushes: int = Field(description="the deal's pushes figure now")


def _item(n: notifications.Notification) -> InboxItemOut:
    return InboxItemOut(id=n.id, kind=n.kind, title=n.title, body=n.body, deal_id=n.deal_id, store_id=n.store_id,
                        page=n.page, created_at=n.created_at, read_at=n.read_at)


def _mutes_out() -> MutesOut:
    with transaction() as session:
        muted_all, store_ids = follows.mutes(session, current_member_id())
    return MutesOut(all=muted_all, store_ids=store_ids)


_STORE = ("store.not_found",)


# --- follows and mutes -----------------------------------------------------------------------------

@operation(member_bp, "/follows", "GET", summary="The stores this member follows", auth="member",
           response=FollowsOut)
def list_follows() -> FollowsOut:
    with transaction() as session:
        rows = follows.following(session, current_member_id())
        return FollowsOut(follows=[FollowOut(store_id=s.id, store_name=s.name, followed_at=f.created_at)
                                   for f, s in rows])


@operation(member_bp, "/follows/<int:store_id>", "PUT",
           summary="Follow a store: hear of its limited specials before they open (following again changes nothing)",
           auth="member", response=FollowOut, errors=_STORE)
def follow(store_id: int) -> FollowOut:
    with transaction() as session:
        row, store = follows.follow(session, current_member_id(), store_id, runtime().now())
        return FollowOut(store_id=store.id, store_name=store.name, followed_at=row.created_at)


@operation(member_bp, "/follows/<int:store_id>", "DELETE", summary="Stop following a store (idempotent)",
           auth="member", status=204)
def unfollow(store_id: int) -> None:
    with transaction() as session:
        follows.unfollow(session, current_member_id(), store_id)


@operation(member_bp, "/mutes", "GET", summary="What this member muted", auth="member", response=MutesOut)
def list_mutes() -> MutesOut:
    return _mutes_out()


@operation(member_bp, "/mutes/all", "PUT", summary="Mute every deal push (the inbox still gets them)",
           auth="member", response=MutesOut)
def mute_all() -> MutesOut:
    with transaction() as session:
        follows.mute(session, current_member_id(), None, runtime().now())
    return _mutes_out()


@operation(member_bp, "/mutes/all", "DELETE", summary="Lift the mute of every push", auth="member",
           response=MutesOut)
def unmute_all() -> MutesOut:
    with transaction() as session:
        follows.unmute(session, current_member_id(), None)
    return _mutes_out()


@operation(member_bp, "/mutes/stores/<int:store_id>", "PUT", summary="Mute one store's deal pushes",
           auth="member", response=MutesOut, errors=_STORE)
def mute_store(store_id: int) -> MutesOut:
    with transaction() as session:
        follows.mute(session, current_member_id(), store_id, runtime().now())
    return _mutes_out()


@operation(member_bp, "/mutes/stores/<int:store_id>", "DELETE", summary="Lift the mute of one store",
           auth="member", response=MutesOut)
def unmute_store(store_id: int) -> MutesOut:
    with transaction() as session:
        follows.unmute(session, current_member_id(), store_id)
    return _mutes_out()


# --- subscribe-message quota -----------------------------------------------------------------------

@operation(member_bp, "/subscriptions", "GET", summary="Subscribe messages this member may still receive",
           auth="member", response=QuotasOut)
def list_quotas() -> QuotasOut:
    rt = runtime()
    with transaction() as session:
        return QuotasOut(quotas=notifications.quotas(session, rt.settings, current_member_id()))


@operation(member_bp, "/subscriptions", "POST",
           summary="Report a wx.requestSubscribeMessage result: one message per accepted template",
           auth="member", body=SubscriptionsIn, response=QuotasOut)
def report_opt_ins(body: SubscriptionsIn) -> QuotasOut:
    rt = runtime()
    with transaction() as session:
        ignored = notifications.record_opt_ins(session, rt.settings, current_member_id(), body.results, rt.now())
        return QuotasOut(quotas=notifications.quotas(session, rt.settings, current_member_id()), ignored=ignored)


# --- the inbox -------------------------------------------------------------------------------------

@operation(member_bp, "/inbox", "GET", summary="The member's messages, newest first, a page at a time",
           auth="member", query=InboxQuery, response=InboxOut)
def inbox(query: InboxQuery) -> InboxOut:
    with transaction() as session:
        items, cursor = notifications.inbox(session, current_member_id(), query.cursor, query.limit)
        return InboxOut(items=[_item(n) for n in items], next_cursor=cursor,
                        unread=notifications.unread(session, current_member_id()))


@operation(member_bp, "/inbox/<int(big=True):notification_id>/read", "POST", summary="Mark one inbox item read",
           auth="member", response=InboxItemOut, errors=("notification.not_found",))
def mark_read(notification_id: int) -> InboxItemOut:
    with transaction() as session:
        return _item(notifications.mark_read(session, current_member_id(), notification_id, runtime().now()))


# --- merchants -------------------------------------------------------------------------------------

@operation(merchant_bp, "/deals/<int:deal_id>/announce", "POST",
           summary="Announce a live deal to its store's followers, once (inbox, and WeChat where they opted in); "
                   "the sends workers deliver it after the reply",
           auth="merchant_manager", response=AnnounceOut, status=201, also=REPLAY,
           errors=("deal.not_found", "deal.invalid_state"))
def announce(deal_id: int) -> AfterCommit:
    rt = runtime()
    with transaction() as session:
        replayed = notifications.announce(session, rt.settings, current_merchant_id(), deal_id, rt.now()).replayed

    def after_commit(session: Session) -> tuple[AnnounceOut, int]:
        if not replayed:  # committed: the fan-out goes on the stream (the campaigns clock job re-sends a lost one)
            sends.enqueue_fanout(rt.redis, "announcement", deal_id)
        return _announced(notifications.announced(session, deal_id, replayed))

    return AfterCommit(after_commit)


def _announced(done: notifications.Announced) -> tuple[AnnounceOut, int]:
    out = AnnounceOut(deal_id=done.deal_id, announced_at=done.announced_at, replayed=done.replayed,
                      inbox=done.inbox, subscribe_sent=done.subscribe_sent, live_sent=done.live_sent,
                      pushes=done.pushes)
    return out, 200 if done.replayed else 201
