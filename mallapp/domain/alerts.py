"""Fleet alerts: a beacon or gateway problem raised once when it appears and cleared when it goes.

The clock's ``beacon-health`` job calls :func:`sweep`, which compares the fleet's problems now
(:func:`mallapp.domain.venue_admin.fleet_health` and the gateways' silence) with the open alerts: a new
problem raises an alert, a problem gone clears its alert. An open alert is unique per subject and
problem (a partial unique index), so a sweep run twice, or by two clocks, raises nothing twice.
Operations read them at ``GET /api/v1/ops/alerts``.

Someone on duty acknowledges an alert (:func:`acknowledge`: "seen, someone is on it"): it leaves the open feed but stays
uncleared while the problem lasts, so the sweep does not raise it again. Once the problem is fixed the sweep
clears it as usual, and the same problem coming back later is a new occurrence: a new, unacknowledged alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404, insert_or_nothing
from mallapp.domain import venue_admin
from mallapp.domain.points import BigId
from mallapp.domain.venue import Gateway
from mallapp.settings import Settings

SUBJECTS = ("beacon", "gateway")


class FleetAlert(Base):
    """A problem of one beacon or gateway, from when a sweep first saw it to when one saw it gone."""

    __tablename__ = "fleet_alerts"
    __table_args__ = (CheckConstraint(f"subject IN {SUBJECTS}", name="subject"),
                      Index("uq_fleet_alerts_open", "subject", "subject_id", "problem", unique=True,
                            sqlite_where=text("cleared_at IS NULL"), postgresql_where=text("cleared_at IS NULL")))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject: Mapped[str] = mapped_column(String(10))
    subject_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(80))  # the beacon's label or gateway's name, when raised
    problem: Mapped[str] = mapped_column(String(20))  # never_seen, silent, battery_low
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Who on duty said they had seen it (an ops username: never renamed), and when; null until then.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(40))


@dataclass(frozen=True)
class Swept:
    raised: int
    cleared: int


def current_problems(session: Session, settings: Settings, now: datetime) -> dict[tuple[str, int, str], str]:
    """Every (subject, id, problem) of the active fleet now, with the subject's label."""
    found = {("beacon", h.beacon.id, problem): h.beacon.label or f"beacon {h.beacon.id}"
             for h in venue_admin.fleet_health(session, settings.beacons, now, problems_only=True)
             for problem in h.problems}
    for gateway in session.scalars(select(Gateway).where(Gateway.active)):
        for problem in venue_admin.gateway_problems(gateway, settings.beacons, now):
            found["gateway", gateway.id, problem] = gateway.name
    return found


def sweep(session: Session, settings: Settings, now: datetime) -> Swept:
    """Raise an alert for each new problem, clear each alert whose problem is gone."""
    now_problems = current_problems(session, settings, now)
    open_alerts = {(a.subject, a.subject_id, a.problem): a.id for a in session.scalars(
        select(FleetAlert).where(FleetAlert.cleared_at.is_(None)))}
    raised = 0
    for (subject, subject_id, problem), label in now_problems.items():
        if (subject, subject_id, problem) in open_alerts:
            continue
        # A concurrent sweep raising the same alert waits on the unique index, then does nothing.
        raised += insert_or_nothing(session, FleetAlert, {
            "subject": subject, "subject_id": subject_id, "label": label[:80], "problem": problem, "raised_at": now,
            "cleared_at": None}, ["subject", "subject_id", "problem"], where="cleared_at IS NULL") is not None
    gone = [alert_id for key, alert_id in open_alerts.items() if key not in now_problems]
    cleared = session.execute(update(FleetAlert).where(FleetAlert.id.in_(gone), FleetAlert.cleared_at.is_(None))
                              .values(cleared_at=now).execution_options(synchronize_session=False)).rowcount if gone else 0
    return Swept(raised, cleared)


def listing(session: Session, *, include_cleared: bool = False, include_acknowledged: bool = False,
            limit: int = 200) -> list[FleetAlert]:
    """The open feed: alerts neither cleared nor acknowledged (and, when asked, those too), newest first."""
    query = select(FleetAlert)
    if not include_cleared:
        query = query.where(FleetAlert.cleared_at.is_(None))
    if not include_acknowledged:
        query = query.where(FleetAlert.acknowledged_at.is_(None))
    return list(session.scalars(query.order_by(FleetAlert.raised_at.desc(), FleetAlert.id.desc()).limit(limit)))


def acknowledge(session: Session, alert_id: int, by: str, now: datetime) -> FleetAlert:
    """Record that ``by`` has seen the alert; it leaves the open feed. The first acknowledgement stands.

    A cleared alert may be acknowledged too (the feed a person clicked in may be a sweep behind): nothing to
    refuse, the record only says who saw it.
    """
    alert = get_or_404(session, FleetAlert, alert_id, code="alert.not_found", message="no fleet alert with this id")
    # Conditional, so two people acknowledging at once leave the first one's name, not the last one's.
    session.execute(update(FleetAlert).where(FleetAlert.id == alert.id, FleetAlert.acknowledged_at.is_(None))
                    .values(acknowledged_at=now, acknowledged_by=by).execution_options(synchronize_session=False))
    session.refresh(alert)
    return alert
