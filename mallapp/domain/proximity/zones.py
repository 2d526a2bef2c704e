"""Any UJI zone as a room of the positioning evaluation (``--zone DIR``), and a synthetic zone to develop with.

The layout is the UJI BLE data set's (Mendoza-Silva et al., Data 2019), with the zone's own file prefix
``P`` (``lib`` for the library, ``geo`` for the Geotec office area):

- ``dep/P.csv``: ``id,x,y``, one beacon per row, metres. Ids may be any text (``23``, ``B1``).
- ``obs/P.csv`` (optional): ``id,x,y[,type]``, obstacle polygons, one vertex per row, rows of one polygon
  sharing its id (closed or not). A zone without it has no obstacles.
- ``rss/P_rss.csv``: one row per fingerprint, one column per beacon in ``dep/P.csv`` order, dBm; 100 means
  "not heard". ``rss/P_crd.csv`` (``x,y``), ``rss/P_ids.csv`` (the fingerprint id) and, optionally,
  ``rss/P_tms.csv`` (per-beacon detection time, ns, 0 when not heard; without it sample k of a point is
  at k seconds). The four files may also sit in the zone's directory itself.
- ``outline/P.csv`` (optional, ours, not the data set's): the floor's outline, ``x,y`` one vertex per row
  in order around it. ``--outline FILE`` gives one from elsewhere.

Fingerprint ids: phone = id // 10^7, power = (id // 10^6) % 10, campaign = (id // 10^5) % 10,
point = (id // 100) % 1000, sample = id % 100. A *point* is a run of consecutive fingerprints with the same
phone, power, campaign and point id whose sample numbers rise (a repeat of sample 1 starts a new point).
The power digit is the beacons' transmit power setting during the fingerprint: readings at different
powers are never mixed in one point (they would look like a person moving), while the power itself
needs no calibration, since the position model profiles out an offset common to a window's readings.
Should a zone's ``dep`` file list a beacon once per power (the power in its id, the same x, y), each row
is an anchor of its own; that is right as long as one fingerprint hears one power, which the ids say.
The rss and tms files may start with a header row of beacon ids.

The floor's extent: the outline when there is one, else the box around the beacons and obstacles
widened by :data:`EXTENT_MARGIN_M` on every side (1 m: a wall-mounted beacon's room ends about there,
and measured points may sit between the outermost beacons and the wall).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from mallapp.domain.proximity.floorplan import FloorPlan, Polygon, inside
from mallapp.domain.proximity.recordings import Dataset, Point, Sample, read_rows

NOT_HEARD = 100
EXTENT_MARGIN_M = 1.0


class ZoneError(ValueError):
    """A zone directory that cannot be read (missing files, ambiguous prefix, rows that do not agree)."""


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _body(path: Path) -> list[list[str]]:
    """The rows of a CSV file without its header (a first row that is not numbers, beyond an id column)."""
    rows = read_rows(path)
    if rows and not _numeric(rows[0][1:] if len(rows[0]) > 2 else rows[0]):
        rows = rows[1:]
    return rows


def _numbers(path: Path) -> list[list[str]]:
    """The rows of an all-numbers file (rss, tms), without a header row of beacon ids if it has one."""
    rows = read_rows(path)
    if rows and not _numeric(rows[0]):
        rows = rows[1:]
    return rows


def prefixes(zone: Path) -> list[str]:
    """The prefixes of the zone's complete file sets: a dep/P.csv with a P_rss.csv beside it."""
    found = []
    for dep in sorted((zone / "dep").glob("*.csv")):
        p = dep.stem
        if (zone / "rss" / f"{p}_rss.csv").is_file() or (zone / f"{p}_rss.csv").is_file():
            found.append(p)
    return found


def detect_prefix(zone: Path, prefix: str | None = None) -> str:
    found = prefixes(zone)
    if prefix is not None:
        if prefix not in found:
            raise ZoneError(f"{zone}: no dep/{prefix}.csv with rss/{prefix}_rss.csv (found: {found or 'none'})")
        return prefix
    if len(found) != 1:
        raise ZoneError(f"{zone}: {'no zone files' if not found else 'several zones: ' + ', '.join(found)}"
                        " (expected dep/P.csv and rss/P_rss.csv; choose one with --prefix)")
    return found[0]


def _rss_file(zone: Path, prefix: str, kind: str) -> Path | None:
    for path in (zone / "rss" / f"{prefix}_{kind}.csv", zone / f"{prefix}_{kind}.csv"):
        if path.is_file():
            return path
    return None


def read_outline(path: Path) -> Polygon:
    """An outline file: ``x,y`` per row (a header row allowed), at least three vertices."""
    poly = tuple((float(r[0]), float(r[1])) for r in _body(path))
    if len(poly) > 1 and poly[0] == poly[-1]:
        poly = poly[:-1]
    if len(poly) < 3:
        raise ZoneError(f"{path}: an outline needs at least three vertices")
    return poly


def load_zone(zone: Path, prefix: str | None = None, outline: Path | None = None) -> Dataset:
    """A room from a UJI-style zone directory (see the module docstring)."""
    zone = Path(zone)
    prefix = detect_prefix(zone, prefix)
    dep = _body(zone / "dep" / f"{prefix}.csv")
    names = [r[0].strip() for r in dep]
    if len(set(names)) != len(names):
        raise ZoneError(f"{zone}: dep/{prefix}.csv repeats a beacon id")
    anchors = {i + 1: (float(r[1]), float(r[2])) for i, r in enumerate(dep)}
    obstacles: tuple[Polygon, ...] = ()
    if (zone / "obs" / f"{prefix}.csv").is_file():
        polygons: dict[str, list[tuple[float, float]]] = {}
        for r in _body(zone / "obs" / f"{prefix}.csv"):
            polygons.setdefault(r[0], []).append((float(r[1]), float(r[2])))
        obstacles = tuple(tuple(p[:-1] if len(p) > 1 and p[0] == p[-1] else p) for p in polygons.values())
    outline = outline or (zone / "outline" / f"{prefix}.csv")
    if outline.is_file():
        plan, extent = FloorPlan.from_outline(read_outline(outline), obstacles), f"outline {outline.name}"
    else:
        plan = FloorPlan.extent(anchors.values(), obstacles, EXTENT_MARGIN_M)
        extent = f"beacons and obstacles + {EXTENT_MARGIN_M:g} m"
    files = {kind: _rss_file(zone, prefix, kind) for kind in ("rss", "crd", "ids", "tms")}
    missing = [k for k in ("rss", "crd", "ids") if files[k] is None]
    if missing:
        raise ZoneError(f"{zone}: no {', '.join(f'{prefix}_{k}.csv' for k in missing)}")
    rss = _numbers(files["rss"])  # type: ignore[arg-type]
    crd = _body(files["crd"])  # type: ignore[arg-type]
    fid = [int(float(r[0])) for r in _body(files["ids"])]  # type: ignore[arg-type]
    tms = _numbers(files["tms"]) if files["tms"] else None
    if not (len(rss) == len(crd) == len(fid)) or (tms is not None and len(tms) != len(rss)):
        raise ZoneError(f"{zone}: the rss, crd, ids (and tms) files have different numbers of rows")
    points: list[Point] = []
    previous: tuple[int, ...] | None = None
    for row, values in enumerate(rss):
        if len(values) != len(names):
            raise ZoneError(f"{zone}: rss row {row + 1} has {len(values)} columns for {len(names)} beacons")
        ident = fid[row]
        phone, power, campaign = ident // 10**7, (ident // 10**6) % 10, (ident // 10**5) % 10
        point, sample = (ident // 100) % 1000, ident % 100
        key = (phone, power, campaign, point)
        if previous is None or previous[:4] != key or sample <= previous[4]:
            points.append(Point(float(crd[row][0]), float(crd[row][1]), [], campaign, phone, power))
        previous = (*key, sample)
        at = [int(float(t)) / 1e9 for t in tms[row]] if tms is not None else None
        readings = []
        for i, v in enumerate(values):
            rssi = int(float(v))
            if rssi == NOT_HEARD:
                continue
            t = at[i] if at is not None and at[i] > 0 else float(len(points[-1].samples))
            readings.append((i + 1, rssi, t))
        points[-1].samples.append(Sample(max((t for _, _, t in readings), default=None), readings))
    outside = sum(1 for p in points if not _on_plan(plan, p.x, p.y))
    note = (f"zone {zone.name} prefix {prefix}; metres; extent: {extent}; "
            f"{'obstacles obs/' + prefix + '.csv' if obstacles else 'no obstacles'}"
            + (f"; {outside} points outside the extent" if outside else ""))
    return Dataset(f"zone:{zone.name}/{prefix}", anchors, points, plan, note,
                   {i + 1: n for i, n in enumerate(names)})


def _on_plan(plan: FloorPlan, x: float, y: float) -> bool:
    x0, y0, x1, y1 = plan.bounds
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    return plan.outline is None or inside(x, y, plan.outline)


# --- a synthetic zone --------------------------------------------------------------------------------

# An L-shaped office, 24 m x 16 m less a 10 m x 6 m corner, no obstacles (like an open-plan office).
SYNTHETIC_OUTLINE: Polygon = ((0.0, 0.0), (24.0, 0.0), (24.0, 10.0), (14.0, 10.0), (14.0, 16.0), (0.0, 16.0))
SYNTHETIC_BEACONS: dict[str, tuple[float, float]] = {
    "B1": (0.3, 0.3), "B2": (8.0, 0.3), "B3": (16.0, 0.3), "B4": (23.7, 0.3), "B5": (23.7, 9.7),
    "B6": (16.0, 9.7), "B7": (13.7, 15.7), "B8": (7.0, 15.7), "B9": (0.3, 15.7), "B10": (0.3, 8.0),
    "B11": (7.0, 7.0), "B12": (14.0, 5.0), "B13": (19.5, 5.0), "B14": (7.0, 12.0),
}


def grid_beacons(spacing_m: float) -> dict[str, tuple[float, float]]:
    """Beacons ``B1``.. at the centres of the squares of side ``spacing_m`` that lie inside the synthetic outline."""
    plan = FloorPlan.from_outline(SYNTHETIC_OUTLINE)
    out: dict[str, tuple[float, float]] = {}
    y = spacing_m / 2
    while y < 16.0:
        x = spacing_m / 2
        while x < 24.0:
            if _on_plan(plan, x, y):
                out[f"B{len(out) + 1}"] = (round(x, 2), round(y, 2))
            x += spacing_m
        y += spacing_m
    return out


def write_synthetic_zone(directory: Path, prefix: str = "syn", seed: int = 17, spacing_m: float = 2.0,
                         phones: int = 2, powers: int = 3, samples: int = 6, outline: bool = True,
                         exponent: float = 2.4, shadow_db: float = 5.0, noise_db: float = 2.3,
                         body_db: float = 6.0, detect_dbm: float = -98.0, power_step_db: float = 8.0,
                         missed: float = 0.3, beacon_spacing_m: float | None = None) -> Path:
    """Write a UJI-style zone simulated from a log-distance path-loss model; return its directory.

    rssi = P(power) + G(phone) - 10 n log10(max(d, 0.5 m)) + S + e + body, rounded to whole dBm, where
    P = -59 + ``power_step_db`` x (2 - power) dBm at powers 1-3 (-51, -59, -67), G = 0, -6, +4 dB per
    phone, n = ``exponent``, S ~ N(0, shadow_db) fixed per point and beacon (the room), e ~ N(0, noise_db)
    per reading, body = -body_db x (1 - cos)/2 of the angle between where the person faces (random per
    point) and the beacon; a reading below ``detect_dbm``, or a share ``missed`` at random, is not heard
    (100). Points on a ``spacing_m`` grid inside the outline, jittered by up to 0.3 m; ``samples`` fingerprints 1 s apart each, with per-beacon times.
    Beacons are ``B1``..``B14`` (:data:`SYNTHETIC_BEACONS`, one per 23 m^2), or with ``beacon_spacing_m`` one
    at the centre of every square of that side inside the outline (2.7 m: one per 7.3 m^2, the library's
    density; :func:`grid_beacons`); no obs/ file; ``outline/P.csv`` only when ``outline``.
    """
    rng = random.Random(seed)
    directory = Path(directory)
    for sub in ("dep", "rss", "outline"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    beacons = SYNTHETIC_BEACONS if beacon_spacing_m is None else grid_beacons(beacon_spacing_m)
    names = list(beacons)
    (directory / "dep" / f"{prefix}.csv").write_text(
        "id,x,y\n" + "".join(f"{n},{x:.2f},{y:.2f}\n" for n, (x, y) in beacons.items()))
    if outline:
        (directory / "outline" / f"{prefix}.csv").write_text(
            "x,y\n" + "".join(f"{x:g},{y:g}\n" for x, y in SYNTHETIC_OUTLINE))
    places = []
    y = spacing_m / 2
    while y < 16.0:
        x = spacing_m / 2
        while x < 24.0:
            px, py = x + rng.uniform(-0.3, 0.3), y + rng.uniform(-0.3, 0.3)
            if _on_plan(FloorPlan.from_outline(SYNTHETIC_OUTLINE), px, py):
                places.append((px, py))
            x += spacing_m
        y += spacing_m
    rss, crd, ids, tms = [], [], [], []
    t0 = 1_540_000_000.0
    for phone in range(1, phones + 1):
        gain = (0.0, -6.0, 4.0)[(phone - 1) % 3]
        for power in range(1, powers + 1):
            # The real geo zone's beacons sent at -4, -12 and -20 dBm (its data descriptor), the library's at
            # -12 dBm: steps of 8 dB about the library's level.
            level = -59.0 + power_step_db * (2 - power)
            for number, (px, py) in enumerate(places, start=1):
                facing = rng.uniform(0, 2 * math.pi)
                shadow = {n: rng.gauss(0, shadow_db) for n in names}
                for k in range(1, samples + 1):
                    t0 += 1.0
                    row, times = [], []
                    for n in names:
                        bx, by = beacons[n]
                        d = max(math.hypot(bx - px, by - py), 0.5)
                        bearing = math.atan2(by - py, bx - px)
                        body = -body_db * (1 - math.cos(bearing - facing)) / 2
                        value = level + gain - 10 * exponent * math.log10(d) + shadow[n] + body + rng.gauss(0, noise_db)
                        heard = value >= detect_dbm and rng.random() >= missed
                        row.append(str(round(value)) if heard else str(NOT_HEARD))
                        times.append(str(int((t0 + rng.uniform(0, 0.9)) * 1e9)) if heard else "0")
                    rss.append(",".join(row))
                    tms.append(",".join(times))
                    crd.append(f"{px:.2f},{py:.2f}")
                    ids.append(str(phone * 10**7 + power * 10**6 + 1 * 10**5 + number * 100 + k))
    for kind, lines in (("rss", rss), ("crd", crd), ("ids", ids), ("tms", tms)):
        (directory / "rss" / f"{prefix}_{kind}.csv").write_text("\n".join(lines) + "\n")
    return directory

