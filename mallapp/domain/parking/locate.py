"""Find my car: where each of a member's parked cars is, from the member (pillar QR, typed) or a bay camera.

A bay the member gave (``qr`` or ``typed``) is kept for the stay: the member stood there. Without one,
the caller asks the car park's bay cameras (the adapter's ``locate``) and keeps the answer with
:func:`record_camera_bay` (``camera``); this module never calls the car park itself, so a car park
that does not answer only means the answer has no bay.

The pillar QR is a signed code (:mod:`mallapp.domain.signed_codes`) ``PB1.<car park id>.<bay id>.<sig>``:
:func:`bay_qr` prints it, :func:`set_bay` opens it; a code signed with another key, or re-prefixed
from a member card or a coupon, does not open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from sqlalchemy.orm import Session

from mallapp.domain import signed_codes
from mallapp.domain.parking import bindings, carparks, plates, sessions
from mallapp.domain.parking.models import CarPark, ParkingBay, ParkingLevel, ParkingSession
from mallapp.errors import InvalidInput, NotFound, RuleViolation

BAY_QR = signed_codes.Kind("PB1", "parking_bay", (int, int))
MEMBER_SOURCES = ("qr", "typed")


@dataclass(frozen=True)
class CarLocation:
    plate: str
    car_park: CarPark
    session: ParkingSession
    level: ParkingLevel | None
    bay_code: str | None
    bay_source: str | None
    bay_at: datetime | None


def bay_qr(secret: bytes, bay: ParkingBay) -> str:
    """The payload printed on the pillar by ``bay``."""
    return BAY_QR.sign(secret, bay.car_park_id, bay.id)


def parked(session: Session, member_id: int) -> list[ParkingSession]:
    """The open sessions of the member's bound plates, the latest entry first."""
    return sessions.open_for_plates(session, [b.plate for b in bindings.member_plates(session, member_id)])


def needs_camera(row: ParkingSession) -> bool:
    """Whether to ask the bay cameras: the member gave no bay for this stay."""
    return row.bay_source not in MEMBER_SOURCES


def record_camera_bay(session: Session, row: ParkingSession, bay_code: str, seen_at: datetime) -> None:
    """Keep where a bay camera saw the car (unless the member gave a bay meanwhile)."""
    if not needs_camera(row):
        return
    try:
        code = carparks.normalize_bay(bay_code)
    except InvalidInput:
        return  # a vendor's bay naming we cannot read: no bay rather than a wrong one
    row.bay_code, row.bay_source, row.bay_at = code, "camera", seen_at


def describe(session: Session, row: ParkingSession) -> CarLocation:
    car_park = carparks.get(session, row.car_park_id)
    level = carparks.level_by_code(session, row.car_park_id, row.bay_code.split("-", 1)[0]) if row.bay_code else None
    return CarLocation(row.plate, car_park, row, level, row.bay_code, row.bay_source, row.bay_at)


def _pick(candidates: list[ParkingSession], plate: str | None) -> ParkingSession:
    if plate is not None:
        wanted = plates.normalize(plate)
        candidates = [row for row in candidates if row.plate == wanted]
    if not candidates:
        raise NotFound("None of your cars is parked there now.", code="parking.not_parked")
    if len(candidates) > 1:
        raise RuleViolation("More than one of your cars is parked: say which plate.", code="parking.plate_required",
                            details={"plates": sorted(row.plate for row in candidates)})
    return candidates[0]


def _open_qr(session: Session, secret: bytes, code: str) -> ParkingBay:
    try:
        car_park_id, bay_id = BAY_QR.open(secret, code)
    except signed_codes.Refused:
        raise InvalidInput("This is not a parking bay's QR code.", code="parking.qr_invalid") from None
    bay = session.get(ParkingBay, bay_id)
    if bay is None or bay.car_park_id != car_park_id or not bay.active:
        raise NotFound("This bay is no longer in service.", code="parking.bay_not_found")
    return bay


def set_bay(session: Session, member_id: int, *, secret: bytes, now: datetime, qr: str | None = None,
            bay: str | None = None, plate: str | None = None) -> CarLocation:
    """Record the bay the member scanned (``qr``) or typed (``bay``) for one of their parked cars."""
    if (qr is None) == (bay is None):
        raise InvalidInput("Send either the pillar's qr or the bay typed in.", code="parking.bay_input")
    candidates = parked(session, member_id)
    if qr is not None:
        found = _open_qr(session, secret, qr)
        row = _pick([r for r in candidates if r.car_park_id == found.car_park_id], plate)
        source = "qr"
    else:
        code = carparks.normalize_bay(bay or "")
        row = _pick(candidates, plate)
        found = carparks.bay_by_code(session, row.car_park_id, code)
        if found is None or not found.active:
            raise NotFound(f"No bay {code} in this car park.", code="parking.bay_not_found")
        source = "typed"
    row.bay_code, row.bay_source, row.bay_at = found.code, source, now
    return describe(session, row)


# --- what the car park last told, and whether it answers -------------------------------------------------

def free_spaces_key(car_park_id: int) -> str:
    """The Redis key caching a car park's free spaces per level."""
    return f"parking:free:{car_park_id}"


def down_key(car_park_id: int) -> str:
    """The Redis key saying a car park did not answer a moment ago (it is not asked again until it lapses)."""
    return f"parking:down:{car_park_id}"


def cached_free_spaces(redis: Redis, car_park_id: int) -> dict[str, int] | None:
    raw = redis.get(free_spaces_key(car_park_id))
    return None if raw is None else json.loads(raw)


def keep_free_spaces(redis: Redis, car_park_id: int, counts: dict[str, int], ttl_s: int) -> None:
    redis.set(free_spaces_key(car_park_id), json.dumps(counts), ex=max(1, ttl_s))


def mark_down(redis: Redis, car_park_id: int, ttl_s: int) -> None:
    redis.set(down_key(car_park_id), "1", ex=max(1, ttl_s))


def is_down(redis: Redis, car_park_id: int) -> bool:
    return bool(redis.exists(down_key(car_park_id)))
