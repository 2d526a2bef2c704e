"""A floor as the position estimate sees it: its outline and obstacles, and the lattice of places on it.

:class:`FloorPlan` is what the engine is given per floor (mallapp.domain.floors builds them from the
outlines ops draw; the evaluation from a data set's obstacles); :class:`Geometry` turns one into the
lattice of places a member can stand and, per anchor, the distance and obstacles to each place, which
:class:`mallapp.domain.proximity.locate.Locator` fits readings over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


def inside(x: float, y: float, poly: Polygon) -> bool:
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
# The paths (or models) kept per anchor before the cache starts again: bounds a long-running worker's memory.
PATHS_PER_ANCHOR = 50_000


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
                if outline is not None and not edge and not inside(cx, cy, outline):
                    continue  # wholly outside the floor's outline
                if not edge and not any(a <= cx + half and c >= cx - half and b <= cy + half and d >= cy - half
                                        for a, b, c, d, _ in self._near_obstacles(cx, cy)):
                    free = [(cx, cy)] * subsamples ** 2  # nothing near: all of the square is free
                else:
                    free = [(cx + dx, cy + dy) for dx in offsets for dy in offsets
                            if not self._blocked(cx + dx, cy + dy)
                            and (not edge or inside(cx + dx, cy + dy, outline))]  # type: ignore[arg-type]
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
        return any(a <= x <= c and b <= y <= d and inside(x, y, poly)
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
            if not inside(px, py, poly):
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
        if len(known) > PATHS_PER_ANCHOR:  # bound the memory of a long-running worker
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
