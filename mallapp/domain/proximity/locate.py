"""RSSI filters, distance from measured power, and the position estimate: pure functions over numbers.

The evaluation (``python -m mallapp.domain.proximity.evaluate``) runs these on the recorded data sets in
``../shared/data/ble`` and compares them with the baselines; the defaults in ``mallapp/defaults.toml``
and in :class:`LocateParams` are the ones that did best there.

The engine's position (:class:`Locator`) is a posterior mean over a lattice of places a member can
stand, within a few metres of the weighted centroid. At each place the filtered readings are fitted
by a log-distance model with a loss per obstacle crossed, plus two nuisances that are least-squared
out per place: the phone's gain (an offset in dB; phones differ by 15 dB and more) and the shadow of
the member's own body (a cosine of the bearing, ridge-shrunk, which otherwise drags the estimate
towards where the member faces). The spread of the readings about the model is not assumed but
integrated out (a scale-free prior), so a place's likelihood is its residual sum of squares to the
power -nu/2: the posterior is as sharp as the fit is good, for a quiet phone and a noisy one alike.
nu is the number of independent readings a window is worth: at most the anchors heard less one (the
offset), and no more than a constant however many are heard, since their errors are shared (the
body, people nearby, the room). It needs the floor plan (:class:`FloorPlan`): on the library data
the same model without obstacles did worse than the weighted centroid, which is what the engine uses
on a floor without a plan. No fingerprints: the model knows anchor positions, measured power and the
floor plan only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

Filter = Callable[[list[int]], float]


def trimmed_mean(values: list[int], trim: float = 0.1) -> float:
    """AltBeacon's RunningAverageRssiFilter: drop the top and bottom 10% of the window, average the rest."""
    n = len(values)
    if n < 3:
        return sum(values) / n
    ordered = sorted(values)
    k = int(n * trim)
    kept = ordered[k:n - k]
    return sum(kept) / len(kept)


def median(values: list[int]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def strongest(values: list[int]) -> float:
    # Obstacles and bodies only ever take signal away, so the strongest reading of a window is the
    # least attenuated one.
    return float(max(values))


def mean(values: list[int]) -> float:
    return sum(values) / len(values)


FILTERS: dict[str, Filter] = {"trimmed_mean": trimmed_mean, "median": median, "max": strongest, "mean": mean}


def distance_m(rssi: float, measured_power: float, exponent: float) -> float:
    """Log-distance path loss: metres from the RSSI and the calibrated RSSI at 1 m."""
    return 10.0 ** ((measured_power - rssi) / (10.0 * exponent))


# A reading: (x, y, filtered rssi, measured power at 1 m).
Reading = tuple[float, float, float, float]


def weighted_centroid(readings: Sequence[Reading], k: int = 6, sharpness: float = 0.15) -> tuple[float, float]:
    """The engine's position: the k strongest anchors, weighted by exp(sharpness x dB above the weakest of them).

    Weights grow by a constant factor per dB of (calibrated) signal, which is a distance weighting
    1/d^(10 n sharpness / ln 10) under the log-distance model, without trusting its exponent.
    """
    ranked = sorted(readings, key=lambda r: r[2] - r[3], reverse=True)[:k]
    floor = ranked[-1][2] - ranked[-1][3]
    sx = sy = sw = 0.0
    for x, y, rssi, power in ranked:
        w = math.exp(sharpness * (rssi - power - floor))
        sx += w * x
        sy += w * y
        sw += w
    return sx / sw, sy / sw


def strongest_anchor(readings: Sequence[Reading]) -> tuple[float, float]:
    """Baseline: the position of the strongest single reading."""
    x, y, _, _ = max(readings, key=lambda r: r[2])
    return x, y


def centroid_of_three(readings: Sequence[Reading]) -> tuple[float, float]:
    """Baseline: the centroid of the three strongest anchors, weighted by linear received power (mW)."""
    top = sorted(readings, key=lambda r: r[2], reverse=True)[:3]
    weights = [10.0 ** (r[2] / 10.0) for r in top]
    total = sum(weights)
    return (sum(w * r[0] for w, r in zip(weights, top, strict=True)) / total,
            sum(w * r[1] for w, r in zip(weights, top, strict=True)) / total)




# --- the engine's position: a posterior mean on the floor plan ---------------------------------------

Point = tuple[float, float]
Polygon = tuple[Point, ...]


@dataclass(frozen=True)
class FloorPlan:
    """One floor as the position estimate sees it: where a member can be, and what stands in the way.

    ``bounds`` is (x0, y0, x1, y1) in metres; ``obstacles`` are polygons (shelves, pillars, walls
    between units) that nobody stands inside and that attenuate a signal crossing them; ``outline``, when
    given, is the floor's own polygon (as ops define it, mallapp.domain.floors): only places inside it
    are on the floor. Without one, the whole of ``bounds`` is. :meth:`from_outline` derives the bounds.
    """

    bounds: tuple[float, float, float, float]
    obstacles: tuple[Polygon, ...] = ()
    outline: Polygon | None = None

    @classmethod
    def from_outline(cls, outline: Sequence[Sequence[float]], obstacles: Iterable[Polygon] = ()) -> FloorPlan:
        """The plan of a floor outlined by a polygon [[x, y], ...] (closed or not), bounded by its box."""
        poly = tuple((float(p[0]), float(p[1])) for p in outline)
        if len(poly) > 1 and poly[0] == poly[-1]:
            poly = poly[:-1]
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        return cls((min(xs), min(ys), max(xs), max(ys)), tuple(obstacles), poly)

    @classmethod
    def extent(cls, points: Iterable[Point], obstacles: Iterable[Polygon] = (), margin_m: float = 1.0) -> FloorPlan:
        """Without an outline: the box around the points (anchors) and obstacles, widened by ``margin_m``."""
        obstacles = tuple(obstacles)
        pts = list(points) + [p for poly in obstacles for p in poly]
        if not pts:
            raise ValueError("an extent needs at least one point")
        return cls((min(p[0] for p in pts) - margin_m, min(p[1] for p in pts) - margin_m,
                    max(p[0] for p in pts) + margin_m, max(p[1] for p in pts) + margin_m), obstacles)


@dataclass(frozen=True)
class LocateParams:
    """The position model; defaults chosen by ``python -m mallapp.domain.proximity.evaluate`` (see there)."""

    exponent: float = 2.0  # path-loss exponent of the model (not the presence distance's)
    wall_db: float = 2.5  # loss per obstacle crossed
    independent_readings: float = 14.0  # nu: what a window's readings are worth (see the module docstring)
    body_ridge: float = 0.1  # shrinkage of the body-shadow term, per anchor heard
    radius_m: float = 6.0  # the search radius around the centroid
    step_m: float = 0.5  # lattice step
    k: int = 6  # the starting centroid's anchors ...
    sharpness: float = 0.15  # ... and weighting (see weighted_centroid)
    min_anchors: int = 3  # below this the centroid is the answer: nothing to fit
    free_margin_m: float = 2.0  # without a floor plan, how far beyond the anchors the lattice reaches
    centroid_share: float = 0.0  # the estimate moves this share of the way back to the starting centroid


# A floor plan without obstacles (an outline ops drew, no walls stored): the walls that are there but not
# mapped take signal away as a steeper fall-off does, and the model alone does worse than the weighted
# centroid (the library outlined without its shelves: 1.50 / 2.95 m against 1.24 / 2.59 m). So there the
# model's exponent is 3 (the library's fitted exponent is 3.09) and the estimate is halfway between the
# model's and the weighted centroid: 1.23 / 2.56 m on the library. On a truly open room it costs about 0.1 m
# of median (the synthetic office: 2.06 / 4.12 m, the plain model 1.95 / 4.17 m, the centroid 2.29 / 4.54 m).
# docs/positioning.md, "A floor outlined without obstacles".
UNMAPPED_EXPONENT = 3.0
UNMAPPED_CENTROID_SHARE = 0.5


def params_for_plan(plan: FloorPlan, params: LocateParams) -> LocateParams:
    """The model's parameters on ``plan``: as given where it maps obstacles, else the no-walls variant."""
    if plan.obstacles:
        return params
    return replace(params, exponent=UNMAPPED_EXPONENT, centroid_share=UNMAPPED_CENTROID_SHARE)


def _inside(x: float, y: float, poly: Polygon) -> bool:
    inside = False
    x1, y1 = poly[-1]
    for x2, y2 in poly:
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
        x1, y1 = x2, y2
    return inside


def _edge_distance(x: float, y: float, poly: Polygon) -> float:
    """The distance from (x, y) to the nearest edge of the polygon."""
    best = math.inf
    x1, y1 = poly[-1]
    for x2, y2 in poly:
        ex, ey = x2 - x1, y2 - y1
        length2 = ex * ex + ey * ey
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - x1) * ex + (y - y1) * ey) / length2))
        best = min(best, math.hypot(x - x1 - t * ex, y - y1 - t * ey))
        x1, y1 = x2, y2
    return best


def _crosses(ax: float, ay: float, bx: float, by: float, poly: Polygon) -> bool:
    """Whether segment a-b crosses an edge of the polygon."""
    x1, y1 = poly[-1]
    for x2, y2 in poly:
        d1 = (bx - ax) * (y1 - ay) - (by - ay) * (x1 - ax)
        d2 = (bx - ax) * (y2 - ay) - (by - ay) * (x2 - ax)
        if (d1 > 0) != (d2 > 0):
            d3 = (x2 - x1) * (ay - y1) - (y2 - y1) * (ax - x1)
            d4 = (x2 - x1) * (by - y1) - (y2 - y1) * (bx - x1)
            if (d3 > 0) != (d4 > 0):
                return True
        x1, y1 = x2, y2
    return False


_BUCKET_M = 4.0
_PATHS_PER_ANCHOR = 50_000


class Geometry:
    """The lattice of a floor plan and, per anchor position, the distance and obstacles to each place.

    Each lattice square keeps the part of it that is free of obstacles: its point is the centre of that
    part and its prior weight the free fraction, so the estimate does not depend on how the lattice
    happens to fall across a 0.9 m aisle. Paths are computed lazily (only near where members are) and
    shared by every :class:`Locator` on the floor.
    """

    def __init__(self, plan: FloorPlan, step_m: float = 0.5, subsamples: int = 4) -> None:
        self.plan = plan
        self.step = step_m
        x0, y0, x1, y1 = plan.bounds
        self._obstacles = [(min(p[0] for p in poly), min(p[1] for p in poly), max(p[0] for p in poly),
                            max(p[1] for p in poly), poly) for poly in plan.obstacles if len(poly) >= 3]
        # Obstacles by 4 m bucket, so that building the lattice of a large floor stays linear.
        self._buckets: dict[tuple[int, int], list[tuple[float, float, float, float, Polygon]]] = {}
        for box in self._obstacles:
            for bi in range(math.floor(box[0] / _BUCKET_M), math.floor(box[2] / _BUCKET_M) + 1):
                for bj in range(math.floor(box[1] / _BUCKET_M), math.floor(box[3] / _BUCKET_M) + 1):
                    self._buckets.setdefault((bi, bj), []).append(box)
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.weights: list[float] = []
        self._index: dict[tuple[int, int], int] = {}
        nx, ny = max(1, round((x1 - x0) / step_m)), max(1, round((y1 - y0) / step_m))
        self._origin = ((x0 + x1 - (nx - 1) * step_m) / 2, (y0 + y1 - (ny - 1) * step_m) / 2)
        ox, oy = self._origin
        half = step_m / 2
        outline = plan.outline if plan.outline and len(plan.outline) >= 3 else None
        offsets = [((k + 0.5) / subsamples - 0.5) * step_m for k in range(subsamples)]
        for i in range(nx):
            for j in range(ny):
                cx, cy = ox + i * step_m, oy + j * step_m
                edge = outline is not None and _edge_distance(cx, cy, outline) < half * 1.5
                if outline is not None and not edge and not _inside(cx, cy, outline):
                    continue  # wholly outside the floor's outline
                if not edge and not any(a <= cx + half and c >= cx - half and b <= cy + half and d >= cy - half
                                        for a, b, c, d, _ in self._near_obstacles(cx, cy)):
                    free = [(cx, cy)] * subsamples ** 2  # nothing near: all of the square is free
                else:
                    free = [(cx + dx, cy + dy) for dx in offsets for dy in offsets
                            if not self._blocked(cx + dx, cy + dy)
                            and (not edge or _inside(cx + dx, cy + dy, outline))]  # type: ignore[arg-type]
                if free:
                    self._index[(i, j)] = len(self.xs)
                    self.xs.append(sum(p[0] for p in free) / len(free))
                    self.ys.append(sum(p[1] for p in free) / len(free))
                    self.weights.append(len(free) / subsamples ** 2)
        # anchor position -> (where it radiates from, {cell: (log10 distance, obstacles crossed)})
        self._anchors: dict[Point, tuple[Point, dict[int, tuple[float, int]]]] = {}
        self._near: dict[tuple[int, int, float], list[int]] = {}

    def _near_obstacles(self, x: float, y: float) -> list[tuple[float, float, float, float, Polygon]]:
        return self._buckets.get((math.floor(x / _BUCKET_M), math.floor(y / _BUCKET_M)), [])

    def _blocked(self, x: float, y: float) -> bool:
        return any(a <= x <= c and b <= y <= d and _inside(x, y, poly)
                   for a, b, c, d, poly in self._near_obstacles(x, y))

    def nearest(self, x: float, y: float) -> int | None:
        """The lattice place whose square holds (x, y), if it has a free part."""
        return self._index.get((round((x - self._origin[0]) / self.step), round((y - self._origin[1]) / self.step)))

    def cells_near(self, x: float, y: float, radius: float) -> list[int]:
        """The lattice places within ``radius`` of the lattice point nearest (x, y) (memoised)."""
        key = (round((x - self._origin[0]) / self.step), round((y - self._origin[1]) / self.step), radius)
        cells = self._near.get(key)
        if cells is None:
            if len(self._near) > 100_000:
                self._near.clear()
            cells = self._near[key] = self._cells_near(self._origin[0] + key[0] * self.step,
                                                       self._origin[1] + key[1] * self.step, radius)
        return cells

    def _cells_near(self, x: float, y: float, radius: float) -> list[int]:
        ox, oy, step = self._origin[0], self._origin[1], self.step
        r2 = radius * radius
        i0, i1 = math.ceil((x - radius - ox) / step), math.floor((x + radius - ox) / step)
        j0, j1 = math.ceil((y - radius - oy) / step), math.floor((y + radius - oy) / step)
        index = self._index
        out = []
        for i in range(i0, i1 + 1):
            dx = ox + i * step - x
            for j in range(j0, j1 + 1):
                dy = oy + j * step - y
                if dx * dx + dy * dy <= r2:
                    cell = index.get((i, j))
                    if cell is not None:
                        out.append(cell)
        return out

    def source(self, x: float, y: float) -> Point:
        """Where an anchor mounted at (x, y) radiates from: a beacon on a shelf sits on its face, outside it."""
        for a, b, c, d, poly in self._obstacles:
            if a - 0.02 <= x <= c + 0.02 and b - 0.02 <= y <= d + 0.02:
                return self._push_out(x, y, poly)
        return x, y

    def _push_out(self, x: float, y: float, poly: Polygon, eps: float = 0.06) -> Point:
        # The nearest point on the outline, then a few centimetres out through it.
        best = (math.inf, x, y, 0.0, 0.0)
        x1, y1 = poly[-1]
        for x2, y2 in poly:
            ex, ey = x2 - x1, y2 - y1
            length2 = ex * ex + ey * ey
            t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - x1) * ex + (y - y1) * ey) / length2))
            qx, qy = x1 + t * ex, y1 + t * ey
            dist = math.hypot(x - qx, y - qy)
            if dist < best[0]:
                best = (dist, qx, qy, ex, ey)
            x1, y1 = x2, y2
        _, qx, qy, ex, ey = best
        norm = math.hypot(ex, ey) or 1.0
        for nx, ny in ((ey / norm, -ex / norm), (-ey / norm, ex / norm)):
            px, py = qx + eps * nx, qy + eps * ny
            if not _inside(px, py, poly):
                return px, py
        return x, y

    def anchor(self, x: float, y: float) -> tuple[Point, dict[int, tuple[float, int]]]:
        entry = self._anchors.get((x, y))
        if entry is None:
            entry = self._anchors[(x, y)] = (self.source(x, y), {})
        return entry

    def paths(self, x: float, y: float, cells: Iterable[int]) -> dict[int, tuple[float, int]]:
        """(log10 of the distance, floored at 0.5 m; obstacles crossed) from the anchor at (x, y), per cell."""
        (sx, sy), known = self.anchor(x, y)
        if len(known) > _PATHS_PER_ANCHOR:  # bound the memory of a long-running worker
            known.clear()
        xs, ys, obstacles = self.xs, self.ys, self._obstacles
        for cell in cells:
            if cell in known:
                continue
            cx, cy = xs[cell], ys[cell]
            lo_x, hi_x = min(cx, sx), max(cx, sx)
            lo_y, hi_y = min(cy, sy), max(cy, sy)
            walls = sum(1 for a, b, c, d, poly in obstacles
                        if a <= hi_x and c >= lo_x and b <= hi_y and d >= lo_y and _crosses(cx, cy, sx, sy, poly))
            known[cell] = (math.log10(max(math.hypot(cx - sx, cy - sy), 0.5)), walls)
        return known


class Locator:
    """The engine's position estimate on one floor (see the module docstring)."""

    def __init__(self, geometry: Geometry, params: LocateParams | None = None) -> None:
        self.geometry = geometry
        self.params = params or LocateParams()
        # anchor position -> {cell: the model's level there, without the phone's offset}
        self._models: dict[Point, dict[int, float]] = {}

    @classmethod
    def for_anchors(cls, points: Iterable[Point], plan: FloorPlan | None = None,
                    params: LocateParams | None = None) -> Locator:
        """A locator on ``plan``, or without one on the anchors' bounding box (plus a margin)."""
        params = params or LocateParams()
        if plan is None:
            pts = list(points) or [(0.0, 0.0)]
            m = params.free_margin_m
            plan = FloorPlan((min(p[0] for p in pts) - m, min(p[1] for p in pts) - m,
                              max(p[0] for p in pts) + m, max(p[1] for p in pts) + m))
        return cls(Geometry(plan, params.step_m), params)

    def _columns(self, x: float, y: float, cells: list[int]) -> list[tuple[float, ...]]:
        """For the anchor at (x, y), per cell: its model level l (without the phone's offset), the cosine c and
        sine s of the bearing from the cell to it, and the products cc, ss, cs, ll, lc, ls; as nine columns."""
        model = self._models.get((x, y))
        if model is None or len(model) > _PATHS_PER_ANCHOR:
            model = self._models[(x, y)] = {}
        try:
            entries = list(map(model.__getitem__, cells))
        except KeyError:
            exponent10, wall_db = 10.0 * self.params.exponent, self.params.wall_db
            geo = self.geometry
            (sx, sy), _ = geo.anchor(x, y)
            paths = geo.paths(x, y, cells)
            for cell in cells:
                if cell not in model:
                    logd, walls = paths[cell]
                    dx, dy = sx - geo.xs[cell], sy - geo.ys[cell]
                    dist = math.hypot(dx, dy) or 1.0
                    lv, c, s = -exponent10 * logd - wall_db * walls, dx / dist, dy / dist
                    model[cell] = (lv, c, s, c * c, s * s, c * s, lv * lv, lv * c, lv * s)
            entries = list(map(model.__getitem__, cells))
        return list(zip(*entries, strict=True))

    def estimate(self, readings: Sequence[Reading]) -> Point:
        """The posterior mean position from filtered readings (x, y, rssi, measured power)."""
        start, cells, losses = self.fit(readings)
        return self.finish(start, cells, losses, self.params.independent_readings, len(readings))

    def finish(self, start: Point, cells: list[int], losses: list[float], nu: float, heard: int) -> Point:
        """The estimate from :meth:`fit`'s result: the posterior mean, moved ``centroid_share`` of the way back
        to the starting centroid (the start itself when no place was searched). A point so moved off the floor
        (the centroid of an L-shaped floor's corner) goes to the nearest place searched."""
        if not cells:
            return start
        x, y = self.posterior_mean(cells, losses, nu, heard)
        share = self.params.centroid_share
        if not share:
            return x, y
        x, y = x + share * (start[0] - x), y + share * (start[1] - y)
        geo = self.geometry
        if geo.nearest(x, y) is None:
            cell = min(cells, key=lambda c: (geo.xs[c] - x) ** 2 + (geo.ys[c] - y) ** 2)
            return geo.xs[cell], geo.ys[cell]
        return x, y

    def posterior_mean(self, cells: list[int], losses: list[float], nu: float, heard: int) -> Point:
        """The mean of the places under the prior and the likelihood loss^(-nu / 2), nu at most ``heard`` - 1."""
        # heard - 1 is the exact exponent if every reading were independent: the likelihood with the noise
        # level, the offset (flat prior) and the body term (its ridge a Gaussian prior) integrated out.
        half_nu = 0.5 * min(nu, heard - 1)
        geo = self.geometry
        prior, xs, ys = geo.weights, geo.xs, geo.ys
        scores = [math.log(prior[c]) - half_nu * math.log(loss) for c, loss in zip(cells, losses, strict=True)]
        best = max(scores)
        weights = [math.exp(v - best) for v in scores]
        total = sum(weights)
        return (sum(w * xs[c] for w, c in zip(weights, cells, strict=True)) / total,
                sum(w * ys[c] for w, c in zip(weights, cells, strict=True)) / total)

    def fit(self, readings: Sequence[Reading]) -> tuple[Point, list[int], list[float]]:
        """The starting centroid, the places searched and each place's loss, a sum of squares in dB^2 (no
        places: the centroid it is)."""
        p = self.params
        start = weighted_centroid(readings, p.k, p.sharpness)
        if len(readings) < p.min_anchors:
            return start, [], []
        geo = self.geometry
        cells = geo.cells_near(start[0], start[1], p.radius_m)
        if not cells:
            return start, [], []
        m = len(readings)
        # Per cell, sums over the anchors heard (column-wise, so that the loops run in C): of l, c, s, cc, ss,
        # cs, ll, lc, ls (see _columns), and of g l, g c, g s with g the reading's level above 1 m.
        columns = [self._columns(x, y, cells) for x, y, _, _ in readings]
        levels = [rssi - power for _, _, rssi, power in readings]
        sg = sum(levels)
        sgg = sum(g * g for g in levels)
        sums = [list(map(sum, zip(*[column[k] for column in columns], strict=True))) for k in range(9)]
        for k in range(3):
            weighted = [map(g.__mul__, column[k]) for g, column in zip(levels, columns, strict=True)]
            sums.append(list(map(sum, zip(*weighted, strict=True))))
        ridge = p.body_ridge * m
        # Readings are whole dBm: their rounding alone leaves m/12 dB^2 that no place fits away (and the
        # likelihood's logarithm finite).
        rounding = m / 12.0
        losses = []
        for sl, sc, ss, scc, sss, scs, sll, slc, sls, sgl, sgc, sgs in zip(*sums, strict=True):
            # Residual r = g - l = offset + a c + b s + noise, least squares with a ridge on (a, b); the loss
            # is the residual sum of squares plus the ridge's penalty, r'r - theta'A'r at the solution.
            sr, src, srs = sg - sl, sgc - slc, sgs - sls
            offset, a, b = _solve3(m, sc, ss, scc + ridge, sss + ridge, scs, sr, src, srs)
            losses.append(sgg - 2.0 * sgl + sll - offset * sr - a * src - b * srs + rounding)
        return start, cells, losses


def _solve3(m: float, sc: float, ss: float, scc: float, sss: float, scs: float, sr: float, src: float,
            srs: float) -> tuple[float, float, float]:
    """Solve [[m, sc, ss], [sc, scc, scs], [ss, scs, sss]] (o, a, b) = (sr, src, srs) by Cramer's rule."""
    det = m * (scc * sss - scs * scs) - sc * (sc * sss - scs * ss) + ss * (sc * scs - scc * ss)
    if abs(det) < 1e-12:
        return sr / m, 0.0, 0.0
    det_o = sr * (scc * sss - scs * scs) - sc * (src * sss - scs * srs) + ss * (src * scs - scc * srs)
    det_a = m * (src * sss - scs * srs) - sr * (sc * sss - scs * ss) + ss * (sc * srs - src * ss)
    det_b = m * (scc * srs - src * scs) - sc * (sc * srs - src * ss) + sr * (sc * scs - scc * ss)
    return det_o / det, det_a / det, det_b / det
