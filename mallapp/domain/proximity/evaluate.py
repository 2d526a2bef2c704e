"""Replay recorded BLE data sets through the proximity engine and print how well it places people.

``python -m mallapp.domain.proximity.evaluate [--dataset uji_library|uci435_ibeacon_wmu|all|none]
[--zone DIR [--prefix P] [--outline FILE]]... [--json] [--filters]`` (docs/positioning.md)

The data sets live in ``../shared/data/ble`` beside the project (``MALL_SHARED_DATA`` or ``--data``
point elsewhere; see its README.md). ``--zone DIR`` (repeatable) adds any room laid out as the UJI
data set's zones (:mod:`.zones`: ``dep/``, optional ``obs/``, ``rss/`` with the zone's own prefix, any
beacon ids, 100 for "not heard"; the floor's extent from ``outline/P.csv`` or ``--outline``, else the
beacons and obstacles plus 1 m). With ``--zone`` the shared data sets are left out unless ``--dataset``
names them. Each room is replayed through the real :class:`Engine`: one registry with an anchor per
beacon and one zone per beacon (the cell of the floor nearest that beacon), a fresh member state per
point, each sample's readings as one batch (``observe`` per reading at its own time, then ``update`` at
the sample's time), and ``Engine.position`` read after every batch.

Printed per room and estimator (the engine; the strongest single reading; the centroid of the three
strongest readings weighted by received power, both on the engine's filtered readings):

- zone accuracy: the zone of the estimate (its nearest beacon) is the zone of the true position,
  per sample (after that sample's batch) and per point (after the point's last sample);
- position error, median and 90th percentile, per sample and per point.

Points: in the library, a run of consecutive samples of one phone, campaign and point id (two ids
were measured twice, so 350 points of about 6 samples, about 1 s apart; the readings' own detection
times are used); in a zone the same, kept apart by transmit power too; at WMU, consecutive scans (by
date) with the same grid cell label. Readings go in as the phone channel, so the engine's stale-repeat
rule applies as in production. The library's floor plan is its shelves and pillars (obs/lib.csv) within
their bounding box (``--library-extent margin``: the zones' rule instead); WMU has none. A plan without
obstacles (a zone without obs/, the library's ``unmapped``) gets the no-walls variant, as in the engine
(``locate.params_for_plan``). ``--write-synthetic-zone DIR [--beacon-spacing M]`` writes the synthetic
office (``zones.write_synthetic_zone``); ``python -m mallapp.domain.proximity.room_stats`` compares its
statistics with the library's.

The figure that counts is the nested cross-validation's (:mod:`.nested_cv`), printed last: leave one
room out over every room of the run (spatial blocks when there is one), the parameters (exponent, dB per
obstacle, independent readings nu) chosen on the other rooms only; its GOAL line judges the held-out
points of the rooms with a floor plan against median <= 1.3 m, p90 <= 2.3 m and both baselines. For the
library, the older within-room splits are printed too (one campaign held out, one phone held out) with
their own GOAL line. ``--filters`` compares the RSSI filters of ``locate.FILTERS`` over several window
lengths (seconds of reading time). ``--json`` prints one JSON object instead of the tables: per point
``{"engine": {"median_m", "p90_m", ...}, "strongest": {...}, "centroid3": {...}}`` of the room (pooled
over the rooms when there are several, the engine with the defaults), ``"rooms"`` per room and
``"nested_cv"``.

Measured power: every beacon gets -59 dBm, the iBeacon default. The engine's position estimate
profiles out an offset common to all readings and the baselines only rank or weight the readings, so
no figure here depends on it (presence distances would).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from mallapp.domain.proximity import nested_cv, zones
from mallapp.domain.proximity.engine import EngineConfig
from mallapp.domain.proximity.floorplan import FloorPlan
from mallapp.domain.proximity.locate import FILTERS, LocateParams, params_for_plan
from mallapp.domain.proximity.recordings import (  # noqa: F401 (re-exported: the evaluation's vocabulary)
    BASELINES,
    ESTIMATORS,
    GOAL_MEDIAN_M,
    GOAL_P90_M,
    GRID,
    MEASURED_POWER,
    Dataset,
    Figures,
    Point,
    Replay,
    Sample,
    cross_validate,
    evaluate,
    grid_errors,
    path_loss_exponent,
    quantile,
    read_rows,
    registry_for,
    replay,
    score,
)

DATASETS = ("uji_library", "uci435_ibeacon_wmu")
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


def data_root(override: str | None = None) -> Path:
    """The shared data directory: --data, else MALL_SHARED_DATA, else ../shared/data beside the project."""
    if override:
        return Path(override)
    if os.environ.get("MALL_SHARED_DATA"):
        return Path(os.environ["MALL_SHARED_DATA"])
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def load_uji_library(root: Path, extent: str = "obstacles") -> Dataset:
    """The UJI library zone: 24 beacons, shelves and pillars, fingerprints as points of ~6 samples.

    Its floor (the data set gives no outline): ``extent`` "obstacles" is the obstacles' bounding box (the
    area the supporting material maps; every measured place is inside it), "margin" the rule of zones
    without an outline (beacons and obstacles plus 1 m, :data:`zones.EXTENT_MARGIN_M`); for comparison,
    "unmapped" the box without the obstacles and "none" no plan (the engine's weighted centroid)."""
    base = root / "ble" / "uji_library"
    dep = read_rows(base / "dep" / "lib.csv")[1:]
    ids = [int(r[0]) for r in dep]
    anchors = {int(r[0]): (float(r[1]), float(r[2])) for r in dep}
    polygons: dict[str, list[tuple[float, float]]] = {}
    for r in read_rows(base / "obs" / "lib.csv")[1:]:
        polygons.setdefault(r[0], []).append((float(r[1]), float(r[2])))
    obstacles = tuple(tuple(p[:-1] if p[0] == p[-1] else p) for p in polygons.values())
    xs = [x for poly in obstacles for x, _ in poly]
    ys = [y for poly in obstacles for _, y in poly]
    plan: FloorPlan | None = FloorPlan((min(xs), min(ys), max(xs), max(ys)), obstacles)
    if extent == "margin":
        plan = FloorPlan.extent(anchors.values(), obstacles, zones.EXTENT_MARGIN_M)
    elif extent == "unmapped":  # the box without its shelves: a floor whose obstacles nobody mapped
        plan = FloorPlan((min(xs), min(ys), max(xs), max(ys)))
    elif extent == "none":  # no plan: the engine falls back to the weighted centroid
        plan = None
    rss = read_rows(base / "rss" / "lib_rss.csv")
    tms = read_rows(base / "rss" / "lib_tms.csv")
    crd = read_rows(base / "rss" / "lib_crd.csv")
    fid = [int(r[0]) for r in read_rows(base / "rss" / "lib_ids.csv")]
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
    return Dataset("uji_library", anchors, points, plan, "metres; floor plan: " + {
        "margin": "shelves and pillars (obs/lib.csv) within beacons and obstacles + 1 m",
        "unmapped": "the obstacles' bounding box without the obstacles", "none": "none"}.get(
        extent, "shelves and pillars (obs/lib.csv) within their bounding box"))


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


def _row(name: str, fs: tuple[Figures, Figures]) -> str:
    s, p = fs
    return (f"  {name:<11} {s.zone:7.1%} {p.zone:7.1%}   {s.median:6.2f} {s.p90:6.2f}   {p.median:6.2f} {p.p90:6.2f}"
            f"   {s.samples}/{s.total} samples, {p.samples}/{p.total} points")


def _figures_json(fs: tuple[Figures, Figures]) -> dict[str, Any]:
    s, p = fs
    return {"median_m": round(p.median, 3), "p90_m": round(p.p90, 3), "zone_accuracy": round(p.zone, 4),
            "points": p.samples, "per_sample": {"median_m": round(s.median, 3), "p90_m": round(s.p90, 3),
                                                "zone_accuracy": round(s.zone, 4), "samples": s.samples}}


def report(ds: Dataset, config: EngineConfig, locate: LocateParams, filters: bool,
           out: TextIO | None = None) -> tuple[bool | None, dict[str, Any], nested_cv.RoomErrors]:
    """Print the tables of one room; return whether the library's goal is met (None where it does not apply),
    its figures as JSON and its errors for the nested cross-validation."""
    out = out or sys.stdout
    started = time.perf_counter()
    run = replay(ds, config, locate)
    results = evaluate(ds, run)
    n_samples = sum(len(p.samples) for p in ds.points)
    print(f"\n== {ds.name}: {len(ds.anchors)} beacons, {len(ds.points)} points, {n_samples} samples; {ds.note}",
          file=out)
    used = params_for_plan(ds.plan, locate) if ds.plan else locate
    model = (f"model exponent {used.exponent:g}, {used.wall_db:g} dB per obstacle, nu "
             f"{used.independent_readings:g} independent readings, within {used.radius_m:g} m"
             + ("" if ds.plan.obstacles else f" (no obstacles: the no-walls variant, {used.centroid_share:g} of the "
                "way back to the weighted centroid; the exponent is not chosen)")
             if ds.plan else f"no floor plan, so the weighted centroid (k {locate.k}, sharpness {locate.sharpness:g})")
    print(f"   filter {config.rssi_filter} over {config.window_s:g} s; engine position: {model}", file=out)
    print("  estimator   zone/sample zone/point  err/sample med/p90  err/point med/p90", file=out)
    for est in ESTIMATORS:
        print(_row(est, results[est]), file=out)
    last = [r[-1] for r in run.readings]
    print(f"  path-loss exponent of the filtered readings (offset per point): {path_loss_exponent(ds, last):.2f}",
          file=out)
    room = nested_cv.room_errors(ds, last, locate)
    doc: dict[str, Any] = {name: _figures_json(results[name]) for name in ESTIMATORS}
    doc["note"] = ds.note
    goal = None
    if ds.name == "uji_library":
        held = {}
        for label, fold_of in (("campaign", lambda p: p.campaign), ("phone", lambda p: p.phone)):
            fig, chosen = cross_validate(ds, room.grid, locate, fold_of)
            held[label] = fig
            picks = "; ".join(f"{label} {fold}: n={c.exponent:g} w={c.wall_db:g} nu={c.independent_readings:g}"
                              for fold, c in chosen)
            print(f"  engine, held out by {label:<8} per point {fig.median:6.2f} {fig.p90:6.2f}   (chosen on the "
                  f"others: {picks})", file=out)
        everywhere = min(GRID, key=lambda g: score(room.grid[g]))
        kept = [e for e in room.grid[everywhere] if e is not None]
        print(f"  (the grid's best on all points, in-sample: n={everywhere[0]:g} w={everywhere[1]:g} "
              f"nu={everywhere[2]:g}, {quantile(kept, 0.5):.2f} / {quantile(kept, 0.9):.2f})", file=out)
        engine_point = results["engine"][1]
        beats = all(engine_point.better_than(results[b][1]) for b in BASELINES)
        worst = max(held.values(), key=lambda f: score([f.median, f.p90]))
        goal = (beats and worst.median <= GOAL_MEDIAN_M and worst.p90 <= GOAL_P90_M
                and all(worst.better_than(results[b][1]) for b in BASELINES))
        print(f"GOAL {ds.name} per point: median <= {GOAL_MEDIAN_M} m, p90 <= {GOAL_P90_M} m, better than both "
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
            value = score([e.median, e.p90])
            if best is None or value < best[0]:
                best = (value, filt, window)
            print(f"  {filt:<13} {window:5.0f} s {e.zone:5.1%} {e.median:6.2f} {e.p90:6.2f}   |   {c.median:6.2f} "
                  f"{c.p90:6.2f}", file=out)
        assert best is not None
        print(f"  best filter: {best[1]} over {best[2]:g} s", file=out)
    print(f"  ({time.perf_counter() - started:.1f} s)", file=out)
    return goal, doc, room


def report_nested(rooms: Sequence[nested_cv.RoomErrors], locate: LocateParams, out: TextIO) -> dict[str, Any]:
    """Print the nested cross-validation (per outer fold and overall); return it as JSON."""
    cv = nested_cv.nested_cv(rooms, locate)
    unit = "room" if cv.mode == "rooms" else "spatial block"
    print(f"\n== nested cross-validation, leave one {unit} out ({len(cv.folds)} folds; the parameters "
          f"(exponent n, dB per obstacle w, nu) chosen on the other {unit}s only)", file=out)
    print("  held out                          chosen            engine med/p90  defaults med/p90  "
          "strongest med/p90  centroid3 med/p90  points", file=out)
    folds = []
    for fold in cv.folds:
        figs = fold.figures()
        d = figs.get("defaults")
        print(f"  {fold.unit[:33]:<33} {nested_cv.describe(fold.chosen):<17} {figs['engine'].median:6.2f} "
              f"{figs['engine'].p90:6.2f}   {d.median if d else float('nan'):6.2f} {d.p90 if d else float('nan'):6.2f}"
              f"     {figs['strongest'].median:6.2f} {figs['strongest'].p90:6.2f}     {figs['centroid3'].median:6.2f} "
              f"{figs['centroid3'].p90:6.2f}   {figs['engine'].points}"
              + ("" if fold.has_plan else "   (no floor plan: the engine is the centroid here)"), file=out)
        folds.append({"held_out": fold.unit, "floor_plan": fold.has_plan,
                      "chosen": {"exponent": fold.chosen.exponent, "wall_db": fold.chosen.wall_db,
                                 "independent_readings": fold.chosen.independent_readings},
                      **{name: f.as_json() for name, f in figs.items()}})
    overall = cv.overall()
    met, judged = cv.goal()
    for label, figs in (("overall", overall), ("with a floor plan", judged)):
        if figs and figs["engine"].points:
            print(f"  {label:<51} {figs['engine'].median:6.2f} {figs['engine'].p90:6.2f}   "
                  f"{figs['defaults'].median:6.2f} {figs['defaults'].p90:6.2f}     {figs['strongest'].median:6.2f} "
                  f"{figs['strongest'].p90:6.2f}     {figs['centroid3'].median:6.2f} {figs['centroid3'].p90:6.2f}   "
                  f"{figs['engine'].points}", file=out)
    if judged and judged["engine"].points:
        e = judged["engine"]
        print(f"GOAL unseen rooms per point (nested CV, folds with a floor plan): median <= "
              f"{nested_cv.GOAL_MEDIAN_M} m, p90 <= {nested_cv.GOAL_P90_M} m, better than both baselines: "
              f"{'MET' if met else 'NOT MET'} ({e.median:.2f} / {e.p90:.2f})", file=out)
    return {"mode": cv.mode, "folds": folds,
            "overall": {name: f.as_json() for name, f in overall.items()},
            "with_floor_plan": {name: f.as_json() for name, f in judged.items()},
            "goal": {"median_m": nested_cv.GOAL_MEDIAN_M, "p90_m": nested_cv.GOAL_P90_M, "met": met}}


def _finite(value: Any) -> Any:
    """JSON without NaN: a figure that has no value (nothing estimated) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mallapp.proximity.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "all", "none"), default=None,
                        help="the shared data sets to replay (default: all, or none when --zone is given)")
    parser.add_argument("--zone", action="append", default=[], metavar="DIR",
                        help="a UJI-style zone directory (dep/, obs/, rss/ with the zone's prefix); repeatable")
    parser.add_argument("--prefix", help="the zone's file prefix when its directory holds several (one --zone only)")
    parser.add_argument("--outline", help="the zone's outline, x,y per row (one --zone only; default "
                                          "outline/PREFIX.csv in the zone, else beacons and obstacles + 1 m)")
    parser.add_argument("--library-extent", choices=("obstacles", "margin", "unmapped", "none"), default="obstacles",
                        help="the library's floor: the obstacles' bounding box (default); beacons and obstacles + 1 m; "
                             "the box without its obstacles; no plan (the engine's weighted centroid)")
    parser.add_argument("--write-synthetic-zone", metavar="DIR",
                        help="write the synthetic zone (zones.write_synthetic_zone; --prefix, default syn) and stop")
    parser.add_argument("--no-outline", action="store_true", help="with --write-synthetic-zone: no outline/ file")
    parser.add_argument("--beacon-spacing", type=float, metavar="M",
                        help="with --write-synthetic-zone: a beacon every M metres (2.7: the library's density) "
                             "instead of the 14 sparse ones")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--filters", action="store_true", help="compare the RSSI filters and window lengths")
    parser.add_argument("--filter", default="max", choices=sorted(FILTERS), help="the engine's RSSI filter")
    parser.add_argument("--window", type=float, default=10.0, help="the filter's window, seconds")
    parser.add_argument("--data", help="the shared data directory (default: MALL_SHARED_DATA or ../shared/data)")
    args = parser.parse_args(argv)
    if args.write_synthetic_zone:
        path = zones.write_synthetic_zone(Path(args.write_synthetic_zone), args.prefix or "syn",
                                          outline=not args.no_outline, beacon_spacing_m=args.beacon_spacing)
        print(f"wrote {path} (prefix {args.prefix or 'syn'})")
        return 0
    if len(args.zone) != 1 and (args.prefix or args.outline):
        parser.error("--prefix and --outline apply to exactly one --zone")
    dataset = args.dataset or ("none" if args.zone else "all")
    names = () if dataset == "none" else DATASETS if dataset == "all" else (dataset,)
    root = data_root(args.data)
    if names and not (root / "ble").is_dir():
        print(f"no BLE data under {root} (set MALL_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    rooms: list[Dataset] = []
    try:
        for zone in args.zone:
            rooms.append(zones.load_zone(Path(zone), args.prefix, Path(args.outline) if args.outline else None))
    except (zones.ZoneError, OSError, ValueError, IndexError) as e:
        print(f"cannot read the zone: {e}", file=sys.stderr)
        return 2
    config = replace(EngineConfig(), rssi_filter=args.filter, window_s=args.window)
    locate = LocateParams()
    out: TextIO = io.StringIO() if args.json else sys.stdout
    loaded = [load_uji_library(root, args.library_extent) if n == "uji_library" else LOADERS[n](root)
              for n in names] + rooms
    docs: dict[str, Any] = {}
    errors = []
    for ds in loaded:
        _, doc, room = report(ds, config, locate, args.filters, out)
        docs[ds.name] = doc
        errors.append(room)
    nested = report_nested(errors, locate, out) if errors else None
    if args.json:
        if len(loaded) == 1:
            result: dict[str, Any] = {name: docs[loaded[0].name][name] for name in ESTIMATORS}
        else:  # pooled over the rooms' points, the engine with the defaults
            key = (locate.exponent, locate.wall_db, locate.independent_readings)
            result = {name: nested_cv.pooled([r.grid.get(key, []) if name == "engine" else r.baselines[name]
                                              for r in errors]).as_json() for name in ESTIMATORS}
        result.update({"rooms": docs, "nested_cv": nested})
        print(json.dumps(_finite(result), ensure_ascii=False, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
