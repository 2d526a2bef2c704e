"""Simulate a restaurant's queue day after day and score the wait estimate against the naive one.

``python -m mallapp.domain.queueing.evaluate [--days 21] [--eval-days 7] [--seed 7]``

A seeded random model of one restaurant: parties arrive all day (a Poisson process whose rate peaks
at lunch and dinner, busier at weekends, every day a little different), 55% of them of 1-2 people,
33% of 3-4, 12% of 5-8; each band has its own tables (8 for two, 6 for four, 3 large ones) and
its own dining times (lognormal; shorter at lunch). Every party takes a number; when a table of its
band frees, the first party waiting is called. Some never come back (a no-show holds the table for
the grace period) and some give up and cancel when the wait runs past their patience.

For every ticket the estimate shown at take-number time is computed as the service computes it:
the estimator fitted on the restaurant's own earlier days (:mod:`mallapp.domain.queueing.estimator`, the
settings' defaults), and the naive estimate (parties ahead x ``naive_seconds_per_party``) beside it,
plus the naive estimate with the best fixed average the history offers (least squares), so the
learned one is not judged against a badly chosen constant. The first days only build history; the
mean absolute error is over the called tickets of the last ``--eval-days`` days. The GOAL line
asks for at least 20% lower error than the better of the two naive estimates.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from mallapp.domain.queueing.estimator import Aggregate, Observation, Params, aggregate, fit, naive
from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

GOAL = 0.20
OPEN_MINUTE, CLOSE_MINUTE = 10 * 60, 21 * 60
TABLES = {"A": 8, "B": 6, "C": 3}
DINING_MINUTES = {"A": 38.0, "B": 52.0, "C": 75.0}
NO_SHOW = 0.06
NO_SHOW_HOLD_MINUTES = 10.0
PATIENCE_MINUTES = 80.0


@dataclass
class Ticket:
    band: str
    day: int
    minute: float
    ahead: int
    estimate_s: int
    naive_s: int
    history_naive_s: int
    wait_s: float | None = None  # None: cancelled before being called


@dataclass
class Result:
    days: int
    eval_days: int
    seed: int
    called: int
    cancelled: int
    mae_learned_s: float
    mae_naive_s: float
    mae_history_naive_s: float
    per_band: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    @property
    def best_naive_s(self) -> float:
        return min(self.mae_naive_s, self.mae_history_naive_s)

    @property
    def improvement(self) -> float:
        return 1 - self.mae_learned_s / self.best_naive_s if self.best_naive_s else 0.0


def _band(size: int) -> str:
    return "A" if size <= 2 else "B" if size <= 4 else "C"


def _arrival_rate(minute: float, busy: float) -> float:
    """Parties per minute: a trickle all day, peaks at lunch (12:15) and dinner (18:45)."""
    lunch = math.exp(-((minute - 735) / 45) ** 2 / 2)
    dinner = math.exp(-((minute - 1125) / 60) ** 2 / 2)
    return busy * (0.06 + 0.55 * lunch + 0.6 * dinner)


def _arrivals(rng: random.Random, busy: float) -> list[tuple[float, str]]:
    top = _arrival_rate(1125, busy) * 1.2
    out, t = [], float(OPEN_MINUTE)
    while True:  # thinning
        t += rng.expovariate(top)
        if t >= CLOSE_MINUTE - 60:
            return out
        if rng.random() < _arrival_rate(t, busy) / top:
            r = rng.random()
            size = rng.randint(1, 2) if r < 0.55 else rng.randint(3, 4) if r < 0.88 else rng.randint(5, 8)
            out.append((t, _band(size)))


def _simulate_day(rng: random.Random, day: int, estimate, seconds_per_party: float,
                  history_per_party: float) -> list[Ticket]:
    busy = (1.35 if day % 7 in (5, 6) else 1.0) * math.exp(rng.gauss(0, 0.15))
    tickets: list[Ticket] = []
    for band, tables in TABLES.items():
        arrivals = [t for t, b in _arrivals(rng, busy) if b == band]
        events: list[tuple[float, int, str, int]] = []  # (minute, order, kind, ticket index)
        order = 0
        for t in arrivals:
            events.append((t, order, "arrive", -1))
            order += 1
        heapq.heapify(events)
        free, line = tables, []  # line: indexes of waiting tickets, in number order
        while events:
            now, _, kind, idx = heapq.heappop(events)
            if kind == "arrive":
                ahead = len(line)
                minute = int(now)
                tickets.append(Ticket(band, day, now, ahead, estimate(band, minute, ahead),
                                      naive(ahead, seconds_per_party), naive(ahead, history_per_party)))
                idx = len(tickets) - 1
                line.append(idx)
                heapq.heappush(events, (now + rng.expovariate(1 / PATIENCE_MINUTES), order, "give_up", idx))
                order += 1
            elif kind == "give_up":
                if idx in line:
                    line.remove(idx)
            else:  # a table frees
                free += 1
            while free and line:
                called = tickets[line.pop(0)]
                called.wait_s = (now - called.minute) * 60
                free -= 1
                if rng.random() < NO_SHOW:
                    hold = NO_SHOW_HOLD_MINUTES
                else:
                    pace = 0.85 if now < 15 * 60 else 1.1
                    hold = DINING_MINUTES[band] * pace * math.exp(rng.gauss(-0.045, 0.3))
                heapq.heappush(events, (now + hold, order, "free", -1))
                order += 1
    return tickets


def run(days: int = 21, eval_days: int = 7, seed: int = 7, params: Params | None = None,
        history_days: int = 28) -> Result:
    """Simulate ``days`` days; score the estimates shown on the last ``eval_days``."""
    if not 0 < eval_days < days:
        raise ValueError("eval_days must be at least 1 and fewer than days")
    params = params or Params()
    rng = random.Random(seed)
    history: dict[int, list[Observation]] = {}
    scored: list[Ticket] = []
    cancelled = 0
    for day in range(days):
        window = [d for d in history if day - d <= history_days]
        aggregates: list[Aggregate] = []
        sum_xy = sum_xx = 0.0
        for d in window:
            observations = [Observation(o.band, day - d, o.minute, o.ahead, o.wait_s) for o in history[d]]
            aggregates.extend(aggregate(observations, params.slot_minutes))
            sum_xy += sum(o.ahead * o.wait_s for o in observations)
            sum_xx += sum(o.ahead * o.ahead for o in observations)
        model = fit(aggregates, params)
        history_per_party = sum_xy / sum_xx if sum_xx else params.naive_seconds_per_party
        tickets = _simulate_day(rng, day, model.estimate, params.naive_seconds_per_party, history_per_party)
        history[day] = [Observation(t.band, 0, int(t.minute), t.ahead, t.wait_s) for t in tickets
                        if t.wait_s is not None]
        if day >= days - eval_days:
            scored.extend(t for t in tickets if t.wait_s is not None)
            cancelled += sum(t.wait_s is None for t in tickets)

    def mae(tickets: Sequence[Ticket], attr: str) -> float:
        return sum(abs(getattr(t, attr) - t.wait_s) for t in tickets) / len(tickets) if tickets else 0.0

    by_band: dict[str, list[Ticket]] = defaultdict(list)
    for t in scored:
        by_band[t.band].append(t)
    return Result(days, eval_days, seed, len(scored), cancelled, mae(scored, "estimate_s"), mae(scored, "naive_s"),
                  mae(scored, "history_naive_s"),
                  {band: (len(ts), mae(ts, "estimate_s"), min(mae(ts, "naive_s"), mae(ts, "history_naive_s")))
                   for band, ts in sorted(by_band.items())})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mallapp.domain.queueing.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=21, help="days simulated (history, then the scored days)")
    parser.add_argument("--eval-days", type=int, default=7, help="the last days, whose estimates are scored")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    q = load_settings(overlay=DEMO_SETTINGS_FILE).queue  # only [queue]; the demo fills the mall's required keys
    params = Params(q.naive_seconds_per_party, q.half_life_days, q.slot_minutes, q.shrinkage)
    r = run(args.days, args.eval_days, args.seed, params, q.history_days)
    out = sys.stdout
    out.write(f"queue wait estimate: {r.days} simulated days (seed {r.seed}), scored on the last {r.eval_days}: "
              f"{r.called} tickets called, {r.cancelled} cancelled\n")
    out.write(f"  {'estimate':<44} {'MAE':>9}\n")
    out.write(f"  {'learned (band x time of day, own history)':<44} {r.mae_learned_s / 60:>7.1f} min\n")
    out.write(f"  {f'naive: ahead x {params.naive_seconds_per_party:.0f} s (the setting)':<44} "
              f"{r.mae_naive_s / 60:>7.1f} min\n")
    out.write(f"  {'naive: ahead x the best history average':<44} {r.mae_history_naive_s / 60:>7.1f} min\n")
    for band, (n, learned, best) in r.per_band.items():
        out.write(f"  band {band}: {n:>5} called, learned {learned / 60:5.1f} min, better naive {best / 60:5.1f} min\n")
    out.write(f"improvement over the better naive estimate: {r.improvement:.0%}\n")
    out.write(f"GOAL (at least {GOAL:.0%} lower error than naive): {'MET' if r.improvement >= GOAL else 'MISSED'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
