"""The statistics of a campaign's effect: treated against control, with 95% confidence intervals.

- Conversion (the share who bought within the window): the difference of two independent proportions,
  with Newcombe's hybrid score interval (Newcombe 1998, "method 10"), built from each arm's Wilson
  score interval. Unlike the Wald interval it stays inside [-1, 1] and behaves with few buyers or
  small arms.
- Spend per member (non-buyers count as 0): the difference of two means with Welch's interval
  (unequal variances, Welch-Satterthwaite degrees of freedom).

Pure functions of counts and sums; None where an arm is too small to say anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import norm, t

Z95 = float(norm.ppf(0.975))  # 1.959963984540054


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    if n <= 0:
        raise ValueError("n is positive")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval | None:
    """p1 - p2 with Newcombe's hybrid score interval; None when an arm is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return Interval(d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


@dataclass(frozen=True)
class Moments:
    """An arm's values summarised: count, mean and sample variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Moments:
        n = len(values)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(values) / n
        variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)


def welch(a: Moments, b: Moments, level: float = 0.95) -> Interval | None:
    """mean(a) - mean(b) with Welch's interval; None when an arm has fewer than two values."""
    if a.n < 2 or b.n < 2:
        return None
    d = a.mean - b.mean
    va, vb = a.variance / a.n, b.variance / b.n
    se2 = va + vb
    if se2 == 0:
        return Interval(d, d, d)
    df = se2 ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    half = float(t.ppf(0.5 + level / 2, df)) * math.sqrt(se2)
    return Interval(d, d - half, d + half)
