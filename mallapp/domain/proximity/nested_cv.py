"""Nested cross-validation of the position model: its figure on rooms the choice of parameters never saw.

The outer loop holds out one *unit* at a time and scores on it; the inner loop chooses the model's
parameters (exponent, dB per obstacle, nu: :data:`recordings.GRID`) on the other units only. Units are
the rooms (leave-one-room-out) when the run has two or more; with one room, spatially disjoint blocks of
it (:func:`spatial_blocks`: bands of its measured places along its longer side, every measurement of a
place in one band), never random samples, whose neighbours on the training side would leak the answer.

The inner choice: the grid entry with the lowest mean, over the training units, of the unit's score
(median / 1.1 m + p90 / 2.3 m of its per-point errors, so a big room does not outvote a small one); a tie
moves the fewest knobs from the defaults of
:class:`LocateParams` (so a knob the training rooms cannot tell apart keeps its default). The model has nothing else fitted, so each candidate's
figure on a training unit is already out of sample for that candidate: the inner loop is the selection,
and the outer loop scores the whole procedure (selection included). The baselines have no parameters:
their figures are on the same held-out points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mallapp.domain.proximity.floorplan import Geometry
from mallapp.domain.proximity.locate import LocateParams, Reading, weighted_centroid
from mallapp.domain.proximity.recordings import (
    BASELINES,
    GRID,
    Dataset,
    Point,
    grid_errors,
    quantile,
    score,
)

GOAL_MEDIAN_M, GOAL_P90_M = 1.3, 2.3  # per point, on unseen rooms (issue 17)
BLOCKS = 4  # spatial blocks of a room when it is the only one

Key = tuple[float, float, float]


@dataclass
class RoomErrors:
    """Per point of a room (its last sample's readings): each baseline's error and the model's for every grid
    entry. A room without a floor plan gets the engine's weighted centroid for every entry."""

    name: str
    points: list[Point]
    baselines: dict[str, list[float | None]]
    grid: dict[Key, list[float | None]]
    has_plan: bool


def room_errors(ds: Dataset, last: Sequence[list[Reading] | None], base: LocateParams) -> RoomErrors:
    def err(estimate: tuple[float, float], p: Point) -> float:
        return math.hypot(estimate[0] - p.x, estimate[1] - p.y)

    baselines = {name: [err(f(r), p) if r else None for p, r in zip(ds.points, last, strict=True)]
                 for name, f in BASELINES.items()}
    if ds.plan is not None:
        grid = grid_errors(ds, Geometry(ds.plan, base.step_m), list(last), base)
    else:
        centroid = [err(weighted_centroid(r, base.k, base.sharpness), p) if r else None
                    for p, r in zip(ds.points, last, strict=True)]
        grid = {g: centroid for g in GRID}
    return RoomErrors(ds.name, ds.points, baselines, grid, ds.plan is not None)


def spatial_blocks(points: Sequence[Point], k: int = BLOCKS) -> list[int]:
    """Each point's block: the room's measured places sorted along its longer side, cut into k runs of about
    equal size; every point at one place falls in the same block."""
    places = sorted({(p.x, p.y) for p in points})
    xs, ys = [x for x, _ in places], [y for _, y in places]
    axis = 0 if max(xs) - min(xs) >= max(ys) - min(ys) else 1
    places.sort(key=lambda q: (q[axis], q[1 - axis]))
    k = max(1, min(k, len(places)))
    block = {q: i * k // len(places) for i, q in enumerate(places)}
    return [block[(p.x, p.y)] for p in points]


@dataclass
class Unit:
    name: str
    room: RoomErrors
    members: list[int]  # indexes of the room's points


@dataclass
class Figure:
    median: float
    p90: float
    points: int

    def better_than(self, other: Figure) -> bool:
        return self.median < other.median and self.p90 < other.p90

    def as_json(self) -> dict[str, float | int]:
        return {"median_m": round(self.median, 3), "p90_m": round(self.p90, 3), "points": self.points}


def _figure(errors: Sequence[float | None]) -> Figure:
    kept = [e for e in errors if e is not None]
    return Figure(quantile(kept, 0.5), quantile(kept, 0.9), len(kept))


def pooled(errors: Sequence[Sequence[float | None]]) -> Figure:
    """The figure of several rooms' per-point errors together."""
    return _figure([e for errs in errors for e in errs])


@dataclass
class Fold:
    unit: str
    chosen: LocateParams
    errors: dict[str, list[float | None]]  # engine (chosen), defaults, and each baseline, on the held-out points
    has_plan: bool

    def figures(self) -> dict[str, Figure]:
        return {name: _figure(errs) for name, errs in self.errors.items()}


@dataclass
class NestedCV:
    mode: str  # "rooms" or "blocks"
    folds: list[Fold]

    def overall(self, planned_only: bool = False) -> dict[str, Figure]:
        folds = [f for f in self.folds if f.has_plan or not planned_only]
        names = self.folds[0].errors if self.folds else {}
        return {name: _figure([e for f in folds for e in f.errors[name]]) for name in names}

    def goal(self) -> tuple[bool, dict[str, Figure]]:
        """Median and p90 within the goal and better than both baselines, over the held-out points of the rooms
        with a floor plan (without one the engine is the centroid and no parameter is chosen)."""
        figs = self.overall(planned_only=True)
        if not figs or not figs["engine"].points:
            return False, figs
        engine = figs["engine"]
        met = (engine.median <= GOAL_MEDIAN_M and engine.p90 <= GOAL_P90_M
               and all(engine.better_than(figs[b]) for b in BASELINES))
        return met, figs


def _key(params: LocateParams) -> Key:
    return params.exponent, params.wall_db, params.independent_readings


def nested_cv(rooms: Sequence[RoomErrors], base: LocateParams, blocks: int = BLOCKS) -> NestedCV:
    if len(rooms) >= 2:
        mode = "rooms"
        units = [Unit(r.name, r, list(range(len(r.points)))) for r in rooms]
    elif rooms:
        mode = "blocks"
        room = rooms[0]
        of = spatial_blocks(room.points, blocks)
        units = [Unit(f"{room.name} block {b + 1}/{max(of) + 1}", room, [i for i, v in enumerate(of) if v == b])
                 for b in sorted(set(of))]
    else:
        return NestedCV("rooms", [])
    default = _key(base)
    folds = []
    for held in units:
        train = [u for u in units if u is not held]

        def inner(g: Key, train: list[Unit] = train) -> tuple[float, int]:
            scores = [score([u.room.grid[g][i] for i in u.members]) for u in train]
            scores = [s for s in scores if math.isfinite(s)]
            # Equal scores (a knob the training rooms cannot tell apart, e.g. dB per obstacle where none has
            # obstacles): the fewest knobs moved from the defaults.
            return (round(sum(scores) / len(scores), 9) if scores else math.inf), sum(
                a != b for a, b in zip(g, default, strict=True))

        best = min(GRID, key=inner)
        chosen = replace(base, exponent=best[0], wall_db=best[1], independent_readings=best[2])
        room = held.room
        errors = {"engine": [room.grid[best][i] for i in held.members]}
        if default in room.grid:
            errors["defaults"] = [room.grid[default][i] for i in held.members]
        for name in BASELINES:
            errors[name] = [room.baselines[name][i] for i in held.members]
        folds.append(Fold(held.name, chosen, errors, room.has_plan))
    return NestedCV(mode, folds)


def describe(params: LocateParams) -> str:
    return f"n={params.exponent:g} w={params.wall_db:g} nu={params.independent_readings:g}"
