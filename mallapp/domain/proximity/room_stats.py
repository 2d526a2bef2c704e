"""How a recorded room's readings behave, to check a simulated room against a real one (docs/positioning.md).

``python -m mallapp.domain.proximity.room_stats --zone DIR...`` prints, for every zone given (the library
is one: ``--zone ../shared/data/ble/uji_library``): the spread of one beacon's readings within a point (median over point and beacon
of their standard deviation, points of at least 3 readings), the share of samples that hear a beacon by
its distance (2 m bins), the residual spread about a log-distance fit with one exponent per room and an
offset per point (all readings; for the library also only those whose straight path crosses no
obstacle), beacons heard per sample, area per beacon (the outline's area, else the extent's box) and the
median distance from a measured place to its nearest beacon.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from mallapp.domain.proximity import zones
from mallapp.domain.proximity.floorplan import Geometry
from mallapp.domain.proximity.recordings import Dataset


def _area(ds: Dataset) -> float:
    assert ds.plan is not None
    if ds.plan.outline:
        poly = ds.plan.outline
        return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True))) / 2
    x0, y0, x1, y1 = ds.plan.bounds
    return (x1 - x0) * (y1 - y0)


def residual_spread(ds: Dataset, line_of_sight: bool = False) -> tuple[float, float]:
    """(fitted exponent, standard deviation of the residuals) of rssi = offset(point) - 10 n log10(d)."""
    geo = Geometry(ds.plan, 0.5) if line_of_sight and ds.plan is not None and ds.plan.obstacles else None
    by_point: list[list[tuple[float, float]]] = []
    for p in ds.points:
        rows = []
        for s in p.samples:
            for a, rssi, _ in s.readings:
                x, y = ds.anchors[a]
                if geo is not None:
                    sx, sy = geo.source(x, y)
                    if any(geo._blocked(sx + (p.x - sx) * k / 20, sy + (p.y - sy) * k / 20) for k in range(1, 20)):
                        continue
                rows.append((10 * math.log10(max(math.hypot(x - p.x, y - p.y), 0.5)), float(rssi)))
        if len(rows) >= 2:
            by_point.append(rows)
    sxy = sxx = 0.0
    for rows in by_point:
        ml, mr = statistics.fmean(r[0] for r in rows), statistics.fmean(r[1] for r in rows)
        sxy += sum((lv - ml) * (rv - mr) for lv, rv in rows)
        sxx += sum((lv - ml) ** 2 for lv, _ in rows)
    n = -sxy / sxx
    residuals = []
    for rows in by_point:
        offset = statistics.fmean(rv + n * lv for lv, rv in rows)
        residuals += [rv + n * lv - offset for lv, rv in rows]
    return n, statistics.pstdev(residuals)


def describe(ds: Dataset) -> list[str]:
    spreads, heard, detected = [], [], {}
    for p in ds.points:
        per_beacon: dict[int, list[int]] = {}
        for s in p.samples:
            heard.append(len(s.readings))
            for a, rssi, _ in s.readings:
                per_beacon.setdefault(a, []).append(rssi)
            present = {a for a, _, _ in s.readings}
            for a, (x, y) in ds.anchors.items():
                b = min(int(math.hypot(x - p.x, y - p.y) // 2) * 2, 16)
                hits = detected.setdefault(b, [0, 0])
                hits[0] += a in present
                hits[1] += 1
        spreads += [statistics.pstdev(v) for v in per_beacon.values() if len(v) >= 3]
    n, spread = residual_spread(ds)
    lines = [f"== {ds.name}: {len(ds.anchors)} beacons, {len(ds.points)} points",
             f"  spread within a point, per beacon: median {statistics.median(spreads):.2f} dB",
             "  heard per sample by distance: " + " ".join(f"{b}-{b + 2} m {h / t:.2f}"
                                                         for b, (h, t) in sorted(detected.items())),
             f"  residual about the path-loss fit: {spread:.2f} dB (exponent {n:.2f})"]
    if ds.plan is not None and ds.plan.obstacles:
        n_los, spread_los = residual_spread(ds, line_of_sight=True)
        lines.append(f"  ... on line-of-sight paths only: {spread_los:.2f} dB (exponent {n_los:.2f})")
    if ds.plan is not None:
        lines.append(f"  beacons heard per sample {statistics.fmean(heard):.1f}; {_area(ds) / len(ds.anchors):.1f} m^2 "
                     "per beacon; nearest beacon to a measured place, median "
                     f"{statistics.median(min(math.dist(q, (p.x, p.y)) for q in ds.anchors.values()) for p in ds.points):.2f} m")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mallapp.domain.proximity.room_stats",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--zone", action="append", default=[], metavar="DIR", required=True,
                        help="a UJI-style zone directory (the library: ../shared/data/ble/uji_library); repeatable")
    args = parser.parse_args(argv)
    for zone in args.zone:
        print("\n".join(describe(zones.load_zone(Path(zone)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
