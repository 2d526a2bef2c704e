"""Ops' floors: define a floor's names and outline (``PUT /api/v1/ops/floors/<number>``, admins only).

Any ops user reads them with the floor list (``GET /api/v1/ops/floors``, mallapp.api.ops). The outline is
the floor's extent for the position estimate, so a change bumps the venue registry's version: the
proximity workers reload the floor plans with the registry. See docs/positioning.md.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from flask import Blueprint
from pydantic import Field

from mallapp.api.core import Body, Out, Printable, operation, runtime, transaction
from mallapp.domain import floors, venue
from mallapp.domain.venue_admin import floor_name
from mallapp.errors import InvalidInput

bp = Blueprint("floors", __name__, url_prefix="/api/v1/ops")

Metres = Annotated[float, Field(ge=-floors.MAX_COORDINATE_M, le=floors.MAX_COORDINATE_M, allow_inf_nan=False)]
Vertex = Annotated[list[Metres], Field(min_length=2, max_length=2)]
_NUMBER = re.compile(r"^-?[0-9]{1,3}$")


class FloorIn(Body):
    name: Printable(40) = Field(description="the floor's name in zh-CN, as members read it (一层, 美食广场)")
    name_en: Printable(40) = Field(description="the floor's name in English")
    outline: list[Vertex] = Field(min_length=3, max_length=floors.MAX_VERTICES,
                                  description="[[x, y], ...] in metres: a simple polygon (no edges crossing), "
                                              "closed or not; where a person can be on the floor")


class DefinedFloorOut(Out):
    number: int = Field(description="1 is the ground floor, -1 the first basement")
    label: str = Field(description="L1, L2, ... from the ground up; B1, B2, ... below")
    name: str
    name_en: str
    outline: list[list[float]] = Field(description="as stored: the closing vertex dropped")
    updated_at: datetime


def _number(text: str) -> int:
    if not _NUMBER.match(text) or not floors.MIN_FLOOR <= int(text) <= floors.MAX_FLOOR:
        raise InvalidInput(f"a floor number is an integer {floors.MIN_FLOOR}..{floors.MAX_FLOOR}",
                           code="floors.invalid_number")
    return int(text)


@operation(bp, "/floors/<number>", "PUT", summary="Define a floor: its names and outline (created or replaced)",
           auth="ops_admin", body=FloorIn, response=DefinedFloorOut,
           errors=("ops.admin_required", "floors.invalid_number", "floors.invalid_outline"))
def put_floor(number: str, body: FloorIn) -> DefinedFloorOut:
    at = _number(number)
    with transaction() as session:
        floor = floors.put_floor(session, at, body.name, body.name_en, body.outline, runtime().now())
        out = DefinedFloorOut(number=floor.number, label=floor_name(floor.number), name=floor.name,
                              name_en=floor.name_en, outline=floor.outline, updated_at=floor.updated_at)
    venue.bump_registry_version(runtime().redis)
    return out
