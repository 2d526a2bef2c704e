"""Replay recorded BLE data sets through the proximity engine and print how well it places people.

``python -m mallapp.domain.proximity.evaluate [--dataset uji_library|uci435_ibeacon_wmu|all] [--filters]``

The data sets live in ``../shared/data/ble`` beside the project (``MALL_SHARED_DATA`` or ``--data``
point elsewhere; see its README.md). Each is replayed through the real :class:`Engine`: one registry
with an anchor per beacon and one zone per beacon (the cell of the floor nearest that beacon), a
fresh member state per point, each sample's readings as one batch (``observe`` per reading at its
own time, then ``update`` at the sample's time), and ``Engine.position`` read after every batch.

Printed per data set and estimator (the engine; the strongest single reading; the centroid of the
three strongest readings weighted by received power, both on the engine's filtered readings):

- zone accuracy: the zone of the estimate (its nearest beacon) is the zone of the true position,
  per sample (after that sample's batch) and per point (after the point's last sample);
- position error, median and 90th percentile, per sample and per point.

Points: in the library, a run of consecutive samples of one phone, campaign and point id (two ids
were measured twice, so 350 points of about 6 samples, about 1 s apart; the readings' own detection
times are used); at WMU, consecutive scans (by date) with the same grid cell label. Readings go in as
the phone channel, so the engine's stale-repeat rule applies as in production. The library's floor
plan is its shelves and pillars (obs/lib.csv) within their bounding box; WMU has none.

For the library, the position model's (exponent, dB per obstacle, independent readings nu) are also
chosen by cross-validation on a small grid (on one campaign, scored on the other; on two phones,
scored on the third): those held-out figures are the honest ones, since the defaults in
``LocateParams`` are the grid's best on all points. The GOAL line judges the worse of the two
held-out splits. ``--filters`` compares the RSSI filters of ``locate.FILTERS`` over several window
lengths (seconds of reading time).

Measured power: every beacon gets -59 dBm, the iBeacon default. The engine's position estimate
profiles out an offset common to all readings and the baselines only rank or weight the readings, so
no figure here depends on it (presence distances would).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState
from mallapp.domain.proximity.locate import (
    FILTERS,
    FloorPlan,
    Geometry,
    LocateParams,
    Locator,
    Reading,
    centroid_of_three,
    strongest_anchor,
)
from mallapp.domain.venue import Anchor, Registry, ZoneInfo

DATASETS = ("uji_library", "uci435_ibeacon_wmu")
MEASURED_POWER = -59
GOAL_MEDIAN_M, GOAL_P90_M = 1.1, 2.3
BASELINES: dict[str, Callable[[Sequence[Reading]], tuple[float, float]]] = {
    "strongest": strongest_anchor, "centroid3": centroid_of_three}
ESTIMATORS = ("engine", *BASELINES)
# The cross-validation grid of the position model (LocateParams): exponent, dB per obstacle, independent
# readings (the library's points hear 20 anchors on average: 18 hardly tempers, fewer do).
GRID = list(itertools.product((2.0, 2.5, 3.0), (0.0, 2.5, 5.0), (10.0, 14.0, 18.0)))
FILTER_WINDOWS_S = (2.0, 5.0, 10.0, 20.0)

# uci435: the iBeacons' places, read off iBeacon_Layout.jpg (the data set gives them only there).
# Columns A.. and rows 1.. are the layout's grid; x = column index + fraction (A spans 0-1), y = row - 1
# + fraction (row 1 spans 0-1, rows grow downwards as drawn). Measured at the centres of the green
# markers in the 960x672 image, whose grid pitch is 26.83 px with column A starting at x = 100.4 px and
# row 1 at y = 104.5 px.
UCI_BEACONS: dict[int, tuple[str, float, float]] = {
    3001: ("F09", 5.15, 8.10), 3002: ("J04", 9.75, 3.35), 3003: ("N04", 13.75, 3.35), 3004: ("S04", 18.15, 3.35),
    3005: ("J07", 9.70, 6.55), 3006: ("N07", 13.75, 6.55), 3007: ("S07", 18.10, 6.60), 3008: ("J10", 9.65, 9.55),
    3009: ("D15", 3.90, 14.70), 3010: ("J15", 9.60, 14.75), 3011: ("N15", 13.50, 14.70),
    3012: ("R15", 17.85, 14.65), 3013: ("W15", 22.65, 14.70),
}
# The data set does not give the grid's scale. A cell is taken as 3 m: the stairwells and lift shafts
# drawn on the layout are one to two cells across. Errors are printed in metres at that scale.
UCI_CELL_M = 3.0


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


@dataclass
class Dataset:
    name: str
    anchors: dict[int, tuple[float, float]]
    points: list[Point]
    plan: FloorPlan | None = None
    note: str = ""


def data_root(override: str | None = None) -> Path:
    """The shared data directory: --data, else MALL_SHARED_DATA, else ../shared/data beside the project."""
    if override:
        return Path(override)
    if os.environ.get("MALL_SHARED_DATA"):
        return Path(os.environ["MALL_SHARED_DATA"])
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def load_uji_library(root: Path) -> Dataset:
    """The UJI library zone: 24 beacons, shelves and pillars, fingerprints as points of ~6 samples."""
    base = root / "ble" / "uji_library"
    dep = _rows(base / "dep" / "lib.csv")[1:]
    ids = [int(r[0]) for r in dep]
    anchors = {int(r[0]): (float(r[1]), float(r[2])) for r in dep}
    polygons: dict[str, list[tuple[float, float]]] = {}
    for r in _rows(base / "obs" / "lib.csv")[1:]:
        polygons.setdefault(r[0], []).append((float(r[1]), float(r[2])))
    obstacles = tuple(tuple(p[:-1] if p[0] == p[-1] else p) for p in polygons.values())
    xs = [x for poly in obstacles for x, _ in poly]
    ys = [y for poly in obstacles for _, y in poly]
    # The floor: the area the supporting material maps (the obstacles' bounding box).
    plan = FloorPlan((min(xs), min(ys), max(xs), max(ys)), obstacles)
    rss = _rows(base / "rss" / "lib_rss.csv")
    tms = _rows(base / "rss" / "lib_tms.csv")
    crd = _rows(base / "rss" / "lib_crd.csv")
    fid = [int(r[0]) for r in _rows(base / "rss" / "lib_ids.csv")]
    points: list[Point] = []
    previous: tuple[int, int, int, int] | None = None
    for values, times, (x, y), ident in zip(rss, tms, crd, fid, strict=True):
        phone, campaign, point, sample = ident // 10**7, (ident // 10**5) % 10, (ident // 100) % 1000, ident % 100
        readings = [(ids[i], int(v), int(t) / 1e9) for i, (v, t) in enumerate(zip(values, times, strict=True))
                    if int(v) != 100]
        # A point is a run of consecutive samples; two points were measured twice (samples 1-6 again).
        if previous is None or previous[:3] != (phone, campaign, point) or sample <= previous[3]:
            points.append(Point(float(x), float(y), [], campaign, phone))
        previous = (phone, campaign, point, sample)
        points[-1].samples.append(Sample(max((t for _, _, t in readings), default=None), readings))
    return Dataset("uji_library", anchors, points, plan, "metres; floor plan: shelves and pillars (obs/lib.csv)")


def _uci_cell(label: str) -> tuple[float, float]:
    return (ord(label[0]) - ord("A") + 0.5) * UCI_CELL_M, (int(label[1:]) - 0.5) * UCI_CELL_M


def load_uci435(root: Path) -> Dataset:
    """UCI 435 (WMU library): 13 iBeacons, labelled scans; consecutive scans at one cell form a point."""
    base = root / "ble" / "uci435_ibeacon_wmu"
    with (base / "iBeacon_RSSI_Labeled.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    anchors = {b: (x * UCI_CELL_M, y * UCI_CELL_M) for b, (_, x, y) in UCI_BEACONS.items()}
    scans = sorted(((datetime.strptime(r["date"], "%m-%d-%Y %H:%M:%S").timestamp(), r) for r in rows),
                   key=lambda tr: tr[0])
    points: list[Point] = []
    label = None
    for t, r in scans:
        readings = [(b, int(r[f"b{b}"]), t) for b in UCI_BEACONS if int(r[f"b{b}"]) > -200]
        if r["location"] != label:
            label = r["location"]
            points.append(Point(*_uci_cell(label), []))
        points[-1].samples.append(Sample(t if readings else None, readings))
    return Dataset("uci435_ibeacon_wmu", anchors, points, None,
                   f"metres at {UCI_CELL_M:g} m per grid cell (assumed); no floor plan")


LOADERS = {"uji_library": load_uji_library, "uci435_ibeacon_wmu": load_uci435}


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
        locator = (Locator(geometry, params) if geometry is not None
                   else Locator.for_anchors(ds.anchors.values(), ds.plan, params))
        nus = [g[2] for g in GRID if g[:2] == (exponent, wall_db)]
        for point, readings in zip(ds.points, last, strict=True):
            fit = locator.fit(readings) if readings else None
            for nu in nus:
                if fit is None:
                    out[(exponent, wall_db, nu)].append(None)
                    continue
                start, cells, losses = fit
                x, y = locator.posterior_mean(cells, losses, nu, len(readings)) if cells else start
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


def _score(errors: Sequence[float | None]) -> float:
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
        best = min(GRID, key=lambda g: _score([grid[g][i] for i in train]))
        chosen.append((fold, replace(base, exponent=best[0], wall_db=best[1], independent_readings=best[2])))
        for i, p in enumerate(ds.points):
            if fold_of(p) == fold:
                held[i] = grid[best][i]
    kept = [e for e in held if e is not None]
    return Figures(len(kept), len(held), math.nan, quantile(kept, 0.5), quantile(kept, 0.9)), chosen


def _row(name: str, fs: tuple[Figures, Figures]) -> str:
    s, p = fs
    return (f"  {name:<11} {s.zone:7.1%} {p.zone:7.1%}   {s.median:6.2f} {s.p90:6.2f}   {p.median:6.2f} {p.p90:6.2f}"
            f"   {s.samples}/{s.total} samples, {p.samples}/{p.total} points")


def report(name: str, root: Path, config: EngineConfig, locate: LocateParams, filters: bool,
           out: TextIO | None = None) -> bool | None:
    """Print the tables of one data set; return whether the goal is met (None where it does not apply)."""
    out = out or sys.stdout
    started = time.perf_counter()
    ds = LOADERS[name](root)
    geometry = Geometry(ds.plan, locate.step_m) if ds.plan else None
    run = replay(ds, config, locate)
    results = evaluate(ds, run)
    n_samples = sum(len(p.samples) for p in ds.points)
    print(f"\n== {name}: {len(ds.anchors)} beacons, {len(ds.points)} points, {n_samples} samples; {ds.note}",
          file=out)
    model = (f"model exponent {locate.exponent:g}, {locate.wall_db:g} dB per obstacle, nu "
             f"{locate.independent_readings:g} independent readings, within {locate.radius_m:g} m"
             if ds.plan else f"no floor plan, so the weighted centroid (k {locate.k}, sharpness {locate.sharpness:g})")
    print(f"   filter {config.rssi_filter} over {config.window_s:g} s; engine position: {model}", file=out)
    print("  estimator   zone/sample zone/point  err/sample med/p90  err/point med/p90", file=out)
    for est in ESTIMATORS:
        print(_row(est, results[est]), file=out)
    last = [r[-1] for r in run.readings]
    print(f"  path-loss exponent of the filtered readings (offset per point): {path_loss_exponent(ds, last):.2f}",
          file=out)
    goal = None
    if name == "uji_library":
        held = {}
        grid = grid_errors(ds, geometry, last, locate)
        for label, fold_of in (("campaign", lambda p: p.campaign), ("phone", lambda p: p.phone)):
            fig, chosen = cross_validate(ds, grid, locate, fold_of)
            held[label] = fig
            picks = "; ".join(f"{label} {fold}: n={c.exponent:g} w={c.wall_db:g} nu={c.independent_readings:g}"
                              for fold, c in chosen)
            print(f"  engine, held out by {label:<8} per point {fig.median:6.2f} {fig.p90:6.2f}   (chosen on the "
                  f"others: {picks})", file=out)
        everywhere = min(GRID, key=lambda g: _score(grid[g]))
        kept = [e for e in grid[everywhere] if e is not None]
        print(f"  (the grid's best on all points, in-sample: n={everywhere[0]:g} w={everywhere[1]:g} "
              f"nu={everywhere[2]:g}, {quantile(kept, 0.5):.2f} / {quantile(kept, 0.9):.2f})", file=out)
        engine_point = results["engine"][1]
        beats = all(engine_point.better_than(results[b][1]) for b in BASELINES)
        worst = max(held.values(), key=lambda f: _score([f.median, f.p90]))
        goal = (beats and worst.median <= GOAL_MEDIAN_M and worst.p90 <= GOAL_P90_M
                and all(worst.better_than(results[b][1]) for b in BASELINES))
        print(f"GOAL {name} per point: median <= {GOAL_MEDIAN_M} m, p90 <= {GOAL_P90_M} m, better than both "
              f"baselines: {'MET' if goal else 'NOT MET'} (held out, worst of the two splits: "
              f"{worst.median:.2f} / {worst.p90:.2f}; defaults on all points: {engine_point.median:.2f} / "
              f"{engine_point.p90:.2f}; strongest {results['strongest'][1].median:.2f} / "
              f"{results['strongest'][1].p90:.2f}; centroid3 {results['centroid3'][1].median:.2f} / "
              f"{results['centroid3'][1].p90:.2f})", file=out)
    if filters:
        print("  filters (engine per point; centroid3 per point for reference)", file=out)
        print("  filter        window  zone   med    p90   | centroid3 med  p90", file=out)
        best = None
        for filt, window in itertools.product(FILTERS, FILTER_WINDOWS_S):
            cfg = replace(config, rssi_filter=filt, window_s=window)
            r = evaluate(ds, replay(ds, cfg, locate, per_sample=False))
            e, c = r["engine"][1], r["centroid3"][1]
            score = _score([e.median, e.p90])
            if best is None or score < best[0]:
                best = (score, filt, window)
            print(f"  {filt:<13} {window:5.0f} s {e.zone:5.1%} {e.median:6.2f} {e.p90:6.2f}   |   {c.median:6.2f} "
                  f"{c.p90:6.2f}", file=out)
        assert best is not None
        print(f"  best filter: {best[1]} over {best[2]:g} s", file=out)
    print(f"  ({time.perf_counter() - started:.1f} s)", file=out)
    return goal


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mallapp.domain.proximity.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "all"), default="all")
    parser.add_argument("--filters", action="store_true", help="compare the RSSI filters and window lengths")
    parser.add_argument("--filter", default="max", choices=sorted(FILTERS), help="the engine's RSSI filter")
    parser.add_argument("--window", type=float, default=10.0, help="the filter's window, seconds")
    parser.add_argument("--data", help="the shared data directory (default: MALL_SHARED_DATA or ../shared/data)")
    args = parser.parse_args(argv)
    root = data_root(args.data)
    if not (root / "ble").is_dir():
        print(f"no BLE data under {root} (set MALL_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    config = replace(EngineConfig(), rssi_filter=args.filter, window_s=args.window)
    for name in DATASETS if args.dataset == "all" else (args.dataset,):
        report(name, root, config, LocateParams(), args.filters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
