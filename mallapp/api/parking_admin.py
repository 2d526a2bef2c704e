"""Ops' car parks: the car park, its tariff and benefit rules, levels, bays (one or a numbered range), gates,
and the QR payload printed on each bay's pillar. Any ops user reads; only an admin changes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import ConfigDict, Field, StringConstraints

from mallapp.api.core import Body, Id, Out, Printable, Query, current_ops, operation, runtime, transaction
from mallapp.domain.parking import carparks, locate
from mallapp.domain.parking.models import CarPark
from mallapp.domain.wayfinding import store as wayfinding_store
from mallapp.errors import InvalidInput

bp = Blueprint("parking_admin", __name__, url_prefix="/api/v1/ops")

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
GateCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16,
                                            pattern=r"^[A-Za-z0-9_\-]+$")]
LevelCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")]
BayCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=16)]
VendorCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w\-.]+$")]
Floor = Annotated[int, Field(ge=-20, le=200, description="the venue's floor: 1 ground, -1 first basement")]
Metres = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
FeeSource = Literal["carpark", "mall"]
_ADMIN = ("ops.admin_required",)
_CAR_PARK = ("parking.car_park_not_found",)


class CarParkIn(Body):
    code: Code
    name: Printable(80)
    vendor_park_code: VendorCode = Field(description="the car-park system's parkCode for it")
    fee_source: FeeSource = "carpark"
    active: bool = True
    tariff: dict[str, Any] = Field(description="a tariff document (docs/parking.md, the tariff engine)")


class CarParkPatch(Body):
    name: Printable(80) | None = None
    vendor_park_code: VendorCode | None = None
    fee_source: FeeSource | None = None
    active: bool | None = None


class DocumentIn(Body):
    """The whole document as the body (a tariff, or benefit rules): validated by the domain, which names the field."""

    model_config = ConfigDict(extra="allow", strict=True)


class LevelIn(Body):
    code: LevelCode
    name: Printable(40)
    floor: Floor
    spaces: int = Field(ge=0, le=100_000)


class LevelPatch(Body):
    name: Printable(40) | None = None
    floor: Floor | None = None
    spaces: int | None = Field(default=None, ge=0, le=100_000)


class BayIn(Body):
    code: BayCode
    x: Metres | None = None
    y: Metres | None = None


class BayRangeIn(Body):
    prefix: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=12)] = Field(
        description='the level, a dash and the letters before the number: "B2-C"')
    first: int = Field(ge=1, le=9999)
    last: int = Field(ge=1, le=9999)
    width: int = Field(default=3, ge=1, le=4, description="digits of the number, zero-padded: 3 gives C001")


class BayPatch(Body):
    x: Metres | None = None
    y: Metres | None = None
    active: bool | None = None


class GateIn(Body):
    code: GateCode
    name: Printable(40)
    kind: Literal["entrance", "exit"]
    level_id: Id | None = None


class BaysQuery(Query):
    level_id: Id | None = None


class _Row(Out):
    model_config = ConfigDict(from_attributes=True)


class LevelOut(_Row):
    id: int
    code: str
    name: str
    floor: int
    spaces: int
    bays: int = 0


class GateOut(_Row):
    id: int
    code: str
    name: str
    kind: str
    level_id: int | None


class BayOut(_Row):
    id: int
    code: str
    level_id: int
    x: float | None
    y: float | None
    active: bool


class CarParkOut(_Row):
    id: int
    code: str
    name: str
    vendor_park_code: str
    fee_source: str
    active: bool
    tariff: dict[str, Any]
    rules: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CarParkDetailOut(CarParkOut):
    levels: list[LevelOut]
    gates: list[GateOut]


class CarParksOut(Out):
    car_parks: list[CarParkOut]


class BaysOut(Out):
    bays: list[BayOut]


class BayRangeOut(Out):
    created: int
    existing: int


class BayQrOut(Out):
    bay_id: int
    code: str
    qr: str = Field(description="the payload to print as a QR code on the bay's pillar")


class BayQrsOut(Out):
    bays: list[BayQrOut]


def _changes(body: Body) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: send at least one field", code="request.invalid")
    if any(value is None for value in changes.values()):
        raise InvalidInput("invalid body: a field cannot be null", code="request.invalid")
    return changes


def _detail(session, row: CarPark) -> CarParkDetailOut:
    counts = carparks.bay_counts(session, row.id)
    levels = [LevelOut.model_validate(level).model_copy(update={"bays": counts.get(level.id, 0)})
              for level in carparks.levels(session, row.id)]
    return CarParkDetailOut(**CarParkOut.model_validate(row).model_dump(), levels=levels,
                            gates=[GateOut.model_validate(g) for g in carparks.gates(session, row.id)])


# --- car parks -------------------------------------------------------------------------------------------

@operation(bp, "/car-parks", "GET", summary="The car parks", auth="ops", response=CarParksOut)
def list_car_parks() -> CarParksOut:
    with transaction() as session:
        return CarParksOut(car_parks=[CarParkOut.model_validate(r) for r in carparks.list_car_parks(session)])


@operation(bp, "/car-parks", "POST", summary="Add a car park (its tariff validated; the default benefit rules)",
           auth="ops_admin", body=CarParkIn, response=CarParkDetailOut, status=201,
           errors=(*_ADMIN, "parking.tariff_invalid", "parking.car_park_exists"))
def create_car_park(body: CarParkIn) -> CarParkDetailOut:
    with transaction() as session:
        row = carparks.create_car_park(session, code=body.code, name=body.name, vendor_park_code=body.vendor_park_code,
                                       tariff_doc=body.tariff, fee_source=body.fee_source, active=body.active,
                                       now=runtime().now())
        return _detail(session, row)


@operation(bp, "/car-parks/<int:car_park_id>", "GET", summary="One car park with its levels and gates", auth="ops",
           response=CarParkDetailOut, errors=_CAR_PARK)
def get_car_park(car_park_id: int) -> CarParkDetailOut:
    with transaction() as session:
        return _detail(session, carparks.get(session, car_park_id))


@operation(bp, "/car-parks/<int:car_park_id>", "PATCH", summary="Rename, re-code (vendor), switch fee source, (de)activate",
           auth="ops_admin", body=CarParkPatch, response=CarParkDetailOut,
           errors=(*_ADMIN, *_CAR_PARK, "parking.car_park_exists"))
def patch_car_park(car_park_id: int, body: CarParkPatch) -> CarParkDetailOut:
    changes = _changes(body)
    with transaction() as session:
        return _detail(session, carparks.update_car_park(session, car_park_id, changes, runtime().now()))


@operation(bp, "/car-parks/<int:car_park_id>/tariff", "PUT", summary="Replace the car park's tariff (validated)",
           auth="ops_admin", body=DocumentIn, response=CarParkDetailOut,
           errors=(*_ADMIN, *_CAR_PARK, "parking.tariff_invalid"))
def put_tariff(car_park_id: int, body: DocumentIn) -> CarParkDetailOut:
    with transaction() as session:
        return _detail(session, carparks.set_tariff(session, car_park_id, body.model_dump(), runtime().now()))


@operation(bp, "/car-parks/<int:car_park_id>/rules", "PUT", summary="Replace the car park's member benefit rules (validated)",
           auth="ops_admin", body=DocumentIn, response=CarParkDetailOut,
           errors=(*_ADMIN, *_CAR_PARK, "parking.rules_invalid"))
def put_rules(car_park_id: int, body: DocumentIn) -> CarParkDetailOut:
    with transaction() as session:
        return _detail(session, carparks.set_rules(session, car_park_id, body.model_dump(), runtime().now()))


# --- levels and gates ------------------------------------------------------------------------------------

@operation(bp, "/car-parks/<int:car_park_id>/levels", "POST", summary="Add a level (its code starts its bays' codes)",
           auth="ops_admin", body=LevelIn, response=LevelOut, status=201,
           errors=(*_ADMIN, *_CAR_PARK, "parking.level_exists"))
def create_level(car_park_id: int, body: LevelIn) -> LevelOut:
    with transaction() as session:
        return LevelOut.model_validate(carparks.create_level(session, car_park_id, **body.model_dump()))


@operation(bp, "/car-parks/<int:car_park_id>/levels/<int:level_id>", "PATCH", summary="Rename a level, change floor or spaces",
           auth="ops_admin", body=LevelPatch, response=LevelOut, errors=(*_ADMIN, "parking.level_not_found"))
def patch_level(car_park_id: int, level_id: int, body: LevelPatch) -> LevelOut:
    changes = _changes(body)
    with transaction() as session:
        level = carparks.update_level(session, car_park_id, level_id, changes)
        if "floor" in changes:  # its placed bays snap to nodes of another floor now (Graph.bay_nodes)
            wayfinding_store.bump_version(session, "bay_placed", by=current_ops().id, now=runtime().now())
        return LevelOut.model_validate(level)


@operation(bp, "/car-parks/<int:car_park_id>/gates", "POST", summary="Add an entrance or an exit (the car park's gate code)",
           auth="ops_admin", body=GateIn, response=GateOut, status=201,
           errors=(*_ADMIN, *_CAR_PARK, "parking.level_not_found", "parking.gate_exists"))
def create_gate(car_park_id: int, body: GateIn) -> GateOut:
    with transaction() as session:
        return GateOut.model_validate(carparks.create_gate(session, car_park_id, **body.model_dump()))


# --- bays ------------------------------------------------------------------------------------------------

@operation(bp, "/car-parks/<int:car_park_id>/bays", "GET", summary="The car park's bays (of one level with level_id)",
           auth="ops", query=BaysQuery, response=BaysOut, errors=_CAR_PARK)
def list_bays(car_park_id: int, query: BaysQuery) -> BaysOut:
    with transaction() as session:
        carparks.get(session, car_park_id)
        return BaysOut(bays=[BayOut.model_validate(b) for b in carparks.bays(session, car_park_id, query.level_id)])


_BAY_ERRORS = (*_ADMIN, *_CAR_PARK, "parking.bay_invalid", "parking.level_unknown", "parking.bay_exists")


@operation(bp, "/car-parks/<int:car_park_id>/bays", "POST", summary='Add one bay ("B2-C058": its level\'s code, a dash, a number)',
           auth="ops_admin", body=BayIn, response=BayOut, status=201, errors=_BAY_ERRORS)
def create_bay(car_park_id: int, body: BayIn) -> BayOut:
    with transaction() as session:
        bay = carparks.create_bay(session, car_park_id, **body.model_dump())
        if bay.x is not None:  # a placed bay snaps to the walkable graph (Graph.bay_nodes)
            wayfinding_store.bump_version(session, "bay_placed", by=current_ops().id, now=runtime().now())
        return BayOut.model_validate(bay)


@operation(bp, "/car-parks/<int:car_park_id>/bays/range", "POST",
           summary='Add a numbered range of bays ("B2-C", 1 to 120: B2-C001..B2-C120); existing ones are kept',
           auth="ops_admin", body=BayRangeIn, response=BayRangeOut, errors=(*_BAY_ERRORS, "parking.bay_range_invalid"))
def create_bay_range(car_park_id: int, body: BayRangeIn) -> BayRangeOut:
    with transaction() as session:
        created, existing = carparks.create_bay_range(session, car_park_id, **body.model_dump())
    return BayRangeOut(created=created, existing=existing)


@operation(bp, "/car-parks/<int:car_park_id>/bays/<int:bay_id>", "PATCH", summary="Place a bay on the plan, (de)activate it",
           auth="ops_admin", body=BayPatch, response=BayOut, errors=(*_ADMIN, "parking.bay_not_found"))
def patch_bay(car_park_id: int, bay_id: int, body: BayPatch) -> BayOut:
    changes = body.model_dump(exclude_unset=True)
    if not changes or changes.get("active", False) is None:
        raise InvalidInput("nothing to change: send x, y or active", code="request.invalid")
    with transaction() as session:
        bay = carparks.update_bay(session, car_park_id, bay_id, changes)
        wayfinding_store.bump_version(session, "bay_placed", by=current_ops().id, now=runtime().now())
        return BayOut.model_validate(bay)


@operation(bp, "/car-parks/<int:car_park_id>/bays/<int:bay_id>/qr", "GET", summary="The QR payload for the bay's pillar",
           auth="ops", response=BayQrOut, errors=("parking.bay_not_found",))
def bay_qr(car_park_id: int, bay_id: int) -> BayQrOut:
    with transaction() as session:
        bay = carparks.get_bay(session, car_park_id, bay_id)
        return BayQrOut(bay_id=bay.id, code=bay.code, qr=locate.bay_qr(runtime().secret, bay))


@operation(bp, "/car-parks/<int:car_park_id>/bays/qr", "GET",
           summary="The QR payloads of the car park's active bays (of one level with level_id), for printing",
           auth="ops", query=BaysQuery, response=BayQrsOut, errors=_CAR_PARK)
def bay_qrs(car_park_id: int, query: BaysQuery) -> BayQrsOut:
    secret = runtime().secret
    with transaction() as session:
        carparks.get(session, car_park_id)
        return BayQrsOut(bays=[BayQrOut(bay_id=b.id, code=b.code, qr=locate.bay_qr(secret, b))
                               for b in carparks.bays(session, car_park_id, query.level_id) if b.active])
