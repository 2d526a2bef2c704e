"""What the merchant console reads and does beyond deals and staff: the merchant's own stores with what their deals
may target, the coupons redeemed at their tills by day, their store zones' footfall and dwell, and a manager
resetting a staff member's password (docs/consoles.md, "Merchants")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from flask import Blueprint
from pydantic import Field, StringConstraints, field_validator

from mallapp.api.core import Body, Id, Out, Query, current_merchant_id, operation, runtime, transaction
from mallapp.api.deals import Benefit
from mallapp.api.merchant import Role
from mallapp.api.ops import PlainDay
from mallapp.db import MAX_BIG_ID
from mallapp.domain import auth, merchant_desk, staff
from mallapp.domain.venue_admin import floor_name

bp = Blueprint("merchant_desk", __name__, url_prefix="/api/v1/merchant")

_EARLIEST, _LATEST = date(2000, 1, 1), date(2999, 12, 30)


def _plausible(value: date | None) -> date | None:
    # Far-off years would overflow when the mall's days are turned into UTC instants.
    if value is not None and not (_EARLIEST <= value <= _LATEST):
        raise ValueError("a day between the years 2000 and 2999")
    return value


# --- stores ----------------------------------------------------------------------------------------

class TargetZoneOut(Out):
    id: int
    name: str
    kind: str
    floor: int


class TargetItemOut(Out):
    id: int
    name: str


class OwnStoreOut(Out):
    id: int
    name: str
    unit: str
    floor: int
    floor_name: str = Field(description="L1, L2, B1 ...")
    zones: list[TargetZoneOut] = Field(description="the store's active zones: what a deal's zone_ids may name")
    sale_items: list[TargetItemOut] = Field(description="the store's active sale items: what sale_item_ids may name")


class OwnStoresOut(Out):
    stores: list[OwnStoreOut] = Field(description="this merchant's active stores by name (a deal's store_id and store_ids; the till's and host's pickers)")


@operation(bp, "/stores", "GET",
           summary="This merchant's stores with the zones and sale items its deals may target", auth="merchant",
           response=OwnStoresOut)
def own_stores() -> OwnStoresOut:
    with transaction() as session:
        return OwnStoresOut(stores=[
            OwnStoreOut(id=o.store.id, name=o.store.name, unit=o.store.unit, floor=o.store.floor,
                        floor_name=floor_name(o.store.floor),
                        zones=[TargetZoneOut(id=z.id, name=z.name, kind=z.kind, floor=z.floor) for z in o.zones],
                        sale_items=[TargetItemOut(id=i.id, name=i.name) for i in o.sale_items])
            for o in merchant_desk.own_stores(session, current_merchant_id())])


# --- redemptions -----------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _cursor(key: tuple[datetime, int] | None) -> str | None:
    # Opaque to callers: the last row's redemption time (microseconds since 1970) and coupon id.
    return None if key is None else f"{(key[0] - _EPOCH) // _MICROSECOND}-{key[1]}"


class RedemptionsQuery(Query):
    day: PlainDay | None = Field(default=None, description="a mall-local day (YYYY-MM-DD); default: today")
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,17}-[0-9]{1,19}$")] | None = Field(
        default=None, description="next_cursor of the page before")
    limit: int = Field(default=50, ge=1, le=200)

    _day = field_validator("day")(_plausible)

    @field_validator("cursor")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            micros, coupon_id = value.split("-")
            if int(micros) > (datetime(2999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICROSECOND or int(coupon_id) > MAX_BIG_ID:
                raise ValueError("not a cursor this API gave")
        return value

    def after(self) -> tuple[datetime, int] | None:
        if self.cursor is None:
            return None
        micros, coupon_id = self.cursor.split("-")
        return _EPOCH + int(micros) * _MICROSECOND, int(coupon_id)


class RedemptionOut(Out):
    coupon_id: int
    redeemed_at: datetime
    deal_id: int
    deal_title: str
    benefit: Benefit
    store_id: int
    store_name: str
    staff_username: str | None = Field(description="the staff member whose till redeemed it; null when the "
                                                   "merchant's API key did (a POS integration)")
    spend_fen: int | None = Field(description="the purchase amount the till sent; null when none")
    discount_fen: int | None = Field(description="what the till was told to take off; null for other benefits")
    bonus_points: int | None


class RedemptionTotalsOut(Out):
    count: int
    discount_fen: int
    bonus_points: int


class RedemptionsOut(Out):
    day: date
    totals: RedemptionTotalsOut = Field(description="the whole day's, not only this page's")
    redemptions: list[RedemptionOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")


@operation(bp, "/redemptions", "GET",
           summary="Coupons redeemed at this merchant's stores on a mall-local day, newest first, with the "
                   "day's totals", auth="merchant_manager", query=RedemptionsQuery, response=RedemptionsOut)
def list_redemptions(query: RedemptionsQuery) -> RedemptionsOut:
    rt = runtime()
    day = query.day or rt.settings.mall.local_day(rt.now())
    since, until = rt.settings.mall.day_bounds(day)
    merchant_id = current_merchant_id()
    with transaction() as session:
        page, last = merchant_desk.redemptions(session, merchant_id, since, until, after=query.after(),
                                               limit=query.limit)
        totals = merchant_desk.redemption_totals(session, merchant_id, since, until)
        return RedemptionsOut(
            day=day, totals=RedemptionTotalsOut(**vars(totals)), next_cursor=_cursor(last),
            redemptions=[RedemptionOut(
                coupon_id=r.coupon.id, redeemed_at=r.coupon.redeemed_at, deal_id=r.deal.id, deal_title=r.deal.title,
                benefit=r.deal.benefit, store_id=r.coupon.redeemed_at_store, store_name=r.store_name,
                staff_username=r.staff_username,
                spend_fen=r.coupon.spend_fen, discount_fen=r.coupon.discount_fen, bonus_points=r.coupon.bonus_points)
                for r in page])


# --- footfall --------------------------------------------------------------------------------------

class FootfallQuery(Query):
    from_: PlainDay | None = Field(default=None, alias="from",
                                   description="first mall-local day; default: to (one day, by hour)")
    to: PlainDay | None = Field(default=None, description="last mall-local day (inclusive); default: today")
    store_id: Id | None = Field(default=None, description="one of this merchant's stores; default: all of them")

    _days = field_validator("from_", "to")(_plausible)


class SlotOut(Out):
    start: datetime = Field(description="the hour's or the day's start, mall time")
    visits: int
    members: int = Field(description="distinct members")
    mean_dwell_seconds: float


class FootfallZoneOut(Out):
    id: int
    name: str
    store_id: int


class MerchantFootfallOut(Out):
    first_day: date
    last_day: date
    granularity: str = Field(description="hour when one day is asked, else day")
    zones: list[FootfallZoneOut] = Field(description="the store zones counted")
    slots: list[SlotOut] = Field(description="every hour (or day) of the range, oldest first")
    visits: int
    members: int = Field(description="distinct members over the whole range")
    mean_dwell_seconds: float


@operation(bp, "/footfall", "GET",
           summary="Visits, distinct members and mean dwell per hour (one day) or per day in this merchant's "
                   "store zones", auth="merchant_manager", query=FootfallQuery, response=MerchantFootfallOut,
           errors=("store.not_found", "footfall.invalid_range"))
def store_footfall(query: FootfallQuery) -> MerchantFootfallOut:
    rt = runtime()
    last = query.to or rt.settings.mall.local_day(rt.now())
    first = query.from_ or last
    with transaction() as session:
        report = merchant_desk.store_footfall(session, rt.settings.mall.tz, current_merchant_id(), first, last,
                                              query.store_id)
        return MerchantFootfallOut(
            first_day=first, last_day=last, granularity=report.granularity,
            zones=[FootfallZoneOut(id=z.id, name=z.name, store_id=z.store_id) for z in report.zones],
            slots=[SlotOut(start=s.start, visits=s.visits, members=s.members,
                           mean_dwell_seconds=round(s.mean_dwell_seconds, 1)) for s in report.slots],
            visits=report.visits, members=report.members, mean_dwell_seconds=round(report.mean_dwell_seconds, 1))


# --- a staff member's password ---------------------------------------------------------------------

class PasswordIn(Body):
    password: Annotated[str, StringConstraints(min_length=auth.MIN_PASSWORD, max_length=200)] | None = Field(
        default=None, description="leave out to have a strong one generated and shown once")


class PasswordOut(Out):
    id: int
    username: str
    role: Role
    password: str | None = Field(description="the generated password, shown this once; null when one was given")


@operation(bp, "/staff/<int:staff_id>/password", "POST",
           summary="Set a staff member's new password (generated and shown once, or typed); signs them out "
                   "everywhere and clears their wrong-password counts", auth="merchant_manager", body=PasswordIn,
           response=PasswordOut, errors=("staff.not_found",))
def reset_password(staff_id: int, body: PasswordIn) -> PasswordOut:
    rt = runtime()
    password = body.password or auth.generate_password()
    with transaction() as session:
        changed = staff.set_password(session, rt.redis, rt.settings.auth, current_merchant_id(), staff_id, password)
        return PasswordOut(id=changed.id, username=changed.username, role=changed.role,
                           password=None if body.password else password)

