"""Drawing a campaign's audience into treated and control, and delivering its steps, a batch at a time.

Each member drawn gets one :class:`Assignment` per campaign (a unique key): the arm comes from a
deterministic draw seeded by the campaign (:func:`draw`), so drawing again assigns the same. A
treated member's assignment says which step is next and when (``next_step``, ``next_step_at``);
control members have none and are never contacted. :func:`deliver_batch` delivers the due step to
a batch of members in the caller's transaction, under a lock on their assignments, and moves each
to its next step: an entry delivered twice finds the step done and does nothing, and the message's
key (``campaign:<id>:<step>``), the points' idempotency key and the coupon's issue key make sure of
it. The ``campaigns`` clock job (:func:`tick`) starts scheduled campaigns, assigns the members that
triggered ones pick up, and puts due steps and lost fan-outs back on the stream.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mallapp.db import insert_many_or_nothing
from mallapp.domain import coupons, notifications, points, sends
from mallapp.domain.campaigns import audience as audiences
from mallapp.domain.campaigns.models import Assignment, Campaign
from mallapp.domain.campaigns.service import start
from mallapp.domain.deals import Deal
from mallapp.domain.members import Member
from mallapp.domain.notifications import Message, Notification, Senders, Text
from mallapp.domain.parking import quota
from mallapp.domain.segments import LifecycleTransition, MemberSnapshot
from mallapp.settings import Settings

FANOUT_CHUNK = 2000  # members drawn per transaction while fanning out
TRIGGER_LOOKBACK_DAYS = 7  # triggered campaigns pick up entrants of the last days (since launch) not yet assigned


def draw(seed: int, member_id: int, control_pct: int) -> str:
    """The member's arm in the campaign seeded ``seed``: control with probability ``control_pct``/100."""
    digest = hashlib.blake2b(f"{seed}:{member_id}".encode(), digest_size=8).digest()
    return "control" if int.from_bytes(digest, "big") * 100 < control_pct * 2 ** 64 else "treated"


def message_key(campaign_id: int, step: int) -> str:
    return f"campaign:{campaign_id}:{step}"


def assign(session: Session, campaign: Campaign, member_ids: Sequence[int], now: datetime) -> list[int]:
    """Draw these members into the campaign (those already in it keep their arm); the treated ones newly
    assigned whose first step is due now, marked queued (the caller puts them on the stream after its commit)."""
    if not member_ids:
        return []
    first = timedelta(days=campaign.steps[0]["after_days"])
    rows = []
    for member_id in member_ids:
        arm = draw(campaign.seed, member_id, campaign.control_pct)
        treated = arm == "treated"
        rows.append({"campaign_id": campaign.id, "member_id": member_id, "arm": arm, "assigned_at": now,
                     "measure_until": now + timedelta(days=campaign.window_days), "next_step": 0,
                     "next_step_at": now + first if treated else None,
                     "queued_at": now if treated and not first else None, "last_sent_at": None})
    inserted = insert_many_or_nothing(session, Assignment, rows, ["campaign_id", "member_id"],
                                      returning=("member_id", "arm"))
    return sorted(row.member_id for row in inserted if row.arm == "treated" and not first)


@dataclass(frozen=True)
class _Plan:
    id: int
    status: str
    rules: audiences.Audience


def fan_out(sessions: sessionmaker[Session], redis: Redis, settings: Settings, campaign_id: int, now: datetime,
            keep_going: Callable[[], bool] = lambda: True) -> int:
    """Draw a running one-off campaign's audience, a chunk per transaction, and put each chunk's treated
    members on the stream; mark the fan-out done. How many members were drawn now (a rerun draws only
    those missing)."""
    with sessions.begin() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != "running":
            sends.finish_fanout(session, "campaign", campaign_id, 0, now)
            return 0
        plan = _Plan(campaign.id, campaign.status, audiences.Audience.from_dict(campaign.audience))
    last, total = 0, 0
    while keep_going():
        with sessions.begin() as session:
            campaign = session.get_one(Campaign, plan.id)
            not_in = ~exists(select(Assignment.id).where(Assignment.campaign_id == plan.id,
                                                          Assignment.member_id == Member.id))
            ids = list(session.scalars(audiences.query(session, plan.rules, now).where(Member.id > last, not_in)
                                       .order_by(Member.id).limit(FANOUT_CHUNK)))
            if not ids:
                drawn = session.scalar(select(func.count()).where(Assignment.campaign_id == plan.id)) or 0
                sends.finish_fanout(session, "campaign", plan.id, drawn, now)
                break
            treated = assign(session, campaign, ids, now)
        sends.enqueue_batches(redis, "campaign", plan.id, treated, settings.campaigns.batch_size)
        last, total = ids[-1], total + len(ids)
    return total


def _quiet_until(settings: Settings, now: datetime) -> datetime | None:
    """When the quiet hours ``now`` falls in end (None: not quiet)."""
    cfg, tz = settings.campaigns, settings.mall.tz
    start_t, end_t = (time.fromisoformat(cfg.quiet_start), time.fromisoformat(cfg.quiet_end))
    if start_t == end_t:
        return None
    local = now.astimezone(tz)
    clock = local.time()
    quiet = start_t <= clock < end_t if start_t < end_t else (clock >= start_t or clock < end_t)
    if not quiet:
        return None
    end = datetime.combine(local.date(), end_t, tzinfo=tz)
    if end <= local:
        end += timedelta(days=1)
    return end


def _text(offer: dict[str, Any]) -> Callable[[str], Text]:
    """The offer's message in each locale: the ops' own words, zh-CN (title, body) and English (title_en,
    body_en); an English reader gets the zh-CN where no English was written."""
    zh = Text(offer["title"][:80], (offer.get("body") or "")[:1000])
    en = Text((offer.get("title_en") or zh.title)[:80], (offer.get("body_en") or zh.body)[:1000])

    def render(locale: str) -> Text:
        return en if locale == "en" else zh
    return render


def _recently_messaged(session: Session, member_ids: Sequence[int], since: datetime) -> dict[int, int]:
    return {member_id: n for member_id, n in session.execute(
        select(Notification.member_id, func.count()).where(
            Notification.member_id.in_(member_ids), Notification.kind == "campaign",
            Notification.created_at >= since).group_by(Notification.member_id))}


def deliver_batch(session: Session, settings: Settings, senders: Senders, campaign_id: int,
                  member_ids: Sequence[int], now: datetime) -> int:
    """Deliver the due step to these treated members (one lock on their assignments); how many were reached.

    A cancelled or finished campaign delivers nothing more. In quiet hours the batch waits for their
    end; a member over ``[campaigns] max_per_week`` waits a day.
    """
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return 0
    rows = list(session.scalars(select(Assignment).where(
        Assignment.campaign_id == campaign_id, Assignment.member_id.in_(member_ids), Assignment.arm == "treated",
        Assignment.next_step_at.is_not(None), Assignment.next_step_at <= now)
        .order_by(Assignment.member_id).with_for_update()))
    if not rows:
        return 0
    if campaign.status != "running":
        for row in rows:
            row.next_step_at, row.queued_at = None, None
        return 0
    quiet_end = _quiet_until(settings, now)
    if quiet_end is not None:
        for row in rows:
            row.next_step_at, row.queued_at = quiet_end, None
        return 0
    recent = _recently_messaged(session, [r.member_id for r in rows], now - timedelta(days=7))
    due: dict[int, list[Assignment]] = defaultdict(list)
    for row in rows:
        if recent.get(row.member_id, 0) >= settings.campaigns.max_per_week:
            row.next_step_at, row.queued_at = now + timedelta(days=1), None
        else:
            due[row.next_step].append(row)
    reached = 0
    online = senders.online([r.member_id for batch in due.values() for r in batch]) if due else set()
    for step_no, batch in sorted(due.items()):
        offer = campaign.steps[step_no]["offer"]
        message = _step(session, settings, campaign, step_no, offer, [r.member_id for r in batch], now)
        notifications.record_many(session, settings, [(r.member_id, message) for r in batch], now, online)
        # One UPDATE per next due time (members drawn together share it), not one per member.
        after = (timedelta(days=campaign.steps[step_no + 1]["after_days"]) if step_no + 1 < len(campaign.steps)
                 else None)
        by_due: dict[datetime | None, list[int]] = defaultdict(list)
        for row in batch:
            by_due[None if after is None else row.assigned_at + after].append(row.id)
        for next_at, ids in by_due.items():
            session.execute(update(Assignment).where(Assignment.id.in_(ids))
                            .values(next_step=step_no + 1, last_sent_at=now, queued_at=None, next_step_at=next_at)
                            .execution_options(synchronize_session=False))
        reached += len(batch)
    session.flush()
    return reached


def _step(session: Session, settings: Settings, campaign: Campaign, step_no: int, offer: dict[str, Any],
          member_ids: list[int], now: datetime) -> Message:
    """Give each member the step's offer (points, a coupon); the message that tells them."""
    text = _text(offer)
    key = message_key(campaign.id, step_no)
    if offer["kind"] == "points":
        for member_id in member_ids:
            points.credit(session, settings, member_id, offer["points"], "campaign",
                          source_ref=f"campaign:{campaign.id}", idempotency_key=f"{key}:{member_id}", now=now,
                          note=campaign.name[:200])
        return Message(kind="campaign", key=key, text=text)
    if offer["kind"] == "coupon":
        deal = session.get(Deal, offer["deal_id"], with_for_update=True)
        if deal is None:
            return Message(kind="campaign", key=key, text=text)
        # The deal's quota bounds what a campaign gives; a deal no longer live gives no more coupons.
        left = deal.quota - deal.claimed if deal.status == "live" and deal.within_validity(now) else 0
        # A parking coupon's merchant quota bounds it too (locked here until the batch commits).
        covered = quota.coupons_left(session, deal, now) if left > 0 else None
        left = left if covered is None else min(left, covered)
        valid_until = min(deal.ends_at, now + timedelta(days=offer.get("coupon_valid_days", 14)))
        for member_id in member_ids[:max(0, left)]:
            coupons.issue(session, settings, member_id, deal, key=f"{key}:{member_id}", valid_until=valid_until,
                          now=now)
        return Message(kind="campaign", key=key, text=text, deal_id=deal.id, store_id=deal.store_id,
                       page=f"{settings.notifications.deal_page}?id={deal.id}")
    return Message(kind="campaign", key=key, text=text)


# --- the clock -------------------------------------------------------------------------------------

def _entrants(session: Session, settings: Settings, campaign: Campaign, now: datetime) -> list[int]:
    """Members a triggered campaign picks up now: entered its lifecycle state, or whose next purchase
    fell due, since its launch (within the lookback), matching its audience, not yet assigned."""
    today = settings.mall.local_day(now)
    since = max(settings.mall.local_day(campaign.started_at or now), today - timedelta(days=TRIGGER_LOOKBACK_DAYS))
    if campaign.timing == "lifecycle":
        trigger = select(LifecycleTransition.member_id).where(
            LifecycleTransition.to_state == campaign.lifecycle_state, LifecycleTransition.day >= since,
            LifecycleTransition.day <= today)
    else:
        trigger = select(MemberSnapshot.member_id).where(
            MemberSnapshot.month == audiences.latest_month(session), MemberSnapshot.next_purchase_due >= since,
            MemberSnapshot.next_purchase_due <= today)
    not_in = ~exists(select(Assignment.id).where(Assignment.campaign_id == campaign.id,
                                                  Assignment.member_id == Member.id))
    rules = audiences.Audience.from_dict(campaign.audience)
    return list(session.scalars(audiences.query(session, rules, now).where(Member.id.in_(trigger), not_in)
                                .order_by(Member.id).limit(FANOUT_CHUNK)))


def _due_steps(session: Session, now: datetime, limit: int) -> dict[int, list[int]]:
    """Treated members whose next step is due and not on the stream (or put there over sends.STALE ago), marked queued."""
    rows = session.execute(select(Assignment.id, Assignment.campaign_id, Assignment.member_id)
                           .join(Campaign, Campaign.id == Assignment.campaign_id)
                           .where(Campaign.status == "running", Assignment.next_step_at <= now,
                                  Assignment.queued_at.is_(None) | (Assignment.queued_at < now - sends.STALE))
                           .order_by(Assignment.id).limit(limit)
                           # rows a consumer is delivering now are its: skip them, never wait (or deadlock) on them
                           .with_for_update(of=Assignment, skip_locked=True)).all()
    if rows:
        session.execute(update(Assignment).where(Assignment.id.in_([r.id for r in rows])).values(queued_at=now)
                        .execution_options(synchronize_session=False))
    out: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        out[row.campaign_id].append(row.member_id)
    return out


def _finish(session: Session, now: datetime) -> int:
    """Running campaigns delivered in full whose every member's window is over: finished."""
    done = 0
    for campaign in session.scalars(select(Campaign).where(Campaign.status == "running").with_for_update()):
        if campaign.timing in ("now", "at"):
            if not sends.fanout_done(session, "campaign", campaign.id):
                continue
        elif campaign.ends_at is None or now < campaign.ends_at:
            continue
        pending = session.scalar(select(func.count()).where(Assignment.campaign_id == campaign.id,
                                                            Assignment.next_step_at.is_not(None)))
        last_window = session.scalar(select(func.max(Assignment.measure_until))
                                     .where(Assignment.campaign_id == campaign.id))
        if not pending and (last_window is None or now >= last_window):
            campaign.status, campaign.finished_at = "finished", now
            done += 1
    return done


def tick(sessions: sessionmaker[Session], redis: Redis, settings: Settings, now: datetime,
         keep_going: Callable[[], bool] = lambda: True) -> int:
    """The ``campaigns`` clock job: start what is due, pick up triggered members, queue due steps, put
    lost fan-outs back, finish what is over. How many things it did."""
    size = settings.campaigns.batch_size
    count = 0
    with sessions.begin() as session:
        started = []
        for campaign in session.scalars(select(Campaign).where(Campaign.status == "scheduled",
                                                               Campaign.start_at <= now).with_for_update()):
            if start(session, campaign, now):
                started.append(campaign.id)
    for campaign_id in started:
        sends.enqueue_fanout(redis, "campaign", campaign_id)
    count += len(started)
    with sessions.begin() as session:
        triggered = list(session.scalars(select(Campaign.id).where(
            Campaign.status == "running", Campaign.timing.in_(("lifecycle", "next_purchase_due")),
            Campaign.ends_at.is_(None) | (Campaign.ends_at > now))))
    for campaign_id in triggered:
        while keep_going():
            with sessions.begin() as session:
                campaign = session.get_one(Campaign, campaign_id)
                entrants = _entrants(session, settings, campaign, now)
                treated = assign(session, campaign, entrants, now)
            sends.enqueue_batches(redis, "campaign", campaign_id, treated, size)
            count += len(entrants)
            if len(entrants) < FANOUT_CHUNK:
                break
    while keep_going():
        with sessions.begin() as session:
            due = _due_steps(session, now, 10 * size)
        for campaign_id, member_ids in due.items():
            sends.enqueue_batches(redis, "campaign", campaign_id, member_ids, size)
        queued = sum(len(m) for m in due.values())
        count += queued
        if queued < 10 * size:
            break
    with sessions.begin() as session:
        stale = sends.stale_fanouts(session, now)
    for kind, ref_id in stale:
        sends.enqueue_fanout(redis, kind, ref_id)
        with sessions.begin() as session:
            sends.mark_enqueued(session, kind, ref_id, now)
    count += len(stale)
    with sessions.begin() as session:
        count += _finish(session, now)
    return count
