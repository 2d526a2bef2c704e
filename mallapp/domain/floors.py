"""The mall's floors as ops define them: number, names (zh-CN and English) and outline, the floor's extent.

The outline is a simple polygon in the floor plan's metres (x to the right, y up, as zones and beacons):
at least three vertices, finite, no two edges crossing or touching except neighbours at their shared
vertex, and some area. It is where a person can be on that floor: the position estimate
(:func:`floor_plans`, :class:`mallapp.domain.proximity.locate.FloorPlan`) searches only inside it, and the
ops floor list (:func:`mallapp.domain.venue_admin.floors`) draws it instead of the hull of the zones.
A floor without a row here keeps the old behaviour (the hull; no plan for the engine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import JSON, SmallInteger, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain.proximity.floorplan import FloorPlan
from mallapp.errors import InvalidInput

MIN_FLOOR, MAX_FLOOR = -20, 200
MAX_VERTICES = 500
MAX_COORDINATE_M = 100_000.0


class Floor(Base):
    """One floor of the venue (1 ground, -1 the first basement) with the outline ops drew."""

    __tablename__ = "floors"

    number: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(40))  # zh-CN, as members read it: 一层, 美食广场
    name_en: Mapped[str] = mapped_column(String(40))
    # [[x, y], ...] in metres, not closed (the last vertex joins the first).
    outline: Mapped[list[list[float]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"invalid outline: {message}", code="floors.invalid_outline")


def _orientation(a: Sequence[float], b: Sequence[float], c: Sequence[float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Sequence[float], b: Sequence[float], p: Sequence[float]) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_touch(a: Sequence[float], b: Sequence[float], c: Sequence[float], d: Sequence[float]) -> bool:
    """Whether the closed segments a-b and c-d share a point (crossing, touching or overlapping)."""
    o1, o2, o3, o4 = _orientation(a, b, c), _orientation(a, b, d), _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return ((o1 == 0 and _on_segment(a, b, c)) or (o2 == 0 and _on_segment(a, b, d))
            or (o3 == 0 and _on_segment(c, d, a)) or (o4 == 0 and _on_segment(c, d, b)))


def validate_outline(points: Sequence[Sequence[float]]) -> list[list[float]]:
    """The outline as stored (the closing vertex dropped), or InvalidInput ``floors.invalid_outline``."""
    pts = []
    for p in points:
        if len(p) != 2:
            raise _invalid("each vertex is [x, y]")
        x, y = float(p[0]), float(p[1])
        if not (math.isfinite(x) and math.isfinite(y)) or max(abs(x), abs(y)) > MAX_COORDINATE_M:
            raise _invalid(f"coordinates are finite metres within {MAX_COORDINATE_M:g}")
        pts.append([x, y])
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    if len(pts) < 3:
        raise _invalid("at least three vertices")
    if len(pts) > MAX_VERTICES:
        raise _invalid(f"at most {MAX_VERTICES} vertices")
    n = len(pts)
    if any(pts[i] == pts[(i + 1) % n] for i in range(n)):
        raise _invalid("a vertex repeats the one before it")
    area = sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n)) / 2
    if abs(area) < 1e-6:
        raise _invalid("the outline has no area")
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % n]
        for j in range(i + 1, n):
            c, d = pts[j], pts[(j + 1) % n]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share a vertex; they must not fold back along each other.
                shared, other_ab, other_cd = (b, a, d) if j == i + 1 else (a, b, c)
                if _orientation(other_ab, shared, other_cd) == 0 and (
                        _on_segment(shared, other_ab, other_cd) or _on_segment(shared, other_cd, other_ab)):
                    raise _invalid(f"edges {i + 1} and {j + 1} fold back along each other")
                continue
            if segments_touch(a, b, c, d):
                raise _invalid(f"edges {i + 1} and {j + 1} cross or touch")
    return pts


def list_floors(session: Session) -> list[Floor]:
    return list(session.scalars(select(Floor).order_by(Floor.number)))


def put_floor(session: Session, number: int, name: str, name_en: str, outline: Sequence[Sequence[float]],
              now: datetime) -> Floor:
    """Create or replace floor ``number`` (validated); flushes."""
    if not MIN_FLOOR <= number <= MAX_FLOOR:
        raise InvalidInput(f"a floor number is {MIN_FLOOR}..{MAX_FLOOR}", code="floors.invalid_number")
    pts = validate_outline(outline)
    floor = session.get(Floor, number)
    if floor is None:
        floor = Floor(number=number)
        session.add(floor)
    floor.name, floor.name_en, floor.outline, floor.updated_at = name, name_en, pts, now
    session.flush()
    return floor


def floor_plans(session: Session) -> dict[int, FloorPlan]:
    """The engine's floor plans: every floor with an outline, by number (no obstacles are mapped yet)."""
    return {f.number: FloorPlan.from_outline(f.outline) for f in list_floors(session) if len(f.outline) >= 3}


def seed_floors(session: Session, rows: Sequence[dict], now: datetime) -> int:
    """Create the floors of a plan file's [[floors]] rows that do not exist yet (ops' edits are kept); return how
    many it made. A row: floor, name (English), name_zh (optional: else 1层 / 地下1层), outline."""
    made = 0
    for row in rows:
        number = int(row["floor"])
        if session.get(Floor, number) is not None:
            continue
        zh = row.get("name_zh") or (f"地下{-number}层" if number < 0 else f"{number}层")
        put_floor(session, number, zh, row.get("name", f"Floor {number}"), row["outline"], now)
        made += 1
    return made
