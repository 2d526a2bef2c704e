"""Ops' car parks: the car park itself, its tariff and benefit rules, its levels, bays and gates.

Plain functions over a Session; the caller commits. Codes are unique within their car park (the
tables' unique constraints are the last word: a duplicate is ``Conflict``). A bay's code names its
level before the dash (``B2-C058`` is on level ``B2``), so the level of a typed or scanned bay is
always known. Nothing is deleted: a car park or a bay is deactivated (``active``) instead, so the
sessions that name them keep their meaning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mallapp.db import get_or_404
from mallapp.domain.parking import rules, tariff
from mallapp.domain.parking.models import CarPark, ParkingBay, ParkingGate, ParkingLevel
from mallapp.errors import Conflict, InvalidInput, NotFound, RuleViolation

CAR_PARK_FIELDS = ("name", "vendor_park_code", "fee_source", "active")
LEVEL_FIELDS = ("name", "floor", "spaces")
BAY_CODE = re.compile(r"^([A-Z0-9]{1,8})-([A-Z0-9]{1,7})$")
MAX_BAYS_PER_RANGE = 2000


def _clashes(session: Session) -> bool:
    """Flush inside a savepoint; True when a unique constraint refused the row (nothing of it kept)."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        return True
    return False


# --- car parks ---------------------------------------------------------------------------------------

def get(session: Session, car_park_id: int, *, lock: bool = False) -> CarPark:
    return get_or_404(session, CarPark, car_park_id, code="parking.car_park_not_found", what="car park", lock=lock)


def by_vendor_code(session: Session, vendor_park_code: str) -> CarPark | None:
    return session.scalar(select(CarPark).where(CarPark.vendor_park_code == vendor_park_code))


def list_car_parks(session: Session, *, include_inactive: bool = True) -> list[CarPark]:
    query = select(CarPark).order_by(CarPark.code)
    if not include_inactive:
        query = query.where(CarPark.active.is_(True))
    return list(session.scalars(query))


def validated_tariff(document: Any) -> dict[str, Any]:
    """The tariff as stored: ``parse_tariff``'s validated model, dumped (defaults filled in)."""
    if not isinstance(document, dict):
        raise InvalidInput("A tariff is a JSON object with plans.", code="parking.tariff_invalid")
    return tariff.parse_tariff(document).model_dump(mode="json")


def validated_rules(document: Any) -> dict[str, Any]:
    return rules.parse_rules(document).model_dump(mode="json")


def create_car_park(session: Session, *, code: str, name: str, vendor_park_code: str, tariff_doc: Any,
                    fee_source: str = "carpark", active: bool = True, now: datetime) -> CarPark:
    """A new car park with its validated tariff and the default benefit rules."""
    row = CarPark(code=code, name=name, vendor_park_code=vendor_park_code, fee_source=fee_source,
                  tariff=validated_tariff(tariff_doc), rules=rules.default_rules(), active=active,
                  created_at=now, updated_at=now)
    session.add(row)
    if _clashes(session):
        raise Conflict("A car park with this code or vendor park code exists already.", code="parking.car_park_exists")
    return row


def update_car_park(session: Session, car_park_id: int, changes: Mapping[str, Any], now: datetime) -> CarPark:
    row = get(session, car_park_id, lock=True)
    for key, value in changes.items():
        if key not in CAR_PARK_FIELDS:
            raise InvalidInput(f"{key} cannot be changed here", code="request.invalid")
        setattr(row, key, value)
    row.updated_at = now
    if _clashes(session):
        raise Conflict("Another car park has this vendor park code.", code="parking.car_park_exists")
    return row


def set_tariff(session: Session, car_park_id: int, document: Any, now: datetime) -> CarPark:
    row = get(session, car_park_id, lock=True)
    row.tariff = validated_tariff(document)
    row.updated_at = now
    return row


def set_rules(session: Session, car_park_id: int, document: Any, now: datetime) -> CarPark:
    row = get(session, car_park_id, lock=True)
    row.rules = validated_rules(document)
    row.updated_at = now
    return row


# --- levels ------------------------------------------------------------------------------------------

def levels(session: Session, car_park_id: int) -> list[ParkingLevel]:
    return list(session.scalars(select(ParkingLevel).where(ParkingLevel.car_park_id == car_park_id)
                                .order_by(ParkingLevel.floor.desc(), ParkingLevel.code)))


def level_by_code(session: Session, car_park_id: int, code: str) -> ParkingLevel | None:
    return session.scalar(select(ParkingLevel).where(ParkingLevel.car_park_id == car_park_id,
                                                     ParkingLevel.code == code))


def get_level(session: Session, car_park_id: int, level_id: int) -> ParkingLevel:
    return get_or_404(session, ParkingLevel, level_id, code="parking.level_not_found", what="level",
                      accept=lambda row: row.car_park_id == car_park_id)


def create_level(session: Session, car_park_id: int, *, code: str, name: str, floor: int, spaces: int) -> ParkingLevel:
    get(session, car_park_id)
    row = ParkingLevel(car_park_id=car_park_id, code=code.upper(), name=name, floor=floor, spaces=spaces)
    session.add(row)
    if _clashes(session):
        raise Conflict("This car park has a level with this code already.", code="parking.level_exists")
    return row


def update_level(session: Session, car_park_id: int, level_id: int, changes: Mapping[str, Any]) -> ParkingLevel:
    row = get_level(session, car_park_id, level_id)
    for key, value in changes.items():
        if key not in LEVEL_FIELDS:
            raise InvalidInput(f"{key} cannot be changed here", code="request.invalid")
        setattr(row, key, value)
    return row


# --- bays --------------------------------------------------------------------------------------------

def normalize_bay(code: str) -> str:
    """A bay code as stored (``b2-c058`` → ``B2-C058``), or ``parking.bay_invalid``."""
    text = str(code).strip().upper()
    if not BAY_CODE.match(text):
        raise InvalidInput("A bay code is the level's code, a dash and the bay's number, e.g. B2-C058.",
                           code="parking.bay_invalid")
    return text


def _level_of(session: Session, car_park_id: int, bay_code: str) -> ParkingLevel:
    level_code = bay_code.split("-", 1)[0]
    level = level_by_code(session, car_park_id, level_code)
    if level is None:
        raise RuleViolation(f"No level {level_code} in this car park: add the level before its bays.",
                            code="parking.level_unknown", details={"level": level_code})
    return level


def bays(session: Session, car_park_id: int, level_id: int | None = None) -> list[ParkingBay]:
    query = select(ParkingBay).where(ParkingBay.car_park_id == car_park_id)
    if level_id is not None:
        query = query.where(ParkingBay.level_id == level_id)
    return list(session.scalars(query.order_by(ParkingBay.code)))


def get_bay(session: Session, car_park_id: int, bay_id: int) -> ParkingBay:
    return get_or_404(session, ParkingBay, bay_id, code="parking.bay_not_found", what="bay",
                      accept=lambda row: row.car_park_id == car_park_id)


def bay_by_code(session: Session, car_park_id: int, code: str) -> ParkingBay | None:
    return session.scalar(select(ParkingBay).where(ParkingBay.car_park_id == car_park_id, ParkingBay.code == code))


def create_bay(session: Session, car_park_id: int, *, code: str, x: float | None = None,
               y: float | None = None) -> ParkingBay:
    get(session, car_park_id)
    code = normalize_bay(code)
    row = ParkingBay(car_park_id=car_park_id, level_id=_level_of(session, car_park_id, code).id, code=code,
                     x=x, y=y, active=True)
    session.add(row)
    if _clashes(session):
        raise Conflict("This car park has a bay with this code already.", code="parking.bay_exists")
    return row


def create_bay_range(session: Session, car_park_id: int, *, prefix: str, first: int, last: int,
                     width: int = 3) -> tuple[int, int]:
    """Bays ``<prefix><first>``..``<prefix><last>`` (numbers zero-padded to ``width``); returns (created, existing).

    Idempotent: the bays that exist already are left as they are, so a range can be sent again or widened.
    """
    get(session, car_park_id)
    if not 1 <= first <= last or last - first + 1 > MAX_BAYS_PER_RANGE or len(str(last)) > width:
        raise InvalidInput(f"A range is first <= last, at most {MAX_BAYS_PER_RANGE} bays, numbers of at most "
                           f"{width} digits.", code="parking.bay_range_invalid")
    codes = [normalize_bay(f"{prefix}{number:0{width}d}") for number in range(first, last + 1)]
    level = _level_of(session, car_park_id, codes[0])
    existing = set(session.scalars(select(ParkingBay.code).where(ParkingBay.car_park_id == car_park_id,
                                                                ParkingBay.code.in_(codes))))
    fresh = [ParkingBay(car_park_id=car_park_id, level_id=level.id, code=code, active=True)
             for code in codes if code not in existing]
    session.add_all(fresh)
    if _clashes(session):
        raise Conflict("Another request added some of these bays meanwhile; "
                  "send the range again.", code="parking.bay_exists")
    return len(fresh), len(existing)


def update_bay(session: Session, car_park_id: int, bay_id: int, changes: Mapping[str, Any]) -> ParkingBay:
    row = get_bay(session, car_park_id, bay_id)
    for key, value in changes.items():
        if key not in ("x", "y", "active"):
            raise InvalidInput(f"{key} cannot be changed here", code="request.invalid")
        setattr(row, key, value)
    return row


def bay_counts(session: Session, car_park_id: int) -> dict[int, int]:
    """Bays per level id."""
    rows = session.execute(select(ParkingBay.level_id, func.count()).where(ParkingBay.car_park_id == car_park_id)
                           .group_by(ParkingBay.level_id))
    return {level_id: count for level_id, count in rows}


# --- gates -------------------------------------------------------------------------------------------

def gates(session: Session, car_park_id: int) -> list[ParkingGate]:
    return list(session.scalars(select(ParkingGate).where(ParkingGate.car_park_id == car_park_id)
                                .order_by(ParkingGate.code)))


def create_gate(session: Session, car_park_id: int, *, code: str, name: str, kind: str,
                level_id: int | None = None) -> ParkingGate:
    get(session, car_park_id)
    if level_id is not None:
        get_level(session, car_park_id, level_id)
    row = ParkingGate(car_park_id=car_park_id, code=code, name=name, kind=kind, level_id=level_id)
    session.add(row)
    if _clashes(session):
        raise Conflict("This car park has a gate with this code already.", code="parking.gate_exists")
    return row


def require_active(row: CarPark) -> CarPark:
    if not row.active:
        raise NotFound("This car park is not in service.", code="parking.car_park_not_found")
    return row
