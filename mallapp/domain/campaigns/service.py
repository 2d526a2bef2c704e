"""Defining campaigns and moving them through their statuses; what a member received.

draft --launch--> running (timing now, lifecycle, next_purchase_due) or scheduled (timing at)
scheduled --the clock at start_at--> running --the clock, once delivered and measured--> finished
draft, scheduled, running --cancel--> cancelled (nothing more is delivered; the report still reads)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallapp.db import get_or_404
from mallapp.domain import sends
from mallapp.domain.campaigns.audience import Audience
from mallapp.domain.campaigns.models import STATUSES, TIMINGS, Assignment, Campaign
from mallapp.domain.deals import Deal
from mallapp.domain.segments import LIFECYCLE_STATES
from mallapp.domain.venue import Store
from mallapp.errors import Conflict, InvalidInput, RuleViolation
from mallapp.settings import Settings

OFFER_KINDS = ("message", "coupon", "points")
MAX_STEPS = 8


def _check_steps(session: Session, steps: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    if not 1 <= len(steps) <= MAX_STEPS:
        raise InvalidInput(f"a campaign has 1 to {MAX_STEPS} steps", code="campaign.invalid_offer")
    out, last = [], -1
    for step in steps:
        after, offer = int(step.get("after_days", 0)), dict(step.get("offer") or {})
        if after <= last and out:
            raise InvalidInput("steps come in order of after_days, each later than the one before", code="campaign.invalid_offer")
        last = after
        kind = offer.get("kind")
        if kind not in OFFER_KINDS:
            raise InvalidInput(f"an offer's kind is one of {list(OFFER_KINDS)}", code="campaign.invalid_offer")
        if not offer.get("title"):
            raise InvalidInput("every offer has a title (zh-CN; title_en and body_en add English)", code="campaign.invalid_offer")
        if kind == "coupon":
            deal = session.get(Deal, offer.get("deal_id") or 0)
            if deal is None or deal.status != "live" or deal.ends_at <= now or deal.pack_key is not None:
                raise RuleViolation("a coupon offer needs a live deal that has not ended",
                                    code="campaign.deal_not_live", details={"deal_id": offer.get("deal_id")})
            offer.setdefault("coupon_valid_days", 14)
        if kind == "points" and not (isinstance(offer.get("points"), int) and offer["points"] > 0):
            raise InvalidInput("a points offer gives a positive whole number of points", code="campaign.invalid_offer")
        out.append({"after_days": after, "offer": offer})
    return out


def _check_stores(session: Session, audience: Audience) -> None:
    wanted = set(audience.bought_at_stores) | set(audience.follows_stores)
    if wanted:
        found = set(session.scalars(select(Store.id).where(Store.id.in_(wanted))))
        if wanted - found:
            raise InvalidInput(f"no store with id {sorted(wanted - found)}", code="campaign.invalid_audience")


def create(session: Session, settings: Settings, created_by: int, *, name: str, audience: dict[str, Any],
           steps: list[dict[str, Any]], timing: str, now: datetime, start_at: datetime | None = None,
           lifecycle_state: str | None = None, ends_at: datetime | None = None, control_pct: int | None = None,
           window_days: int | None = None) -> Campaign:
    """A draft campaign, checked: its audience rules, its offers, its timing."""
    rules = Audience.from_dict(audience)
    _check_stores(session, rules)
    if timing not in TIMINGS:
        raise InvalidInput(f"timing is one of {list(TIMINGS)}", code="campaign.invalid_timing")
    if timing == "at" and start_at is None:
        raise InvalidInput("a campaign timed \"at\" names its start_at", code="campaign.invalid_timing")
    if timing == "lifecycle" and lifecycle_state not in LIFECYCLE_STATES:
        raise InvalidInput(f"a lifecycle campaign names a lifecycle_state in {list(LIFECYCLE_STATES)}",
                           code="campaign.invalid_timing")
    if timing != "lifecycle":
        lifecycle_state = None
    cfg = settings.campaigns
    campaign = Campaign(
        name=name, status="draft", audience=rules.to_dict(), steps=_check_steps(session, steps, now), timing=timing,
        start_at=start_at if timing == "at" else None, lifecycle_state=lifecycle_state, ends_at=ends_at,
        control_pct=cfg.control_pct if control_pct is None else control_pct,
        window_days=cfg.window_days if window_days is None else window_days,
        seed=secrets.randbits(62), created_by=created_by, created_at=now)
    if not 0 <= campaign.control_pct <= 50:
        raise InvalidInput("control_pct is 0 to 50", code="campaign.invalid_control")
    session.add(campaign)
    session.flush()
    return campaign


def get(session: Session, campaign_id: int, *, lock: bool = False) -> Campaign:
    return get_or_404(session, Campaign, campaign_id, code="campaign.not_found", what="campaign", lock=lock)


def list_all(session: Session, status: str | None = None) -> list[Campaign]:
    q = select(Campaign).order_by(Campaign.id.desc())
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status is one of {list(STATUSES)}", code="request.invalid_query")
        q = q.where(Campaign.status == status)
    return list(session.scalars(q))


@dataclass(frozen=True)
class Launched:
    campaign: Campaign
    fanout: bool  # True: the caller puts the audience's fan-out on the stream after its commit


def start(session: Session, campaign: Campaign, now: datetime) -> bool:
    """Make a campaign running; for a one-off audience (now, at), ask for its fan-out. Whether one was asked."""
    campaign.status, campaign.started_at = "running", now
    if campaign.timing in ("now", "at"):
        return sends.request_fanout(session, "campaign", campaign.id, now)
    return False


def launch(session: Session, campaign_id: int, now: datetime) -> Launched:
    """Launch a draft: running at once, or scheduled until its start_at."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status != "draft":
        raise Conflict("only a draft campaign can be launched", code="campaign.invalid_state",
                       details={"status": campaign.status})
    campaign.launched_at = now
    if campaign.timing == "at" and campaign.start_at is not None and campaign.start_at > now:
        campaign.status = "scheduled"
        session.flush()
        return Launched(campaign, False)
    fanout = start(session, campaign, now)
    session.flush()
    return Launched(campaign, fanout)


def cancel(session: Session, campaign_id: int, now: datetime) -> Campaign:
    """Stop a campaign: nothing more is assigned or delivered (what was delivered stays, and is reported)."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status in ("finished", "cancelled"):
        raise Conflict(f"the campaign is {campaign.status}", code="campaign.invalid_state",
                       details={"status": campaign.status})
    campaign.status, campaign.cancelled_at = "cancelled", now
    session.flush()
    return campaign


def received(session: Session, member_id: int) -> list[dict[str, Any]]:
    """The campaigns a member was drawn into, newest first: for the service desk's member record.

    ``arm`` is ``treated`` (contacted; ``steps_delivered`` of ``steps``) or ``control`` (kept out on
    purpose, to measure the campaign: never contacted).
    """
    rows = session.execute(select(Assignment, Campaign).join(Campaign, Campaign.id == Assignment.campaign_id)
                           .where(Assignment.member_id == member_id).order_by(Assignment.id.desc()))
    return [{"campaign_id": c.id, "name": c.name, "status": c.status, "arm": a.arm, "assigned_at": a.assigned_at,
             "steps": len(c.steps), "steps_delivered": a.next_step if a.arm == "treated" else 0,
             "last_sent_at": a.last_sent_at} for a, c in rows]
