"""The wait estimate: pure functions that learn a restaurant's waits from its own history.

The naive estimate is ``parties ahead x a fixed average``. It is wrong in ways a restaurant's
history shows: each band turns its tables at its own pace (four two-seat tables free up far more
often than one table for ten), and once there is a line, even its first party waits for a table to
free up, longer at the lunch peak than mid-afternoon. So the estimate, per band and time-of-day slot,
for a party with ``ahead`` parties waiting before it in its band, is::

    ahead >= 1:  a + b x ahead    (seconds; never below 0) fitted by weighted least squares
    ahead == 0:  0 when most such parties of the slot were called at once (a table was free),
                 else the mean wait of those who were not

The two parts are kept apart because they differ in kind: with nobody ahead most parties walk
straight to a free table, and a line through those zeros would drag every estimate down. The
wait is from taking the number to being called. A day's waits weigh ``0.5 ** (age / half_life)``,
so the figures follow a restaurant that changes. A slot with few waits is pulled toward its band's
all-day figures, and a band with few toward the naive line, by ``shrinkage`` waits' worth (the line's level at its mean and its slope each move
``strength / (waits + strength)`` of the way):
with no history at all the estimate *is* the naive one.

The data go in as sufficient statistics (:class:`Aggregate`, one per band, day and slot), which SQL
computes with GROUP BY, so fitting costs the same whatever the history's size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["AT_ONCE_S", "Aggregate", "First", "Line", "Model", "Observation", "Params", "aggregate", "fit", "naive"]


@dataclass(frozen=True)
class Params:
    naive_seconds_per_party: float = 600.0
    half_life_days: float = 7.0
    slot_minutes: int = 60
    shrinkage: float = 8.0


@dataclass(frozen=True)
class Observation:
    """One wait that happened: the band, the day's age (days before today), when taken and the wait."""

    band: str
    age_days: int
    minute: int  # minutes after mall-local midnight when the number was taken
    ahead: int
    wait_s: float


@dataclass(frozen=True)
class Aggregate:
    """The sums of one band, day and slot (what SQL's GROUP BY returns).

    ``n`` and the sums are of the waits with someone ahead (x = ahead, y = wait); the ``first_``
    figures are of the waits with nobody ahead: how many, how many were called at once, their sum.
    """

    band: str
    age_days: int
    slot: int
    n: int
    sum_x: float
    sum_y: float
    sum_xx: float
    sum_xy: float
    first_n: int = 0
    first_at_once: int = 0
    first_sum_y: float = 0.0


# A wait this short (seconds) counts as "called at once": the party walked to a free table.
AT_ONCE_S = 60


@dataclass(frozen=True)
class Line:
    a: float
    b: float

    def at(self, ahead: int) -> float:
        return max(0.0, self.at_raw(ahead))

    def at_raw(self, x: float) -> float:
        return self.a + self.b * x


@dataclass
class _Sums:
    w: float = 0.0
    wx: float = 0.0
    wy: float = 0.0
    wxx: float = 0.0
    wxy: float = 0.0
    first_w: float = 0.0
    first_at_once: float = 0.0
    first_wy: float = 0.0

    def add(self, agg: Aggregate, weight: float) -> None:
        self.w += weight * agg.n
        self.wx += weight * agg.sum_x
        self.wy += weight * agg.sum_y
        self.wxx += weight * agg.sum_xx
        self.wxy += weight * agg.sum_xy
        self.first_w += weight * agg.first_n
        self.first_at_once += weight * agg.first_at_once
        self.first_wy += weight * agg.first_sum_y


@dataclass(frozen=True)
class First:
    """The first-in-line figures: the share called at once, and the mean wait of the others."""

    at_once: float
    wait_s: float

    def estimate(self) -> float:
        # The median of a mixture of "at once" and the others' waits, roughly: what minimises the
        # absolute error the evaluation measures.
        return 0.0 if self.at_once >= 0.5 else self.wait_s


@dataclass(frozen=True)
class Model:
    """A fitted estimate: a line per band, and per band and slot where the history has waits."""

    params: Params
    bands: dict[str, Line] = field(default_factory=dict)
    cells: dict[tuple[str, int], Line] = field(default_factory=dict)
    band_firsts: dict[str, First] = field(default_factory=dict)
    firsts: dict[tuple[str, int], First] = field(default_factory=dict)

    def line(self, band: str, minute: int) -> Line:
        slot = minute // self.params.slot_minutes
        found = self.cells.get((band, slot)) or self.bands.get(band)
        return found or Line(0.0, self.params.naive_seconds_per_party)

    def first(self, band: str, minute: int) -> First:
        slot = minute // self.params.slot_minutes
        return self.firsts.get((band, slot)) or self.band_firsts.get(band) or First(1.0, 0.0)

    def estimate(self, band: str, minute: int, ahead: int) -> int:
        """Seconds a party taking a number now (``minute`` of the mall's day) with ``ahead`` before it waits."""
        if ahead <= 0:
            return round(self.first(band, minute).estimate())
        return round(self.line(band, minute).at(ahead))


def naive(ahead: int, seconds_per_party: float) -> int:
    """The naive estimate: parties ahead x a fixed average."""
    return round(ahead * seconds_per_party)


def aggregate(observations: Iterable[Observation], slot_minutes: int) -> list[Aggregate]:
    """Sum observations per band, day and slot, as the database does."""
    sums: dict[tuple[str, int, int], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0.0])
    for o in observations:
        s = sums[o.band, o.age_days, o.minute // slot_minutes]
        if o.ahead > 0:
            s[0] += 1
            s[1] += o.ahead
            s[2] += o.wait_s
            s[3] += o.ahead * o.ahead
            s[4] += o.ahead * o.wait_s
        else:
            s[5] += 1
            s[6] += o.wait_s <= AT_ONCE_S
            s[7] += o.wait_s
    return [Aggregate(band, age, slot, int(s[0]), s[1], s[2], s[3], s[4], int(s[5]), int(s[6]), s[7])
            for (band, age, slot), s in sums.items()]


def _ridge(sums: _Sums, prior: Line, strength: float, x_scale: float) -> Line:
    """The weighted least-squares line, its level and its slope each pulled toward the prior's by ``strength`` waits."""
    if sums.w <= 0:
        return prior
    # Centred on the data's mean x, the level there and the slope are estimated independently, so
    # each shrinks by its own share: strength / (waits + strength), the slope's in units of x's spread.
    x_mean, y_mean = sums.wx / sums.w, sums.wy / sums.w
    sxx = max(0.0, sums.wxx - sums.w * x_mean * x_mean)
    sxy = sums.wxy - x_mean * sums.wy
    level = (sums.w * y_mean + strength * prior.at_raw(x_mean)) / (sums.w + strength)
    slope_weight = strength * x_scale
    slope = (sxy + slope_weight * prior.b) / (sxx + slope_weight) if sxx + slope_weight > 0 else prior.b
    return Line(level - slope * x_mean, slope)


def _first(sums: _Sums, prior: First, strength: float) -> First:
    """The first-in-line figures, pulled toward the prior's by ``strength`` waits."""
    at_once = (sums.first_at_once + strength * prior.at_once) / (sums.first_w + strength or 1.0)
    # The mean wait of those not called at once: their waits sum to nearly all of first_wy.
    others = sums.first_w - sums.first_at_once
    wait = (sums.first_wy + strength * prior.wait_s) / (others + strength or 1.0)
    return First(at_once, wait)


def fit(aggregates: Iterable[Aggregate], params: Params) -> Model:
    """Fit the figures of every band and slot the history covers (see the module's docstring)."""
    band_sums: dict[str, _Sums] = defaultdict(_Sums)
    cell_sums: dict[tuple[str, int], _Sums] = defaultdict(_Sums)
    for agg in aggregates:
        if agg.n <= 0 and agg.first_n <= 0:
            continue
        weight = 0.5 ** (max(agg.age_days, 0) / params.half_life_days)
        band_sums[agg.band].add(agg, weight)
        cell_sums[agg.band, agg.slot].add(agg, weight)
    prior = Line(0.0, params.naive_seconds_per_party)
    bands: dict[str, Line] = {}
    scales: dict[str, float] = {}
    for band, sums in band_sums.items():
        # The spread of x (its variance, at least 1) puts the slope's pull in waits.
        scales[band] = max(1.0, sums.wxx / sums.w - (sums.wx / sums.w) ** 2) if sums.w > 0 else 1.0
        bands[band] = _ridge(sums, prior, params.shrinkage, scales[band])
    cells = {(band, slot): _ridge(sums, bands[band], params.shrinkage, scales[band])
             for (band, slot), sums in cell_sums.items()}
    # The prior of the first in line: the naive estimate's (called at once), then the band's.
    band_firsts = {band: _first(sums, First(1.0, params.naive_seconds_per_party), params.shrinkage)
                   for band, sums in band_sums.items()}
    firsts = {(band, slot): _first(sums, band_firsts[band], params.shrinkage)
              for (band, slot), sums in cell_sums.items()}
    return Model(params, bands, cells, band_firsts, firsts)
