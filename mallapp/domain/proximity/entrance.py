"""The entrance rule: when sightings of a member mean the member is inside the mall. Pure functions.

The old rule checked a member in after ``min_updates`` batches of *any* sighting spanning
``min_span_s``: an entrance zone's beacon is heard metres beyond its door, so a passer-by or
someone waiting outside was checked in. The rule here asks for **interior confirmation**:

- an *interior* anchor is one whose zone is not an entrance (a beacon or gateway in a store, an
  area, an item display, or in no zone at all); entrance anchors never confirm;
- per batch, the *interior level* is the best, over interior anchors with at least
  ``min_readings`` readings in the window, of ``filter(window) - reference power`` (dB relative to
  the anchor's calibrated 1 m level; the frame's advertised power where the anchor has none). The
  filter is a robust one (AltBeacon's trimmed mean by default): the occasional strong multipath
  reading an outside tag gets through glass wins a maximum, not a trimmed mean;
- a batch *confirms* when the interior level is at least ``interior_min_db``; the mall is entered
  after ``min_updates`` confirming batches in a row spanning at least ``min_span_s`` (an
  unconfirmed batch starts the count again).

With ``require_interior = false`` every batch confirms and the old rule is back. The engine
(:meth:`mallapp.domain.proximity.engine.Engine.update`) and the labelled-recording evaluation
(:mod:`mallapp.domain.proximity.entrance_evaluate`) call the same functions below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mallapp.domain.proximity.locate import FILTERS

Filter = Callable[[list[int]], float]


def trimmed_mean_20(values: list[int]) -> float:
    """A harder trim than AltBeacon's: drop the top and bottom 20% of the window, average the rest."""
    n = len(values)
    if n < 3:
        return sum(values) / n
    ordered = sorted(values)
    k = max(1, int(n * 0.2))
    kept = ordered[k:n - k] or ordered[n // 2:n // 2 + 1]
    return sum(kept) / len(kept)


# The filters the entrance rule may use: the engine's own (mallapp.domain.proximity.locate.FILTERS)
# and a 20% trimmed mean, which locate.py (owned by positioning) does not have.
ENTRANCE_FILTERS: dict[str, Filter] = {**FILTERS, "trimmed_mean_20": trimmed_mean_20}


def interior_level(windows: Iterable[tuple[list[int], float]], filt: Filter, min_readings: int) -> float | None:
    """The best filtered level above the reference power over interior anchors' windows (readings,
    reference power), or None when no interior anchor has ``min_readings`` readings in its window."""
    best: float | None = None
    for rssis, reference in windows:
        if len(rssis) < min_readings:
            continue
        level = filt(rssis) - reference
        if best is None or level > best:
            best = level
    return best


def confirms(level: float | None, min_db: float) -> bool:
    """Whether a batch's interior level says inside."""
    return level is not None and level >= min_db


Run = tuple[float | None, float, int]  # a member's run of confirming batches: (since, last batch, batches)


def step(run: Run, now: float, first: float, batches: int, confirmed: bool, timeout_s: float, min_updates: int,
         min_span_s: float) -> tuple[Run, bool]:
    """Count ``batches`` fresh batches (the first at ``first``) into the run; the new run, and whether the mall
    is entered (the caller then records the entry and clears the run).

    A confirming batch extends the run (a new run starts when the last one is more than ``timeout_s``
    old); an unconfirmed one ends it. With every batch confirming this is the old any-sighting rule.
    """
    if not confirmed:
        return (None, 0.0, 0), False
    since, last, updates = run
    if since is None or first - last > timeout_s:
        since, updates = first, 0
    updates += batches
    return (since, now, updates), updates >= min_updates and now - since >= min_span_s
