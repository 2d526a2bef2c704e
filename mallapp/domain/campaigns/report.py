"""A campaign's effect: for treated and control, who bought and how much within the window, and the uplift.

Each member's window is ``[assigned_at, measure_until)`` (the campaign's ``window_days`` from the
member's own assignment, for both arms alike). A purchase counts net of refunds, and a purchase
refunded in full does not count. Control members were never contacted, so the difference between
the arms is what the campaign changed (intention to treat: a treated member counts whether or not
the message reached them, or they read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from mallapp.domain.campaigns.models import Assignment, Campaign
from mallapp.domain.campaigns.service import get
from mallapp.domain.campaigns.stats import Interval, Moments, newcombe, welch
from mallapp.domain.purchases import Purchase

METHODS = {"conversion_uplift": "difference of proportions, 95% Newcombe hybrid score interval (Newcombe 1998, "
                                "method 10, from the arms' Wilson intervals)",
           "spend_uplift": "difference of mean spend per member (non-buyers count 0), 95% Welch interval"}


@dataclass(frozen=True)
class Arm:
    members: int
    contacted: int
    buyers: int
    purchases: int
    spend_fen: int
    conversion: float | None
    spend_per_member_fen: float | None


@dataclass(frozen=True)
class Report:
    campaign: Campaign
    treated: Arm
    control: Arm
    conversion_uplift: Interval | None
    spend_uplift_fen: Interval | None
    windows_closed: bool  # every member's window is over: the figures are final
    as_of: datetime


def per_member(session: Session, campaign_id: int) -> dict[str, list[tuple[int, int, bool]]]:
    """Per arm, each member's (purchases, net spend in fen, contacted) within their window."""
    net = Purchase.amount_fen - Purchase.refunded_fen
    rows = session.execute(
        select(Assignment.arm, Assignment.member_id, Assignment.last_sent_at.is_not(None),
               func.count(Purchase.id), func.coalesce(func.sum(net), 0))
        .outerjoin(Purchase, and_(Purchase.member_id == Assignment.member_id,
                                  Purchase.occurred_at >= Assignment.assigned_at,
                                  Purchase.occurred_at < Assignment.measure_until,
                                  Purchase.refunded_fen < Purchase.amount_fen))
        .where(Assignment.campaign_id == campaign_id)
        .group_by(Assignment.arm, Assignment.member_id, Assignment.last_sent_at))
    out: dict[str, list[tuple[int, int, bool]]] = {"treated": [], "control": []}
    for arm, _member_id, contacted, bought, spend in rows:
        out[arm].append((int(bought), int(spend), bool(contacted)))
    return out


def _arm(values: list[tuple[int, int, bool]]) -> tuple[Arm, Moments]:
    n = len(values)
    buyers = sum(1 for bought, _, _ in values if bought)
    spend = sum(s for _, s, _ in values)
    arm = Arm(members=n, contacted=sum(1 for *_, c in values if c), buyers=buyers,
              purchases=sum(b for b, _, _ in values), spend_fen=spend,
              conversion=buyers / n if n else None, spend_per_member_fen=spend / n if n else None)
    return arm, Moments.of([float(s) for _, s, _ in values])


def report(session: Session, campaign_id: int, now: datetime) -> Report:
    campaign = get(session, campaign_id)
    values = per_member(session, campaign_id)
    treated, t_spend = _arm(values["treated"])
    control, c_spend = _arm(values["control"])
    last_window = session.scalar(select(func.max(Assignment.measure_until)).where(Assignment.campaign_id == campaign_id))
    return Report(campaign, treated, control,
                  newcombe(treated.buyers, treated.members, control.buyers, control.members),
                  welch(t_spend, c_spend),
                  windows_closed=last_window is not None and now >= last_window
                  and campaign.status in ("finished", "cancelled"), as_of=now)
