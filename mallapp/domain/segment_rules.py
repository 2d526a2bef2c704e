"""The segmentation's pure rules, over numpy arrays with one element per member (docs/segments.md).

No database here: ``segments.run`` gathers the facts, these functions place the members, and the unit
tests check each rule on small arrays. Codes are small integers: ``T_TIERS[i]``, ``PYRAMID_LEVELS[i]``,
``RFM_SEGMENTS[i]``, ``LIFECYCLE_STATES[i]``, ``CAUSES[i]``; ``NONE`` (-1) where a rule places nobody.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

T_TIERS = ("T1", "T2", "T3", "T4")
PYRAMID_LEVELS = ("vip", "major", "ordinary", "small")
LIFECYCLE_STATES = ("new", "active", "weakening", "lost", "reactivated")
RFM_SEGMENTS = ("champions", "loyal", "potential_loyalist", "new", "promising", "need_attention",
                "about_to_sleep", "at_risk", "cant_lose_them", "hibernating", "lost")
NONE = -1
T1, T2, T3, T4 = 0, 1, 2, 3
NEW, ACTIVE, WEAKENING, LOST, REACTIVATED = 0, 1, 2, 3, 4   # segments.LIFECYCLE_STATES
CAUSES = ("joined", "purchase", "first_purchase", "t_tier_drop", "overdue", "p_alive_low", "no_recent_purchase",
          "never_bought", "bought_again", "settled")
(C_JOINED, C_PURCHASE, C_FIRST_PURCHASE, C_T_TIER_DROP, C_OVERDUE, C_P_ALIVE_LOW, C_NO_RECENT_PURCHASE,
 C_NEVER_BOUGHT, C_BOUGHT_AGAIN, C_SETTLED) = range(len(CAUSES))


# --- T1-T4 -----------------------------------------------------------------------------------------

def median_cuts(visits: np.ndarray, spend: np.ndarray, placed: np.ndarray) -> tuple[float, float]:
    """The medians of visits and spend over the ``placed`` members (0, 0 when there are none)."""
    if not placed.any():
        return 0.0, 0.0
    return float(np.median(visits[placed])), float(np.median(spend[placed]))


def t_tiers(visits: np.ndarray, spend: np.ndarray, placed: np.ndarray, visits_cut: float,
            spend_cut: float) -> np.ndarray:
    """T1 often and much, T2 rarely but much, T3 often but little, T4 rarely and little.

    Often: more visits than ``visits_cut``; much: more spend than ``spend_cut``. Members not ``placed``
    (no purchase in the window) get NONE.
    """
    often = visits > visits_cut
    much = spend > spend_cut
    tier = np.where(much, np.where(often, T1, T2), np.where(often, T3, T4))
    return np.where(placed, tier, NONE).astype(np.int8)


# (often, much) per tier: a drop is a fall on one axis or both, with no rise on the other.
_OFTEN = np.array([1, 0, 1, 0])
_MUCH = np.array([1, 1, 0, 0])


def t_tier_dropped(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """True where both months have a T-tier and ``now`` is below ``before`` (T1 to T2/T3/T4, T2 or T3 to T4)."""
    both = (now >= 0) & (before >= 0)
    n, b = np.clip(now, 0, 3), np.clip(before, 0, 3)
    lower = (_OFTEN[n] <= _OFTEN[b]) & (_MUCH[n] <= _MUCH[b]) & (n != b)
    return both & lower


# --- the one-off guard and the pyramid -------------------------------------------------------------

def scored_spend(spend: np.ndarray, largest: np.ndarray, purchase_days: np.ndarray, *, guard: str,
                 cap_ratio: float, floor_fen: int, min_days: int) -> np.ndarray:
    """The spend the pyramid ranks, with one-off large purchases damped (integer fen).

    ``cap_largest``: the largest purchase counts at most ``cap_ratio`` x the member's other purchases
    together, or ``floor_fen`` when that is more. ``min_days``: spend x min(1, purchase_days / min_days).
    """
    spend = spend.astype(np.int64)
    if guard == "none":
        return spend
    if guard == "min_days":
        return (spend * np.minimum(purchase_days, min_days) // min_days).astype(np.int64)
    rest = spend - largest
    cap = np.maximum(np.floor(rest * cap_ratio).astype(np.int64), floor_fen)
    return rest + np.minimum(largest, cap)


def level_counts(n: int, shares_pct: tuple[float, ...]) -> list[int]:
    """How many of ``n`` ranked members the top levels reach, cumulatively, rounded up (the last level: n)."""
    out, total = [], 0.0
    for share in shares_pct:
        total += share
        out.append(min(n, math.ceil(n * total / 100 - 1e-9)))
    return [*out, n]


def pyramid(scores: np.ndarray, placed: np.ndarray, shares_pct: tuple[float, ...]) -> tuple[np.ndarray, list[int]]:
    """Levels 0 (vip) .. len(shares) by score among the ``placed``; return (levels, each level's lowest score).

    Level k takes the best ``level_counts`` places; members whose score equals the score at a level's
    last place share that (better) level, so equal scores never split.
    """
    levels = np.full(scores.shape, NONE, dtype=np.int8)
    ranked = np.sort(scores[placed])[::-1]
    n = len(ranked)
    if n == 0:
        return levels, []
    cuts = [int(ranked[c - 1]) if c > 0 else None for c in level_counts(n, shares_pct)]
    floors: list[int] = []
    assigned = ~placed
    for level, cut in enumerate(cuts):
        if cut is None:
            floors.append(floors[-1] if floors else int(ranked[0]) + 1)
            continue
        take = ~assigned & (scores >= cut)
        levels[take] = level
        assigned |= take
        floors.append(cut)
    return levels, floors


# --- RFM -------------------------------------------------------------------------------------------

def quintile_edges(values: np.ndarray) -> list[float]:
    """The 20th, 40th, 60th and 80th percentiles (values of the data: numpy's inverted CDF)."""
    if len(values) == 0:
        return []
    return [float(v) for v in np.percentile(values, [20, 40, 60, 80], method="inverted_cdf")]


def quintile_scores(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """1 + the number of edges strictly below each value (1..5; equal values share a score)."""
    return (1 + np.searchsorted(np.asarray(edges, dtype=float), values, side="left")).astype(np.int8)


# The named segments, first match wins, as (segment, R range, F range, M range); every (R, F, M) matches one.
RFM_RULES: tuple[tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]], ...] = (
    ("champions", (4, 5), (4, 5), (4, 5)),
    ("loyal", (3, 5), (4, 5), (1, 5)),
    ("potential_loyalist", (4, 5), (2, 3), (1, 5)),
    ("new", (5, 5), (1, 1), (1, 5)),
    ("promising", (4, 4), (1, 1), (1, 5)),
    ("need_attention", (3, 3), (3, 3), (1, 5)),
    ("about_to_sleep", (3, 3), (1, 2), (1, 5)),
    ("cant_lose_them", (1, 2), (4, 5), (4, 5)),
    ("at_risk", (1, 2), (3, 5), (1, 5)),
    ("hibernating", (2, 2), (1, 2), (1, 5)),
    ("lost", (1, 1), (1, 2), (1, 5)),
)


def rfm_segments(r: np.ndarray, f: np.ndarray, m: np.ndarray, names: tuple[str, ...] = RFM_SEGMENTS) -> np.ndarray:
    """Each member's segment (an index into ``names``) by the first rule of :data:`RFM_RULES` that matches."""
    out = np.full(r.shape, NONE, dtype=np.int8)
    for name, (r0, r1), (f0, f1), (m0, m1) in RFM_RULES:
        hit = (out == NONE) & (r >= r0) & (r <= r1) & (f >= f0) & (f <= f1) & (m >= m0) & (m <= m1)
        out[hit] = names.index(name)
    return out


# --- purchase gaps ---------------------------------------------------------------------------------

def gap_stats(member: np.ndarray, day: np.ndarray, n_members: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and median gap (days) between each member's consecutive purchase days; NaN with no gap.

    ``member`` and ``day`` are sorted by (member, day), one row per member and purchase day.
    """
    mean = np.full(n_members, np.nan)
    median = np.full(n_members, np.nan)
    if len(member) < 2:
        return mean, median
    same = member[1:] == member[:-1]
    gaps = (day[1:] - day[:-1])[same].astype(np.float64)
    owner = member[1:][same]
    if len(gaps) == 0:
        return mean, median
    counts = np.bincount(owner, minlength=n_members)
    sums = np.bincount(owner, weights=gaps, minlength=n_members)
    has = counts > 0
    mean[has] = sums[has] / counts[has]
    order = np.lexsort((gaps, owner))
    g, o = gaps[order], owner[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    c = counts[has]
    s = starts[has]
    low = g[s + (c - 1) // 2]
    high = g[s + c // 2]
    median[has] = (low + high) / 2
    del o
    return mean, median


# --- lifecycle -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LifecycleRules:
    lost_days: int
    reactivated_days: int
    gap_factor: float
    p_alive_below: float
    on_t_tier_drop: bool


def lifecycle_step(rules: LifecycleRules, *, prior: np.ndarray, prior_day: np.ndarray, prior_at: np.ndarray,
                   today: int, bought: np.ndarray, first_at: np.ndarray, last_day: np.ndarray, last_at: np.ndarray,
                   joined_day: np.ndarray, usual_gap: np.ndarray, dropped: np.ndarray,
                   p_alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each member's lifecycle state today and the cause of a move (NONE where the state did not change).

    ``prior``: the state before today (NONE: never classified); ``prior_day``/``prior_at``: the day and the
    instant (epoch seconds) the member entered it. ``first_at``: the first purchase (epoch seconds);
    ``last_day``/``last_at``: the last purchase (day number, epoch seconds); ``usual_gap``: the gap the recency is compared with (NaN: none). One step per run.
    """
    n = len(prior)
    recency = np.where(bought, today - last_day, 0)
    lost = np.where(bought, recency >= rules.lost_days, today - joined_day >= rules.lost_days)
    lost_cause = np.where(bought, C_NO_RECENT_PURCHASE, C_NEVER_BOUGHT)
    with np.errstate(invalid="ignore"):
        overdue = bought & ~np.isnan(usual_gap) & (recency > rules.gap_factor * np.nan_to_num(usual_gap, nan=0.0))
        unlikely = bought & ~np.isnan(p_alive) & (np.nan_to_num(p_alive, nan=1.0) < rules.p_alive_below)
    drop = dropped & rules.on_t_tier_drop
    weak = drop | overdue | unlikely
    weak_cause = np.where(drop, C_T_TIER_DROP, np.where(overdue, C_OVERDUE, C_P_ALIVE_LOW))

    state = prior.astype(np.int8).copy()
    cause = np.full(n, NONE, dtype=np.int8)

    def move(mask: np.ndarray, to: int, why: np.ndarray | int) -> None:
        state[mask] = to
        cause[mask] = why[mask] if isinstance(why, np.ndarray) else why

    # Never classified: today's state from today's facts.
    first = prior == NONE
    move(first & lost, LOST, lost_cause)
    move(first & ~lost & ~bought, NEW, C_JOINED)
    move(first & ~lost & bought & weak, WEAKENING, weak_cause)
    move(first & ~lost & bought & ~weak, ACTIVE, C_PURCHASE)
    # New: no purchase yet since joining.
    was = prior == NEW
    move(was & lost, LOST, lost_cause)
    move(was & ~lost & bought, ACTIVE, C_FIRST_PURCHASE)
    # Active: weakening or lost.
    was = prior == ACTIVE
    move(was & lost, LOST, lost_cause)
    move(was & ~lost & weak, WEAKENING, weak_cause)
    # Weakening: lost, or reactivated by a purchase after it set in.
    was = prior == WEAKENING
    again = bought & (last_at > prior_at)
    move(was & lost, LOST, lost_cause)
    move(was & ~lost & again, REACTIVATED, C_BOUGHT_AGAIN)
    # Lost: reactivated by a purchase (the first one, for a member who never bought).
    was = prior == LOST
    move(was & ~lost & bought, REACTIVATED, np.where(first_at > prior_at, C_FIRST_PURCHASE, C_BOUGHT_AGAIN))
    # Reactivated: active again after reactivated_days, or weakening if a cause holds then.
    was = prior == REACTIVATED
    settled = today - prior_day >= rules.reactivated_days
    move(was & lost, LOST, lost_cause)
    move(was & ~lost & settled & weak, WEAKENING, weak_cause)
    move(was & ~lost & settled & ~weak, ACTIVE, C_SETTLED)
    return state, cause
