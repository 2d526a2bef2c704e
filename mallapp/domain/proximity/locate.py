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

from mallapp.domain.proximity.floorplan import PATHS_PER_ANCHOR, FloorPlan, Geometry, Point

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
        if model is None or len(model) > PATHS_PER_ANCHOR:
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
