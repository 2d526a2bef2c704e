"""Recorded positioning data as the evaluation replays it: samples of readings grouped into points, per room.

A *room* (:class:`Dataset`) is one measured area: its anchors (beacon positions, metres), its floor plan
(where a person can stand, what attenuates) and its points. A *point* is one person standing at one
known place for a few seconds: consecutive samples, each the readings heard in it. Loaders live in
:mod:`mallapp.domain.proximity.evaluate` (the two shared data sets) and :mod:`.zones` (any UJI zone).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState
from mallapp.domain.proximity.floorplan import FloorPlan, Geometry
from mallapp.domain.proximity.locate import (
    LocateParams,
    Locator,
    Reading,
    centroid_of_three,
    params_for_plan,
    strongest_anchor,
)
from mallapp.domain.venue import Anchor, Registry, ZoneInfo

MEASURED_POWER = -59
GOAL_MEDIAN_M, GOAL_P90_M = 1.1, 2.3
BASELINES: dict[str, Callable[[Sequence[Reading]], tuple[float, float]]] = {
    "strongest": strongest_anchor, "centroid3": centroid_of_three}
ESTIMATORS = ("engine", *BASELINES)
# The cross-validation grid of the position model (LocateParams): exponent, dB per obstacle, independent
# readings (the library's points hear 20 anchors on average: 18 hardly tempers, fewer do).
GRID = list(itertools.product((2.0, 2.5, 3.0), (0.0, 2.5, 5.0), (10.0, 14.0, 18.0)))


@dataclass
class Sample:
    t: float | None  # the sample's time (its latest reading); None when nothing was heard
    readings: list[tuple[int, int, float]]  # (anchor id, rssi, time)


@dataclass
class Point:
    x: float
    y: float
    samples: list[Sample]
    campaign: int = 0
    phone: int = 0
    power: int = 0


@dataclass
class Dataset:
    name: str
    anchors: dict[int, tuple[float, float]]
    points: list[Point]
    plan: FloorPlan | None = None
    note: str = ""
    # The data set's own beacon ids where they are not integers (anchor id -> id as written).
    beacon_names: dict[int, str] = field(default_factory=dict)


def read_rows(path: Path) -> list[list[str]]:
    """The non-empty rows of a CSV file."""
    with path.open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def registry_for(anchors: dict[int, tuple[float, float]]) -> Registry:
    """One beacon anchor per beacon, each in its own zone (the cell nearest it), all on floor 1."""
    zones = {a: ZoneInfo(a, f"cell of beacon {a}", "area", 1, None, None, None) for a in anchors}
    return Registry(1, zones, {a: Anchor(a, "beacon", a, None, None, 1, x, y, MEASURED_POWER)
                               for a, (x, y) in anchors.items()}, {})


@dataclass
class Replay:
    """The engine's filtered readings after every sample, per point (None before anything was heard)."""

    readings: list[list[list[Reading] | None]]
    engine: list[list[tuple[float, float] | None]] = field(default_factory=list)


def replay(ds: Dataset, config: EngineConfig, locate: LocateParams | None = None, per_sample: bool = True) -> Replay:
    """Feed every point's samples through a fresh member state; keep readings and positions (None: no model)."""
    engine = Engine(config, registry_for(ds.anchors), {1: ds.plan} if ds.plan else None, locate)
    out = Replay([], [])
    for point in ds.points:
        state = MemberState()
        readings: list[list[Reading] | None] = []
        positions: list[tuple[float, float] | None] = []
        for i, sample in enumerate(point.samples):
            if sample.t is not None:
                fresh = [engine.observe(state, a, rssi, t) for a, rssi, t in sample.readings]
                engine.update(state, sample.t, int(any(fresh)))
            if per_sample or i == len(point.samples) - 1:
                current = engine.readings(state)
                readings.append(current or None)
                positions.append(engine.position(state) if locate is not None and current else None)
        out.readings.append(readings)
        out.engine.append(positions)
    return out


def _zone(anchors: dict[int, tuple[float, float]], x: float, y: float) -> int:
    return min(anchors, key=lambda a: (anchors[a][0] - x) ** 2 + (anchors[a][1] - y) ** 2)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile, linear between order statistics (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    lo = int(at)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


@dataclass
class Figures:
    samples: int  # samples (or points) with an estimate
    total: int
    zone: float  # fraction whose zone is right
    median: float
    p90: float

    def better_than(self, other: Figures) -> bool:
        return self.median < other.median and self.p90 < other.p90


def figures(ds: Dataset, estimates: Sequence[tuple[Point, tuple[float, float] | None]]) -> Figures:
    errors, right = [], 0
    for point, estimate in estimates:
        if estimate is None:
            continue
        errors.append(math.hypot(estimate[0] - point.x, estimate[1] - point.y))
        right += _zone(ds.anchors, *estimate) == _zone(ds.anchors, point.x, point.y)
    n = len(errors)
    return Figures(n, len(estimates), right / n if n else math.nan, quantile(errors, 0.5), quantile(errors, 0.9))


def evaluate(ds: Dataset, run: Replay) -> dict[str, tuple[Figures, Figures]]:
    """Per estimator: (per-sample figures, per-point figures)."""
    out = {}
    for name in ESTIMATORS:
        per_sample, per_point = [], []
        for point, readings, positions in zip(ds.points, run.readings, run.engine, strict=True):
            if name == "engine":
                estimates = positions
            else:
                estimates = [BASELINES[name](r) if r else None for r in readings]
            per_sample.extend((point, e) for e in estimates)
            per_point.append((point, estimates[-1]))
        out[name] = (figures(ds, per_sample), figures(ds, per_point))
    return out


def grid_errors(ds: Dataset, geometry: Geometry | None, last: list[list[Reading] | None],
                base: LocateParams) -> dict[tuple[float, float, float], list[float | None]]:
    """Per point, the error of the engine's position model on the point's last readings, for every
    (exponent, dB per obstacle, nu) of GRID (nu only weighs the fit, so each fit serves all nus)."""
    out: dict[tuple[float, float, float], list[float | None]] = {g: [] for g in GRID}
    for exponent, wall_db in sorted({g[:2] for g in GRID}):
        params = replace(base, exponent=exponent, wall_db=wall_db)
        if ds.plan is not None:  # as Engine.position: a plan without obstacles gets the no-walls variant
            params = params_for_plan(ds.plan, params)
        locator = (Locator(geometry, params) if geometry is not None
                   else Locator.for_anchors(ds.anchors.values(), ds.plan, params))
        nus = [g[2] for g in GRID if g[:2] == (exponent, wall_db)]
        for point, readings in zip(ds.points, last, strict=True):
            fit = locator.fit(readings) if readings else None
            for nu in nus:
                if fit is None:
                    out[(exponent, wall_db, nu)].append(None)
                    continue
                x, y = locator.finish(*fit, nu, len(readings))
                out[(exponent, wall_db, nu)].append(math.hypot(x - point.x, y - point.y))
    return out


def path_loss_exponent(ds: Dataset, last: list[list[Reading] | None]) -> float:
    """The exponent n of rssi = offset - 10 n log10(d) over the filtered readings at each point's end, with an
    offset per point (phone gain, body): what presence distances should use on such a floor."""
    sxy = sxx = 0.0
    for point, readings in zip(ds.points, last, strict=True):
        if not readings or len(readings) < 2:
            continue
        xs = [10.0 * math.log10(max(math.hypot(x - point.x, y - point.y), 0.5)) for x, y, _, _ in readings]
        ys = [rssi for _, _, rssi, _ in readings]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxy += sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
        sxx += sum((x - mx) ** 2 for x in xs)
    return -sxy / sxx if sxx else math.nan


def score(errors: Sequence[float | None]) -> float:
    kept = [e for e in errors if e is not None]
    return quantile(kept, 0.5) / GOAL_MEDIAN_M + quantile(kept, 0.9) / GOAL_P90_M


def cross_validate(ds: Dataset, grid: dict[tuple[float, float, float], list[float | None]], base: LocateParams,
                   fold_of: Callable[[Point], int]) -> tuple[Figures, list[tuple[int, LocateParams]]]:
    """Choose the model's (exponent, dB per obstacle, nu) on all folds but one, score it on that one."""
    folds = sorted({fold_of(p) for p in ds.points})
    held: list[float | None] = [None] * len(ds.points)
    chosen = []
    for fold in folds:
        train = [i for i, p in enumerate(ds.points) if fold_of(p) != fold]
        best = min(GRID, key=lambda g: score([grid[g][i] for i in train]))
        chosen.append((fold, replace(base, exponent=best[0], wall_db=best[1], independent_readings=best[2])))
        for i, p in enumerate(ds.points):
            if fold_of(p) == fold:
                held[i] = grid[best][i]
    kept = [e for e in held if e is not None]
    return Figures(len(kept), len(held), math.nan, quantile(kept, 0.5), quantile(kept, 0.9)), chosen
