"""Members' plates and find-my-car; the public list of car parks with their free spaces."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints

from mallapp.api.core import REPLAY, Body, Out, current_member_id, operation, runtime, transaction
from mallapp.domain.members import Member
from mallapp.domain.parking import bindings, carparks, locate
from mallapp.domain.parking.models import PlateBinding
from mallapp.errors import MallError, PlateNotFound

log = logging.getLogger(__name__)

bp = Blueprint("plates", __name__, url_prefix="/api/v1")

PlateText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
VehicleType = Literal["small", "large", "new_energy", "motorcycle"]
_PLATE = ("parking.plate_invalid",)


class PlateIn(Body):
    plate: PlateText = Field(description='as typed: "沪A·12345", "沪a 12345" and "沪A12345" are one plate')
    vehicle_type: VehicleType | None = Field(default=None, description="default: read from the plate")


class PlateOut(Out):
    plate: str
    vehicle_type: str
    bound_at: datetime


class PlatesOut(Out):
    plates: list[PlateOut]
    limit: int = Field(description="how many plates the member's tier may bind")


class LevelRef(Out):
    code: str
    name: str
    floor: int


class CarParkRef(Out):
    id: int
    code: str
    name: str


class CarOut(Out):
    plate: str
    car_park: CarParkRef
    entered_at: datetime
    level: LevelRef | None
    bay: str | None
    bay_source: Literal["camera", "qr", "typed"] | None
    bay_at: datetime | None


class CarsOut(Out):
    cars: list[CarOut]
    carpark_unavailable: bool = Field(description="a car park could not be asked where a car is")


class BayIn(Body):
    qr: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="the payload of the QR code on the pillar")
    bay: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)] | None = Field(
        default=None, description='typed in: "B2-C058"')
    plate: PlateText | None = Field(default=None, description="which car, when more than one is parked")


class FreeLevelOut(Out):
    code: str
    name: str
    floor: int
    spaces: int
    free: int | None = Field(description="null when the car park did not say")


class PublicCarParkOut(Out):
    id: int
    code: str
    name: str
    levels: list[FreeLevelOut]
    free_spaces_known: bool


class PublicCarParksOut(Out):
    car_parks: list[PublicCarParkOut]


def _plate_out(row: PlateBinding) -> PlateOut:
    return PlateOut(plate=row.plate, vehicle_type=row.vehicle_type, bound_at=row.bound_at)


def _plates(session, member_id: int) -> PlatesOut:
    member = session.get(Member, member_id)
    limit = bindings.limit_for(runtime().settings.parking, member.tier if member else None)
    return PlatesOut(plates=[_plate_out(r) for r in bindings.member_plates(session, member_id)], limit=limit)


def _car_out(where: locate.CarLocation) -> CarOut:
    level = LevelRef(code=where.level.code, name=where.level.name, floor=where.level.floor) if where.level else None
    return CarOut(plate=where.plate, car_park=CarParkRef(id=where.car_park.id, code=where.car_park.code,
                                                         name=where.car_park.name),
                  entered_at=where.session.entered_at, level=level, bay=where.bay_code,
                  bay_source=where.bay_source, bay_at=where.bay_at)  # type: ignore[arg-type]


# --- plates ----------------------------------------------------------------------------------------------

@operation(bp, "/me/plates", "GET", summary="My plates and how many my tier may bind", auth="member",
           response=PlatesOut)
def list_plates() -> PlatesOut:
    with transaction() as session:
        return _plates(session, current_member_id())


@operation(bp, "/me/plates", "POST", summary="Bind a plate (one member per plate; a limit per tier)", auth="member",
           body=PlateIn, response=PlateOut, status=201, also=REPLAY,
           errors=(*_PLATE, "parking.plate_taken", "parking.plate_limit", "parking.plate_cooling_down",
                   "parking.plate_changes_exhausted"))
def bind_plate(body: PlateIn):
    rt = runtime()
    with transaction() as session:
        row, created = bindings.bind(session, current_member_id(), body.plate, vehicle_type=body.vehicle_type,
                                     cfg=rt.settings.parking, now=rt.now())
        return _plate_out(row), 201 if created else 200


@operation(bp, "/me/plates/<plate>", "DELETE", summary="Unbind one of my plates", auth="member", status=204,
           errors=(*_PLATE, "parking.plate_not_bound"))
def unbind_plate(plate: str) -> None:
    rt = runtime()
    with transaction() as session:
        bindings.unbind(session, current_member_id(), plate, rt.now())


# --- find my car -----------------------------------------------------------------------------------------

@operation(bp, "/me/parking/car", "GET", summary="Where my parked cars are: car park, level, bay and its source",
           auth="member", response=CarsOut)
def my_cars() -> CarsOut:
    rt = runtime()
    member_id = current_member_id()
    with transaction() as session:
        ask = [(row.id, row.plate, row.car_park_id, carparks.get(session, row.car_park_id).vendor_park_code)
               for row in locate.parked(session, member_id) if locate.needs_camera(row)]
    # The bay cameras are asked outside the transaction: no database connection held while the car park answers.
    seen, unavailable = {}, False
    for session_id, plate, car_park_id, vendor_code in ask:
        if locate.is_down(rt.redis, car_park_id):  # did not answer a moment ago: not waited on again
            unavailable = True
            continue
        try:
            seen[session_id] = rt.carpark(vendor_code).locate(plate)
        except PlateNotFound:  # the car park has no such car in: no bay to show (its exit will close the stay)
            continue
        except MallError as exc:  # unreachable, refused, unconfigured: answer with what we know
            log.info("car park %s could not locate a car: %s", vendor_code, exc.code)
            locate.mark_down(rt.redis, car_park_id, _down_for(rt))
            unavailable = True
    with transaction() as session:
        out = []
        for row in locate.parked(session, member_id):
            bay = seen.get(row.id)
            if bay is not None:
                locate.record_camera_bay(session, row, bay.bay, bay.seen_at)
            out.append(_car_out(locate.describe(session, row)))
        return CarsOut(cars=out, carpark_unavailable=unavailable)


@operation(bp, "/me/parking/car/bay", "POST", summary="Say where I parked: the pillar's QR code, or the bay typed in",
           auth="member", body=BayIn, response=CarOut,
           errors=(*_PLATE, "parking.bay_input", "parking.qr_invalid", "parking.bay_invalid", "parking.bay_not_found",
                   "parking.not_parked", "parking.plate_required"))
def set_my_bay(body: BayIn) -> CarOut:
    rt = runtime()
    with transaction() as session:
        where = locate.set_bay(session, current_member_id(), secret=rt.secret, now=rt.now(), qr=body.qr,
                               bay=body.bay, plate=body.plate)
        return _car_out(where)


def _down_for(rt) -> int:
    return max(1, rt.settings.parking.free_spaces_cache_s // 3)


def _free_spaces(car_park_id: int, code: str, vendor_code: str) -> dict[str, int] | None:
    """Free spaces per level code, from the cache or the car park; None when it does not answer."""
    rt = runtime()
    free = locate.cached_free_spaces(rt.redis, car_park_id)
    if free is not None or locate.is_down(rt.redis, car_park_id):
        return free
    try:
        free = {s.level: s.free for s in rt.carpark(vendor_code).free_spaces()}
    except MallError as exc:
        log.info("car park %s could not tell its free spaces: %s", code, exc.code)
        locate.mark_down(rt.redis, car_park_id, _down_for(rt))
        return None
    locate.keep_free_spaces(rt.redis, car_park_id, free, rt.settings.parking.free_spaces_cache_s)
    return free


# --- public ----------------------------------------------------------------------------------------------

@operation(bp, "/parking/car-parks", "GET", summary="The car parks, their levels and free spaces per level",
           response=PublicCarParksOut)
def public_car_parks() -> PublicCarParksOut:
    with transaction() as session:
        found = [(row.id, row.code, row.name, row.vendor_park_code,
                  [(lv.code, lv.name, lv.floor, lv.spaces) for lv in carparks.levels(session, row.id)])
                 for row in carparks.list_car_parks(session, include_inactive=False)]
    out = []
    for car_park_id, code, name, vendor_code, levels in found:  # asked outside the transaction
        free = _free_spaces(car_park_id, code, vendor_code)
        out.append(PublicCarParkOut(
            id=car_park_id, code=code, name=name, free_spaces_known=free is not None,
            levels=[FreeLevelOut(code=lv_code, name=lv_name, floor=floor, spaces=spaces,
                                 free=None if free is None else free.get(lv_code))
                    for lv_code, lv_name, floor, spaces in levels]))
    return PublicCarParksOut(car_parks=out)
