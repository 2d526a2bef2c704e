"""RSSI filters, distance from measured power, and the position estimate: pure functions over numbers.

The evaluation (``python -m mallapp.proximity.evaluate``) runs these on the recorded data sets in
``../shared/data/ble`` and compares them with the baselines; the defaults in ``config/defaults.toml``
are the ones that did best there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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


ESTIMATORS: dict[str, Callable[[Sequence[Reading]], tuple[float, float]]] = {
    "engine": weighted_centroid, "strongest": strongest_anchor, "centroid3": centroid_of_three,
}
