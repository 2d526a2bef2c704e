"""What a merchant's manager reads about their own business: their stores with what a deal may target, the
coupons redeemed at their tills, and the footfall and dwell in their stores' zones.

Every function is scoped to one merchant: another merchant's store is NotFound, exactly like one that does not
exist. The footfall is the same zone-visit data ops reads (:func:`mallapp.domain.venue_admin.footfall`),
limited to the zones of the merchant's own stores and cut into the mall's days or hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from mallapp.db import get_or_404
from mallapp.domain import venue
from mallapp.domain.coupons import Coupon
from mallapp.domain.deals import Deal
from mallapp.domain.proximity.history import ZoneVisit
from mallapp.domain.staff import Staff
from mallapp.domain.venue import SaleItem, Store, Zone
from mallapp.errors import InvalidInput

# A footfall series: one day is cut into hours, longer ranges into days, up to this many.
MAX_FOOTFALL_DAYS = 62


# --- stores and what a deal may target -----------------------------------------------------------------

@dataclass(frozen=True)
class OwnStore:
    store: Store
    zones: list[Zone]          # active zones of the store (what a deal's zone_ids may name)
    sale_items: list[SaleItem]  # active sale items of the store (what sale_item_ids may name)


def own_stores(session: Session, merchant_id: int) -> list[OwnStore]:
    """The merchant's active stores with their active zones and sale items: exactly what
    :func:`mallapp.domain.deals._check_ids` lets one of its deals target (three queries)."""
    stores = venue.merchant_stores(session, merchant_id)
    ids = [s.id for s in stores]
    zones: dict[int, list[Zone]] = {i: [] for i in ids}
    items: dict[int, list[SaleItem]] = {i: [] for i in ids}
    if ids:
        for zone in session.scalars(select(Zone).where(Zone.store_id.in_(ids), Zone.active).order_by(Zone.id)):
            zones[zone.store_id].append(zone)  # type: ignore[index]
        for item in session.scalars(select(SaleItem).where(SaleItem.store_id.in_(ids), SaleItem.active)
                                    .order_by(SaleItem.id)):
            items[item.store_id].append(item)
    return [OwnStore(s, zones[s.id], items[s.id]) for s in stores]


def _own_store_ids(session: Session, merchant_id: int, store_id: int | None) -> list[int]:
    """The merchant's store ids (inactive ones too: their history stays theirs), or the one asked for."""
    if store_id is not None:
        get_or_404(session, Store, store_id, code="store.not_found", message=f"no store {store_id} of yours",
                   accept=lambda store: store.merchant_id == merchant_id)
        return [store_id]
    return list(session.scalars(select(Store.id).where(Store.merchant_id == merchant_id)))


def day_period(tz: tzinfo, first: date, last: date) -> tuple[datetime, datetime]:
    """The instants from the start of ``first`` to the end of ``last``, mall-local days."""
    return datetime.combine(first, time(), tzinfo=tz), datetime.combine(last + timedelta(days=1), time(), tzinfo=tz)


# --- coupons redeemed at the merchant's tills ----------------------------------------------------------

@dataclass(frozen=True)
class Redemption:
    coupon: Coupon
    deal: Deal
    store_name: str
    staff_username: str | None  # whose till; None when the merchant's API key redeemed it


@dataclass(frozen=True)
class RedemptionTotals:
    count: int
    discount_fen: int  # what the tills were told to take off (amount_off, percent_off with the spend sent)
    bonus_points: int


def redemptions(session: Session, merchant_id: int, since: datetime, until: datetime, *,
                after: tuple[datetime, int] | None = None, limit: int = 50
                ) -> tuple[list[Redemption], tuple[datetime, int] | None]:
    """Coupons redeemed at the merchant's stores in [since, until), newest redemption first, a page at a time.

    The stores are the merchant's tills: its own deals' coupons, and mall-wide coupons its tills took. ``after``
    is the (redeemed_at, coupon id) of the last row of the page before; returns the page and that key for the
    next (None at the end), so a redemption made meanwhile neither repeats nor hides a row.
    Uses ix_coupons_store_redeemed_at.
    """
    stores = _own_store_ids(session, merchant_id, None)
    if not stores:
        return [], None
    query = (select(Coupon, Deal, Store.name, Staff.username).join(Deal, Deal.id == Coupon.deal_id)
             .join(Store, Store.id == Coupon.redeemed_at_store)
             .outerjoin(Staff, Staff.id == Coupon.redeemed_by)
             .where(Coupon.redeemed_at_store.in_(stores), Coupon.redeemed_at >= since, Coupon.redeemed_at < until))
    if after is not None:
        at, coupon_id = after
        query = query.where(or_(Coupon.redeemed_at < at, and_(Coupon.redeemed_at == at, Coupon.id < coupon_id)))
    rows = session.execute(query.order_by(Coupon.redeemed_at.desc(), Coupon.id.desc()).limit(limit + 1)).all()
    page = [Redemption(c, d, name, username) for c, d, name, username in rows[:limit]]
    last = page[-1].coupon if len(rows) > limit else None
    return page, (last.redeemed_at, last.id) if last is not None and last.redeemed_at is not None else None


def redemption_totals(session: Session, merchant_id: int, since: datetime, until: datetime) -> RedemptionTotals:
    """How many coupons the merchant's tills redeemed in [since, until), the discounts and bonus points."""
    stores = _own_store_ids(session, merchant_id, None)
    if not stores:
        return RedemptionTotals(0, 0, 0)
    count, discount, points = session.execute(
        select(func.count(), func.coalesce(func.sum(Coupon.discount_fen), 0),
               func.coalesce(func.sum(Coupon.bonus_points), 0))
        .where(Coupon.redeemed_at_store.in_(stores), Coupon.redeemed_at >= since,
               Coupon.redeemed_at < until)).one()
    return RedemptionTotals(int(count), int(discount), int(points))


# --- footfall and dwell in the merchant's store zones ----------------------------------------------------

@dataclass(frozen=True)
class FootfallSlot:
    start: datetime
    visits: int
    members: int
    mean_dwell_seconds: float


@dataclass(frozen=True)
class StoreFootfall:
    granularity: str  # "hour" (one day asked) or "day"
    zones: list[Zone]
    slots: list[FootfallSlot]
    visits: int
    members: int
    mean_dwell_seconds: float


def footfall_slots(tz: tzinfo, first: date, last: date) -> tuple[str, list[datetime]]:
    """The slots' starts: the 24 (23, 25 on a clock change) hours of one day, else each day of the range."""
    if first > last or (last - first).days >= MAX_FOOTFALL_DAYS:
        raise InvalidInput(f"from must not be after to, at most {MAX_FOOTFALL_DAYS} days",
                           code="footfall.invalid_range")
    since, until = day_period(tz, first, last)
    if first == last:
        # Steps of an hour of real time, so a day with a clock change still has each of its hours once.
        # (In UTC: Python subtracts two times of one zone by their wall clocks.)
        start = since.astimezone(UTC)
        hours = int((until.astimezone(UTC) - start).total_seconds()) // 3600
        return "hour", [(start + timedelta(hours=i)).astimezone(tz) for i in range(hours)]
    return "day", [datetime.combine(first + timedelta(days=i), time(), tzinfo=tz)
                   for i in range((last - first).days + 1)]


def store_footfall(session: Session, tz: tzinfo, merchant_id: int, first: date, last: date,
                   store_id: int | None = None) -> StoreFootfall:
    """Visits, distinct members and mean dwell per slot in the zones of the merchant's stores (or one of them).

    One grouped query: each visit falls in the slot its entry time is in (the slots are cut in Python, so the
    mall's time zone and its clock changes hold on SQLite and PostgreSQL alike). Uses ix_zone_visits_zone_entered.
    """
    granularity, starts = footfall_slots(tz, first, last)
    stores = _own_store_ids(session, merchant_id, store_id)
    zones = list(session.scalars(select(Zone).where(Zone.store_id.in_(stores)).order_by(Zone.id))) if stores else []
    since, until = day_period(tz, first, last)
    zone_ids = [z.id for z in zones]
    figures: dict[int, tuple[int, int, float]] = {}
    totals = (0, 0, 0.0)
    if zone_ids:
        window = (ZoneVisit.zone_id.in_(zone_ids), ZoneVisit.entered_at >= since, ZoneVisit.entered_at < until)
        # The slot of a visit: the last start at or before its entry (starts are ascending).
        slot = case(*[(ZoneVisit.entered_at < start, i) for i, start in enumerate(starts[1:])],
                    else_=len(starts) - 1).label("slot")
        # Grouped through a subquery: PostgreSQL would not match a CASE with bound values in GROUP BY to its copy.
        visits = select(slot, ZoneVisit.member_id, ZoneVisit.dwell_seconds).where(*window).subquery()
        rows = session.execute(select(visits.c.slot, func.count(), func.count(visits.c.member_id.distinct()),
                                      func.avg(visits.c.dwell_seconds)).group_by(visits.c.slot))
        figures = {int(i): (int(v), int(m), float(d or 0)) for i, v, m, d in rows}
        count, members, dwell = session.execute(
            select(func.count(), func.count(ZoneVisit.member_id.distinct()), func.avg(ZoneVisit.dwell_seconds))
            .where(*window)).one()
        totals = (int(count), int(members), float(dwell or 0))
    slots = [FootfallSlot(s, *figures.get(i, (0, 0, 0.0))) for i, s in enumerate(starts)]
    return StoreFootfall(granularity, zones, slots, *totals)
