"""The operations API: the venue (zones, stores, sale items, beacons, gateways), fleet health, presence, footfall,
and the stream entries the consumers set aside (dead letters).

Any ops user reads; only an admin writes. Every committed change to the venue bumps the
registry version, so that the proximity workers reload it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal

from flask import Blueprint, request
from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from mallapp.api.core import (
    Body,
    Id,
    Out,
    Printable,
    Query,
    SignedInOut,
    SignInIn,
    current_ops,
    current_token,
    operation,
    runtime,
    transaction,
)
from mallapp.domain import alerts, dead_letters, ops, venue, venue_admin
from mallapp.domain.venue import Beacon, Gateway, SaleItem, Store, Zone
from mallapp.domain.wayfinding import store as wayfinding_store
from mallapp.errors import InvalidInput

bp = Blueprint("ops", __name__, url_prefix="/api/v1/ops")


# --- shapes ----------------------------------------------------------------------------------------


Name = Printable(80)
Label = Printable(80, min_length=0)
Unit = Printable(20, min_length=0)
Category = Printable(40, min_length=0)
Floor = Annotated[int, Field(ge=-20, le=200, description="1 is the ground floor")]
Metres = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False, description="metres on the plan")]
Point = tuple[Metres, Metres]
ZoneKind = Literal["entrance", "store", "item", "area"]  # venue.ZONE_KINDS
Problem = Literal["never_seen", "silent", "battery_low"]
_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)
U16 = Annotated[int, Field(ge=0, le=65535)]
Polygon = Annotated[list[Point], Field(max_length=200, description="the outline [[x, y], ...]: at least 3 corners "
                                                                   "in metres, edges not crossing")]
DwellSeconds = Annotated[int, Field(ge=0, le=3600, description="overrides [beacons] dwell_<kind>_s")]
EnterM = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False, description="overrides [beacons] enter_<kind>_m")]
MeasuredPower = Annotated[int, Field(ge=-100, le=-20, description="RSSI at 1 m in dBm, as calibrated on site")]


class OpsSignedInOut(SignedInOut):
    role: Literal["admin", "marketing", "desk", "viewer"]


class _Row(Out):
    model_config = ConfigDict(from_attributes=True)


class ListQuery(Query):
    floor: Floor | None = None
    include_inactive: bool = False


class ZoneIn(Body):
    name: Name
    kind: ZoneKind
    floor: Floor
    polygon: Polygon
    store_id: Id | None = Field(default=None, description="required for a store zone")
    dwell_seconds: DwellSeconds | None = None
    enter_m: EnterM | None = None


class ZonePatch(Body):
    name: Name | None = None
    kind: ZoneKind | None = None
    floor: Floor | None = None
    polygon: Polygon | None = None
    store_id: Id | None = Field(default=None, description="null clears (not for a store zone)")
    dwell_seconds: DwellSeconds | None = Field(default=None, description="null restores the default")
    enter_m: EnterM | None = Field(default=None, description="null restores the default")
    active: bool | None = None


class ZoneOut(_Row):
    id: int
    name: str
    kind: ZoneKind
    floor: int
    polygon: list[list[float]]
    store_id: int | None
    dwell_seconds: int | None
    enter_m: float | None
    active: bool
    created_at: datetime


class ZonesOut(Out):
    zones: list[ZoneOut]


# The directory's fields of a store (mallapp.domain.directory checks them: store.invalid_hours, ...).
NameEn = Printable(80, min_length=0)
LogoUrl = Annotated[str, StringConstraints(max_length=500)]
Hours = dict[str, list[list[str]]]
Tags = Annotated[list[Printable(40, min_length=0)], Field(max_length=30)]
_HOURS = ('opening periods in the mall\'s local time: {"default": [["10:00", "22:00"]]} for every day, or per weekday '
          '{"mon": [...], ..., "sun": [...]} (a default with some days overridden works too); a close at or before '
          "the open runs past midnight; [] is a closed day")
_CATEGORY = "a 业态 code: GET /api/v1/stores/categories lists them"


class StoreIn(Body):
    name: Name = Field(description="the primary (Chinese) name; its pinyin is computed for the directory's search")
    merchant_id: Id | None = Field(default=None, description="the merchant running the store")
    unit: Unit = Field(default="", description='the directory\'s unit number, e.g. "L2-07"')
    category: Category = Field(default="other", description=_CATEGORY)
    floor: Floor
    x: Metres
    y: Metres
    name_en: NameEn = Field(default="", description="the English name")
    logo_url: LogoUrl = Field(default="", description="https://..., or a path on this server (/static/...)")
    hours: Hours | None = Field(default=None, description=_HOURS + "; null: not published")
    tags: Tags = Field(default_factory=list, description="at most 10 short labels of 1 to 20 characters")


class StorePatch(Body):
    name: Name | None = None
    merchant_id: Id | None = Field(default=None, description="null unlinks the merchant")
    unit: Unit | None = None
    category: Category | None = Field(default=None, description=_CATEGORY)
    floor: Floor | None = None
    x: Metres | None = None
    y: Metres | None = None
    active: bool | None = None
    name_en: NameEn | None = None
    logo_url: LogoUrl | None = None
    hours: Hours | None = Field(default=None, description=_HOURS + "; null unpublishes them")
    tags: Tags | None = None


class StoreOut(_Row):
    id: int
    name: str
    merchant_id: int | None
    unit: str
    category: str
    floor: int
    x: float
    y: float
    active: bool
    created_at: datetime
    name_en: str
    logo_url: str
    hours: Hours | None
    tags: list[str]
    pinyin_initials: str = Field(description="computed from name: what the directory's search matches (xbk)")
    pinyin_full: str = Field(description="computed from name (xingbake)")


class StoresOut(Out):
    stores: list[StoreOut]


class SaleItemIn(Body):
    name: Name


class SaleItemPatch(Body):
    name: Name | None = None
    active: bool | None = None


class SaleItemOut(_Row):
    id: int
    store_id: int
    name: str
    active: bool
    created_at: datetime


class SaleItemsOut(Out):
    items: list[SaleItemOut]


class ItemsQuery(Query):
    include_inactive: bool = False


class BeaconIn(Body):
    uuid: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="one of the mall's UUIDs ([beacons] uuids); stored in lower-case canonical form")
    major: U16
    minor: U16
    label: Label = ""
    zone_id: Id | None = None
    store_id: Id | None = Field(default=None, description="taken from the sale item when only that is given")
    sale_item_id: Id | None = Field(default=None, description="must belong to store_id when both are given")
    floor: Floor
    x: Metres
    y: Metres
    measured_power: MeasuredPower = -59

    @field_validator("uuid")
    @classmethod
    def _a_uuid(cls, value: str) -> str:
        return venue.normalize_uuid(value)  # ValueError: a 400 that names the field


class BeaconPatch(Body):
    label: Label | None = None
    zone_id: Id | None = Field(default=None, description="null clears")
    store_id: Id | None = Field(default=None, description="null clears")
    sale_item_id: Id | None = Field(default=None, description="null clears")
    floor: Floor | None = None
    x: Metres | None = None
    y: Metres | None = None
    measured_power: MeasuredPower | None = None
    active: bool | None = None


class BeaconHealthOut(_Row):
    last_seen_at: datetime | None = None
    last_rssi: int | None = None
    battery_mv: int | None = Field(default=None, description="0: the beacon reports no battery voltage")
    temperature_c: float | None = None
    uptime_s: float | None = None
    telemetry_at: datetime | None = None


class BeaconOut(_Row):
    id: int
    uuid: str
    major: int
    minor: int
    label: str
    zone_id: int | None
    store_id: int | None
    sale_item_id: int | None
    floor: int
    x: float
    y: float
    measured_power: int
    active: bool
    created_at: datetime
    health: BeaconHealthOut
    problems: list[Problem] = Field(description="never_seen, silent (unheard for [beacons.health] silent_after_s), "
                                                "battery_low (below [beacons.health] battery_low_mv)")


class BeaconsOut(Out):
    beacons: list[BeaconOut] = Field(description="problems first (unheard, then low battery), then by id")


class BeaconsQuery(Query):
    floor: Floor | None = None
    zone_id: Id | None = None
    problems_only: bool = False


class GatewayIn(Body):
    name: Name
    zone_id: Id | None = None
    floor: Floor
    x: Metres
    y: Metres


class GatewayPatch(Body):
    name: Name | None = None
    zone_id: Id | None = Field(default=None, description="null clears")
    floor: Floor | None = None
    x: Metres | None = None
    y: Metres | None = None
    active: bool | None = None


class GatewayOut(_Row):
    id: int
    name: str
    zone_id: int | None
    floor: int
    x: float
    y: float
    key_version: int
    active: bool
    last_seen_at: datetime | None = Field(description="its last accepted batch")
    created_at: datetime
    problems: list[Literal["never_seen", "silent"]]


class GatewayKeyOut(GatewayOut):
    key: str = Field(description="gk_<id>.<version>.<secret>: configure it on the gateway; shown only now")


class GatewaysOut(Out):
    gateways: list[GatewayOut]


class PresenceQuery(Query):
    floor: Floor | None = None


class ZonePresenceOut(Out):
    zone_id: int
    name: str
    kind: str
    floor: int
    present: int


class PresenceOut(Out):
    mall: int = Field(description="members in the mall now")
    zones: list[ZonePresenceOut]


class FloorPlanQuery(Query):
    floor: Floor


class FloorPlanOut(Out):
    floor: int
    zones: list[ZoneOut]
    stores: list[StoreOut]
    beacons: list[BeaconOut]
    gateways: list[GatewayOut]


class FloorOut(Out):
    number: int = Field(description="1 is the ground floor")
    name: str = Field(description="L1, L2, ... from the ground up; B1, B2, ... below")
    outline: list[list[float]] = Field(description="[[x, y], ...] in metres: the outline ops defined "
                                                   "(PUT /api/v1/ops/floors/<number>), else the convex hull of the "
                                                   "floor's active zones, counter-clockwise; empty when it has none")
    name_zh: str | None = Field(None, description="the floor's name ops defined, zh-CN (null: not defined)")
    name_en: str | None = Field(None, description="the floor's name ops defined, English (null: not defined)")
    outline_source: Literal["floor", "zones"] = Field(
        "zones", description="floor: the outline ops defined; zones: the hull of the active zones")


class FloorsOut(Out):
    floors: list[FloorOut]


def _plain_day(value: Any) -> Any:
    # Only YYYY-MM-DD: a time without an offset ("2026-03-10T00:00:00") must not pass for a day.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a day is YYYY-MM-DD")
    return value


PlainDay = Annotated[date, BeforeValidator(_plain_day)]


class FootfallQuery(Query):
    since: AwareDatetime | PlainDay | None = Field(
        default=None, description="a time with its offset, or a day (YYYY-MM-DD): the start of that day, mall "
                                  "time; default: the start of today, mall time")
    until: AwareDatetime | PlainDay | None = Field(
        default=None, description="a time with its offset, or a day (YYYY-MM-DD): the end of that day, mall "
                                  "time; default: the start of tomorrow, mall time")

    @field_validator("since", "until")
    @classmethod
    def _plausible(cls, value: datetime | date | None) -> datetime | date | None:
        # Far-off years would overflow when converted to UTC for the database.
        if isinstance(value, datetime) and not (_EARLIEST <= value < _LATEST):
            raise ValueError("a time between the years 2000 and 2999")
        if type(value) is date and not (_EARLIEST.date() <= value < _LATEST.date()):
            raise ValueError("a day between the years 2000 and 2999")
        return value

    def period(self, tz: tzinfo) -> tuple[datetime | None, datetime | None]:
        """since and until as times: a plain day is the whole of that mall-local day."""
        since, until = self.since, self.until
        if type(since) is date:
            since = datetime.combine(since, time(), tzinfo=tz)
        if type(until) is date:
            until = datetime.combine(until + timedelta(days=1), time(), tzinfo=tz)
        return since, until


class ZoneFootfallOut(Out):
    zone_id: int
    name: str
    kind: str
    floor: int
    visits: int = Field(description="visits that began in the period")
    members: int = Field(description="distinct members among them")
    mean_dwell_seconds: float


class FootfallOut(Out):
    since: datetime
    until: datetime
    zones: list[ZoneFootfallOut]


# --- helpers ---------------------------------------------------------------------------------------

_ADMIN = ("ops.admin_required",)
_ZONE_REFS = ("venue.unknown_store",)
_DIRECTORY = ("store.unknown_category", "store.invalid_hours", "store.invalid_tags", "store.invalid_logo_url")
_BEACON_REFS = ("venue.unknown_zone", "venue.unknown_store", "venue.unknown_sale_item", "beacon.item_not_in_store")


def _changes(body: Body, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH sent; null only where it clears something."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: send at least one field", code="request.invalid")
    cleared = sorted(name for name, value in changes.items() if value is None and name not in nullable)
    if cleared:
        problems = [{"field": name, "problem": "cannot be null", "kind": "null_not_allowed"} for name in cleared]
        raise InvalidInput(f"invalid body: {', '.join(cleared)} cannot be null", code="request.invalid",
                           details={"problems": problems})
    return changes


def _venue_changed() -> None:
    # After the commit: a worker that reloads at once must see the change.
    venue.bump_registry_version(runtime().redis)


def _columns(row: Any, model: type[Out]) -> dict[str, Any]:
    """The row's values for the fields of ``model`` that are its columns."""
    return {name: getattr(row, name) for name in model.model_fields if hasattr(type(row), name)}


def _beacon_out(health: venue_admin.BeaconHealth) -> BeaconOut:
    status = BeaconHealthOut.model_validate(health.status) if health.status else BeaconHealthOut()
    return BeaconOut(**_columns(health.beacon, BeaconOut), health=status, problems=list(health.problems))


def _gateway_out(gateway: Gateway, model: type[GatewayOut] = GatewayOut, **extra: Any) -> GatewayOut:
    rt = runtime()
    problems = venue_admin.gateway_problems(gateway, rt.settings.beacons, rt.now())
    return model(**_columns(gateway, GatewayOut), problems=list(problems), **extra)


def _beacon_reply(session, beacon: Beacon) -> BeaconOut:
    rt = runtime()
    return _beacon_out(venue_admin.beacon_health(session, rt.settings.beacons, beacon, rt.now()))


# --- sign-in ---------------------------------------------------------------------------------------

@operation(bp, "/auth", "POST", summary="Sign an ops user in with username and password", body=SignInIn,
           response=OpsSignedInOut, errors=("ops.bad_credentials", "auth.too_many_attempts"))
def sign_in(body: SignInIn) -> OpsSignedInOut:
    rt = runtime()
    ttl = rt.settings.auth.token_ttl_s
    with transaction() as session:
        token, caller = ops.sign_in(session, rt.redis, rt.settings.auth, body.username, body.password,
                                    request.remote_addr)
    return OpsSignedInOut(token=token, expires_in=ttl, username=caller.username, role=caller.role)


@operation(bp, "/auth/logout", "POST", summary="Revoke the ops token used for this call", auth="ops", status=204)
def logout() -> None:
    ops.revoke_token(runtime().redis, current_token())


@operation(bp, "/users/<int:user_id>/unlock", "POST",
           summary="Clear an ops user's wrong-password counts (from every address) so they can sign in again",
           auth="ops_admin", status=204, errors=(*_ADMIN, "ops.user_not_found"))
def unlock_user(user_id: int) -> None:
    rt = runtime()
    with transaction() as session:
        ops.unlock(session, rt.redis, rt.settings.auth, user_id)


# --- zones -----------------------------------------------------------------------------------------

@operation(bp, "/zones", "GET", summary="The zones (active ones unless include_inactive)", auth="ops",
           query=ListQuery, response=ZonesOut)
def list_zones(query: ListQuery) -> ZonesOut:
    with transaction() as session:
        zones = venue_admin.list_zones(session, query.floor, query.include_inactive)
        return ZonesOut(zones=[ZoneOut.model_validate(z) for z in zones])


@operation(bp, "/zones", "POST", summary="Draw a zone on a floor", auth="ops_admin", body=ZoneIn, response=ZoneOut,
           status=201, errors=(*_ADMIN, "zone.invalid_polygon", "zone.store_required", *_ZONE_REFS))
def create_zone(body: ZoneIn) -> ZoneOut:
    with transaction() as session:
        zone = venue_admin.create_zone(session, **body.model_dump(), now=runtime().now())
        out = ZoneOut.model_validate(zone)
    _venue_changed()
    return out


@operation(bp, "/zones/<int:zone_id>", "GET", summary="One zone", auth="ops", response=ZoneOut,
           errors=("zone.not_found",))
def get_zone(zone_id: int) -> ZoneOut:
    with transaction() as session:
        return ZoneOut.model_validate(venue_admin.get(session, Zone, zone_id))


@operation(bp, "/zones/<int:zone_id>", "PATCH", summary="Change a zone (active false deactivates, true restores)",
           auth="ops_admin", body=ZonePatch, response=ZoneOut,
           errors=(*_ADMIN, "zone.not_found", "zone.invalid_polygon", "zone.store_required", *_ZONE_REFS))
def patch_zone(zone_id: int, body: ZonePatch) -> ZoneOut:
    changes = _changes(body, frozenset({"store_id", "dwell_seconds", "enter_m"}))
    with transaction() as session:
        out = ZoneOut.model_validate(venue_admin.update_zone(session, zone_id, changes))
    _venue_changed()
    return out


@operation(bp, "/zones/<int:zone_id>", "DELETE", summary="Deactivate a zone (its history stays)", auth="ops_admin",
           response=ZoneOut, errors=(*_ADMIN, "zone.not_found"))
def delete_zone(zone_id: int) -> ZoneOut:
    with transaction() as session:
        out = ZoneOut.model_validate(venue_admin.update_zone(session, zone_id, {"active": False}))
    _venue_changed()
    return out


# --- stores and sale items -------------------------------------------------------------------------

@operation(bp, "/stores", "GET", summary="The stores (active ones unless include_inactive)", auth="ops",
           query=ListQuery, response=StoresOut)
def list_stores(query: ListQuery) -> StoresOut:
    with transaction() as session:
        stores = venue_admin.list_stores(session, query.floor, query.include_inactive)
        return StoresOut(stores=[StoreOut.model_validate(s) for s in stores])


@operation(bp, "/stores", "POST", summary="Put a store on the floor plan", auth="ops_admin", body=StoreIn,
           response=StoreOut, status=201, errors=(*_ADMIN, "venue.unknown_merchant", *_DIRECTORY))
def create_store(body: StoreIn) -> StoreOut:
    with transaction() as session:
        out = StoreOut.model_validate(venue_admin.create_store(session, **body.model_dump(), now=runtime().now()))
        # a door imported before its store opened becomes that store's door (Graph.store_nodes joins by unit)
        wayfinding_store.bump_version(session, "store_changed", by=current_ops().id, now=runtime().now())
    _venue_changed()
    return out


@operation(bp, "/stores/<int:store_id>", "GET", summary="One store", auth="ops", response=StoreOut,
           errors=("store.not_found",))
def get_store(store_id: int) -> StoreOut:
    with transaction() as session:
        return StoreOut.model_validate(venue_admin.get(session, Store, store_id))


@operation(bp, "/stores/<int:store_id>", "PATCH", summary="Change a store (active false deactivates, true restores)",
           auth="ops_admin", body=StorePatch, response=StoreOut,
           errors=(*_ADMIN, "store.not_found", "venue.unknown_merchant", "store.in_use", *_DIRECTORY))
def patch_store(store_id: int, body: StorePatch) -> StoreOut:
    changes = _changes(body, frozenset({"merchant_id", "hours"}))
    with transaction() as session:
        out = StoreOut.model_validate(venue_admin.update_store(session, store_id, changes))
        # a store (de)activated changes which doors the compiled walkable graph lists (Graph.store_nodes)
        wayfinding_store.bump_version(session, "store_changed", by=current_ops().id, now=runtime().now())
    _venue_changed()
    return out


@operation(bp, "/stores/<int:store_id>", "DELETE",
           summary="Deactivate a store (refused while active zones or beacons point at it)", auth="ops_admin",
           response=StoreOut, errors=(*_ADMIN, "store.not_found", "store.in_use"))
def delete_store(store_id: int) -> StoreOut:
    with transaction() as session:
        out = StoreOut.model_validate(venue_admin.update_store(session, store_id, {"active": False}))
        wayfinding_store.bump_version(session, "store_changed", by=current_ops().id, now=runtime().now())
    _venue_changed()
    return out


@operation(bp, "/stores/<int:store_id>/items", "GET", summary="A store's sale items", auth="ops", query=ItemsQuery,
           response=SaleItemsOut, errors=("store.not_found",))
def list_items(store_id: int, query: ItemsQuery) -> SaleItemsOut:
    with transaction() as session:
        items = venue_admin.list_sale_items(session, store_id, query.include_inactive)
        return SaleItemsOut(items=[SaleItemOut.model_validate(i) for i in items])


@operation(bp, "/stores/<int:store_id>/items", "POST", summary="Add a sale item (a display a beacon can mark)",
           auth="ops_admin", body=SaleItemIn, response=SaleItemOut, status=201,
           errors=(*_ADMIN, "store.not_found", "venue.unknown_store"))
def create_item(store_id: int, body: SaleItemIn) -> SaleItemOut:
    with transaction() as session:
        item = venue_admin.create_sale_item(session, store_id, name=body.name, now=runtime().now())
        out = SaleItemOut.model_validate(item)
    _venue_changed()
    return out


@operation(bp, "/items/<int:item_id>", "GET", summary="One sale item", auth="ops", response=SaleItemOut,
           errors=("sale_item.not_found",))
def get_item(item_id: int) -> SaleItemOut:
    with transaction() as session:
        return SaleItemOut.model_validate(venue_admin.get(session, SaleItem, item_id))


@operation(bp, "/items/<int:item_id>", "PATCH", summary="Rename, deactivate or restore a sale item",
           auth="ops_admin", body=SaleItemPatch, response=SaleItemOut,
           errors=(*_ADMIN, "sale_item.not_found", "sale_item.in_use", "venue.unknown_store"))
def patch_item(item_id: int, body: SaleItemPatch) -> SaleItemOut:
    changes = _changes(body)
    with transaction() as session:
        out = SaleItemOut.model_validate(venue_admin.update_sale_item(session, item_id, changes))
    _venue_changed()
    return out


@operation(bp, "/items/<int:item_id>", "DELETE", summary="Deactivate a sale item (refused while beacons mark it)",
           auth="ops_admin", response=SaleItemOut, errors=(*_ADMIN, "sale_item.not_found", "sale_item.in_use"))
def delete_item(item_id: int) -> SaleItemOut:
    with transaction() as session:
        out = SaleItemOut.model_validate(venue_admin.update_sale_item(session, item_id, {"active": False}))
    _venue_changed()
    return out


# --- beacons ---------------------------------------------------------------------------------------

@operation(bp, "/beacons", "GET", summary="Fleet health: the active beacons, problems first", auth="ops",
           query=BeaconsQuery, response=BeaconsOut)
def list_beacons(query: BeaconsQuery) -> BeaconsOut:
    rt = runtime()
    with transaction() as session:
        fleet = venue_admin.fleet_health(session, rt.settings.beacons, rt.now(), floor=query.floor,
                                         zone_id=query.zone_id, problems_only=query.problems_only)
        return BeaconsOut(beacons=[_beacon_out(h) for h in fleet])


class AlertsQuery(Query):
    include_cleared: bool = Field(default=False, description="also the alerts already cleared (the latest 200)")
    include_acknowledged: bool = Field(default=False, description="also the alerts someone acknowledged")


class AlertOut(Out):
    id: int
    subject: Literal["beacon", "gateway"]
    subject_id: int
    label: str = Field(description="the beacon's label or the gateway's name when the alert was raised")
    problem: Literal["never_seen", "silent", "battery_low"]
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None = Field(description="when someone on duty acknowledged it (it then leaves the "
                                                         "open feed); null: not yet")
    acknowledged_by: str | None = Field(description="the ops username who acknowledged it")


class AlertsOut(Out):
    alerts: list[AlertOut] = Field(description="newest first; raised and cleared by the clock's beacon-health job; "
                                               "by default only the open feed: neither cleared nor acknowledged")


def _alert_out(a: alerts.FleetAlert) -> AlertOut:
    return AlertOut(id=a.id, subject=a.subject, subject_id=a.subject_id, label=a.label, problem=a.problem,
                    raised_at=a.raised_at, cleared_at=a.cleared_at, acknowledged_at=a.acknowledged_at,
                    acknowledged_by=a.acknowledged_by)


@operation(bp, "/alerts", "GET", summary="Fleet alerts: beacons and gateways gone silent or low on battery",
           auth="ops", query=AlertsQuery, response=AlertsOut)
def list_alerts(query: AlertsQuery) -> AlertsOut:
    with transaction() as session:
        return AlertsOut(alerts=[_alert_out(a) for a in alerts.listing(
            session, include_cleared=query.include_cleared, include_acknowledged=query.include_acknowledged)])


@operation(bp, "/alerts/<int:alert_id>/acknowledge", "POST",
           summary="Acknowledge a fleet alert: it leaves the open feed (the same problem coming back after it clears "
                   "raises a new one); repeating it keeps the first acknowledgement", auth="ops_desk",
           response=AlertOut, errors=("ops.desk_required", "alert.not_found"))
def acknowledge_alert(alert_id: int) -> AlertOut:
    rt = runtime()
    with transaction() as session:
        return _alert_out(alerts.acknowledge(session, alert_id, current_ops().username, rt.now()))


@operation(bp, "/beacons", "POST", summary="Register and place a beacon (a deactivated one comes back)",
           auth="ops_admin", body=BeaconIn, response=BeaconOut, status=201,
           errors=(*_ADMIN, "beacon.unknown_uuid", "beacon.duplicate", *_BEACON_REFS))
def create_beacon(body: BeaconIn) -> BeaconOut:
    rt = runtime()
    with transaction() as session:
        beacon = venue_admin.create_beacon(session, rt.settings.beacons, **body.model_dump(), now=rt.now())
        out = _beacon_reply(session, beacon)
    _venue_changed()
    return out


@operation(bp, "/beacons/<int:beacon_id>", "GET", summary="One beacon with its health", auth="ops",
           response=BeaconOut, errors=("beacon.not_found",))
def get_beacon(beacon_id: int) -> BeaconOut:
    with transaction() as session:
        return _beacon_reply(session, venue_admin.get(session, Beacon, beacon_id))


@operation(bp, "/beacons/<int:beacon_id>", "PATCH",
           summary="Move, relabel or recalibrate a beacon (active false deactivates, true restores)",
           auth="ops_admin", body=BeaconPatch, response=BeaconOut,
           errors=(*_ADMIN, "beacon.not_found", *_BEACON_REFS))
def patch_beacon(beacon_id: int, body: BeaconPatch) -> BeaconOut:
    changes = _changes(body, frozenset({"zone_id", "store_id", "sale_item_id"}))
    with transaction() as session:
        out = _beacon_reply(session, venue_admin.update_beacon(session, beacon_id, changes))
    _venue_changed()
    return out


@operation(bp, "/beacons/<int:beacon_id>", "DELETE", summary="Deactivate a beacon (registering it again restores it)",
           auth="ops_admin", response=BeaconOut, errors=(*_ADMIN, "beacon.not_found"))
def delete_beacon(beacon_id: int) -> BeaconOut:
    with transaction() as session:
        out = _beacon_reply(session, venue_admin.update_beacon(session, beacon_id, {"active": False}))
    _venue_changed()
    return out


# --- gateways --------------------------------------------------------------------------------------

@operation(bp, "/gateways", "GET", summary="The listener gateways and when each was last heard", auth="ops",
           query=ListQuery, response=GatewaysOut)
def list_gateways(query: ListQuery) -> GatewaysOut:
    with transaction() as session:
        gateways = venue_admin.list_gateways(session, query.floor, query.include_inactive)
        return GatewaysOut(gateways=[_gateway_out(g) for g in gateways])


@operation(bp, "/gateways", "POST", summary="Register a gateway; its key is in the reply, only this once",
           auth="ops_admin", body=GatewayIn, response=GatewayKeyOut, status=201,
           errors=(*_ADMIN, "venue.unknown_zone"))
def create_gateway(body: GatewayIn) -> GatewayOut:
    rt = runtime()
    with transaction() as session:
        gateway, key = venue_admin.create_gateway(session, rt.secret, **body.model_dump(), now=rt.now())
        out = _gateway_out(gateway, GatewayKeyOut, key=key)
    _venue_changed()
    return out


@operation(bp, "/gateways/<int:gateway_id>", "GET", summary="One gateway", auth="ops", response=GatewayOut,
           errors=("gateway.not_found",))
def get_gateway(gateway_id: int) -> GatewayOut:
    with transaction() as session:
        return _gateway_out(venue_admin.get(session, Gateway, gateway_id))


@operation(bp, "/gateways/<int:gateway_id>", "PATCH",
           summary="Rename or move a gateway (active false deactivates, true restores)", auth="ops_admin",
           body=GatewayPatch, response=GatewayOut, errors=(*_ADMIN, "gateway.not_found", "venue.unknown_zone"))
def patch_gateway(gateway_id: int, body: GatewayPatch) -> GatewayOut:
    changes = _changes(body, frozenset({"zone_id"}))
    with transaction() as session:
        out = _gateway_out(venue_admin.update_gateway(session, gateway_id, changes))
    _venue_changed()
    return out


@operation(bp, "/gateways/<int:gateway_id>/key", "POST",
           summary="Rotate a gateway's key: the reply holds the new one, the old one stops working",
           auth="ops_admin", response=GatewayKeyOut, errors=(*_ADMIN, "gateway.not_found"))
def rotate_gateway_key(gateway_id: int) -> GatewayOut:
    rt = runtime()
    with transaction() as session:
        gateway, key = venue_admin.rotate_gateway_key(session, rt.secret, gateway_id)
        out = _gateway_out(gateway, GatewayKeyOut, key=key)
    _venue_changed()
    return out


@operation(bp, "/gateways/<int:gateway_id>", "DELETE", summary="Deactivate a gateway", auth="ops_admin",
           response=GatewayOut, errors=(*_ADMIN, "gateway.not_found"))
def delete_gateway(gateway_id: int) -> GatewayOut:
    with transaction() as session:
        out = _gateway_out(venue_admin.update_gateway(session, gateway_id, {"active": False}))
    _venue_changed()
    return out


# --- what ops watches ------------------------------------------------------------------------------

@operation(bp, "/presence", "GET", summary="Members in the mall and in each zone now", auth="ops",
           query=PresenceQuery, response=PresenceOut)
def get_presence(query: PresenceQuery) -> PresenceOut:
    rt = runtime()
    with transaction() as session:
        mall, zones = venue_admin.presence(session, rt.redis, query.floor)
        return PresenceOut(mall=mall, zones=[ZonePresenceOut(zone_id=z.id, name=z.name, kind=z.kind, floor=z.floor,
                                                             present=n) for z, n in zones])


@operation(bp, "/floor-plan", "GET", summary="Everything to draw a floor: zones, stores, beacons, gateways",
           auth="ops", query=FloorPlanQuery, response=FloorPlanOut)
def get_floor_plan(query: FloorPlanQuery) -> FloorPlanOut:
    rt = runtime()
    with transaction() as session:
        plan = venue_admin.floor_plan(session, rt.settings.beacons, query.floor, rt.now())
        return FloorPlanOut(floor=plan.floor, zones=[ZoneOut.model_validate(z) for z in plan.zones],
                            stores=[StoreOut.model_validate(s) for s in plan.stores],
                            beacons=[_beacon_out(h) for h in plan.beacons],
                            gateways=[_gateway_out(g) for g in plan.gateways])


@operation(bp, "/floors", "GET",
           summary="The floors, lowest first (those ops defined and those with an active zone or store): number, "
                   "name (L1, B1), ops' names and outline (else the convex hull of the floor's zones)", auth="ops",
           response=FloorsOut)
def get_floors() -> FloorsOut:
    with transaction() as session:
        return FloorsOut(floors=[FloorOut(number=f.number, name=f.name, outline=f.outline, name_zh=f.name_zh,
                                          name_en=f.name_en, outline_source=f.outline_source)  # type: ignore[arg-type]
                                 for f in venue_admin.floors(session)])


@operation(bp, "/footfall", "GET", summary="Visits, distinct members and mean dwell per zone over a period",
           auth="ops", query=FootfallQuery, response=FootfallOut, errors=("footfall.invalid_range",))
def get_footfall(query: FootfallQuery) -> FootfallOut:
    rt = runtime()
    since, until = venue_admin.footfall_period(rt.settings.mall.tz, rt.now(), *query.period(rt.settings.mall.tz))
    with transaction() as session:
        rows = venue_admin.footfall(session, since, until)
        return FootfallOut(since=since, until=until, zones=[
            ZoneFootfallOut(zone_id=r.zone.id, name=r.zone.name, kind=r.zone.kind, floor=r.zone.floor,
                            visits=r.visits, members=r.members, mean_dwell_seconds=round(r.mean_dwell_seconds, 1))
            for r in rows])


# --- dead letters ----------------------------------------------------------------------------------

StreamEntryId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")]


class DeadLettersQuery(Query):
    limit: int = Field(default=50, ge=1, le=500, description="the newest this many of each stream")


class DeadLetterOut(Out):
    id: str = Field(description="its id on the dead-letter stream <stream>:dead (what replay takes)")
    original_id: str = Field(description="the entry's id on its stream when it was set aside")
    group: str = Field(description="the consumer group that failed it")
    deliveries: int | None = Field(description="how many times Redis had delivered it")
    error: str = Field(description="the last failure: the exception's type and message")
    at: datetime | None = Field(description="when it was set aside")
    fields: dict[str, str] = Field(description="the entry's own fields, decoded as UTF-8 (undecodable bytes "
                                               "replaced)")


class DeadStreamOut(Out):
    stream: str
    total: int = Field(description="every entry set aside from this stream (entries lists the newest)")
    entries: list[DeadLetterOut] = Field(description="newest first, at most limit")


class DeadLettersOut(Out):
    streams: list[DeadStreamOut] = Field(description="every stream a consumer group reads: the sightings "
                                                     "partitions, then the proximity events")


class ReplayIn(Body):
    stream: Annotated[str, StringConstraints(max_length=100)] = Field(
        description="a stream a consumer group reads (one of those GET /ops/dead-letters lists)")
    ids: Annotated[list[StreamEntryId], Field(max_length=1000)] | None = Field(
        default=None, description="dead-letter ids to put back (an id not there is skipped); default: all of the "
                                  "stream's")


class ReplayOut(Out):
    stream: str
    replayed: int = Field(description="how many entries went back on the stream, for its group to read again")


@operation(bp, "/dead-letters", "GET",
           summary="The stream entries the consumers set aside after failing them max-deliveries times, per stream",
           auth="ops", query=DeadLettersQuery, response=DeadLettersOut)
def list_dead_letters(query: DeadLettersQuery) -> DeadLettersOut:
    rt = runtime()
    return DeadLettersOut(streams=[
        DeadStreamOut(stream=name, total=dead_letters.count(rt.redis, name), entries=[
            DeadLetterOut(id=d.id, original_id=d.original_id, group=d.group, deliveries=d.deliveries, error=d.error,
                          at=d.at, fields=d.fields)
            for d in dead_letters.listing(rt.redis, name, query.limit)])
        for name in dead_letters.consumer_streams(rt.settings)])


@operation(bp, "/dead-letters/replay", "POST",
           summary="Put dead letters back on their stream (all of it, or those ids) for its group to read again",
           auth="ops_admin", body=ReplayIn, response=ReplayOut,
           errors=(*_ADMIN, "dead_letters.unknown_stream"))
def replay_dead_letters(body: ReplayIn) -> ReplayOut:
    rt = runtime()
    stream = dead_letters.known_stream(rt.settings, body.stream)
    return ReplayOut(stream=stream, replayed=dead_letters.replay(rt.redis, stream, body.ids))
