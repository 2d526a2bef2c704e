"""The nightly segmentation's body: facts from a few set-based reads, the rules in numpy, bulk writes.

``segments.run`` calls :func:`compute` then :func:`store`. No per-member query and no per-member ORM
object: the purchases are read once, grouped by member and mall-local day (segment_facts), and every
rule works on whole columns (segment_rules). See docs/segments.md.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from mallapp.domain import clv
from mallapp.domain import segment_facts as facts
from mallapp.domain import segment_rules as rules
from mallapp.domain.segment_facts import day_number, from_day_number
from mallapp.domain.segment_rules import LIFECYCLE_STATES, NONE, PYRAMID_LEVELS, RFM_SEGMENTS, T_TIERS
from mallapp.errors import MallError
from mallapp.settings import Settings

WEEK = 7.0
DAYS_PER_MONTH = 365.25 / 12


def window_start(today: date, months: int) -> date:
    """The first day of the rolling window of ``months`` ending with ``today``: the same day ``months`` earlier, + 1."""
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    month += 1
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1])) + timedelta(days=1)


def previous_month(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


@dataclass
class Computed:
    """Every member's row of the month, as columns, and what the run used."""

    today: date
    month: date
    window_start: date
    ids: np.ndarray
    columns: dict[str, np.ndarray]
    transitions: list[tuple[int, str | None, str, str]]  # (member, from, to, cause)
    tiers: dict[int, str | None]
    parameters: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)


def _index(ids: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``member`` ids in the sorted ``ids``, and a mask of those found."""
    pos = np.searchsorted(ids, member)
    pos = np.minimum(pos, max(len(ids) - 1, 0))
    found = (ids[pos] == member) if len(ids) else np.zeros(len(member), dtype=bool)
    return pos, found


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def compute(session: Session, settings: Settings, now: datetime) -> Computed:
    cfg, tz = settings.segments, settings.mall.timezone
    today = settings.mall.local_day(now)
    month, start = today.replace(day=1), window_start(today, cfg.window_months)
    t_day, w_day = day_number(today), day_number(start)
    ids, joined = facts.members(session, tz, now)
    n = len(ids)

    # Purchases by member and day, sorted by (member, day); rows of members not segmented are dropped.
    pm, pday, pspend, ptop, pcount, pfirst, plast = facts.purchase_days(session, tz, now)
    idx, found = _index(ids, pm)
    keep = found & (pday <= t_day)
    idx, pday, pspend, ptop, pcount, pfirst, plast = (a[keep] for a in (idx, pday, pspend, ptop, pcount, pfirst, plast))
    order = np.lexsort((pday, idx))
    idx, pday, pspend, ptop, pcount, pfirst, plast = (a[order] for a in (idx, pday, pspend, ptop, pcount, pfirst, plast))

    # Whole history.
    members_with, starts, days_all = np.unique(idx, return_index=True, return_counts=True)
    ends = starts + days_all - 1
    bought = np.zeros(n, dtype=bool)
    bought[members_with] = True
    first_day = np.zeros(n, dtype=np.int64)
    last_day = np.zeros(n, dtype=np.int64)
    first_at = np.zeros(n, dtype=np.int64)
    last_at = np.zeros(n, dtype=np.int64)
    first_spend = np.zeros(n, dtype=np.int64)
    n_days = np.zeros(n, dtype=np.int64)
    first_day[members_with], last_day[members_with] = pday[starts], pday[ends]
    first_at[members_with], last_at[members_with] = pfirst[starts], plast[ends]
    first_spend[members_with], n_days[members_with] = pspend[starts], days_all
    spend_all = np.bincount(idx, weights=pspend, minlength=n).round().astype(np.int64)

    # The window.
    w = pday >= w_day
    widx = idx[w]
    purchases = np.bincount(widx, weights=pcount[w], minlength=n).astype(np.int64)
    days_w = np.bincount(widx, minlength=n).astype(np.int64)
    spend = np.bincount(widx, weights=pspend[w], minlength=n).round().astype(np.int64)
    largest = np.zeros(n, dtype=np.int64)
    if len(widx):
        wm, wstarts = np.unique(widx, return_index=True)
        largest[wm] = np.maximum.reduceat(ptop[w], wstarts)
    mean_gap, median_gap = rules.gap_stats(widx, pday[w], n)

    # Visits: distinct mall-local days in the window with a purchase, a check-in or a mall visit (as configured).
    vm, vday = facts.visit_days(session, tz, now, start, settings.mall.day_bounds(start)[0], cfg.visit_sources)
    vidx, vfound = _index(ids, vm)
    vin = vfound & (vday >= w_day) & (vday <= t_day)
    vidx, vday = vidx[vin], vday[vin]
    if "purchase" in cfg.visit_sources:
        vidx, vday = np.concatenate([vidx, widx]), np.concatenate([vday, pday[w]])
    keys = np.unique(vidx * 100_000 + (vday - w_day))
    visits = np.bincount(keys // 100_000, minlength=n).astype(np.int64)

    # T1-T4.
    placed = days_w > 0
    if cfg.t_split == "medians":
        visits_cut, spend_cut = rules.median_cuts(visits, spend, placed)
    else:
        visits_cut, spend_cut = float(cfg.often_visits_over), float(cfg.much_spend_over_fen)
    t_tier = rules.t_tiers(visits, spend, placed, visits_cut, spend_cut)

    # The pyramid, by scored spend.
    scored = np.where(placed, rules.scored_spend(spend, largest, days_w, guard=cfg.one_off_guard,
                                                 cap_ratio=cfg.one_off_cap_ratio, floor_fen=cfg.one_off_floor_fen,
                                                 min_days=cfg.one_off_min_days), 0)
    shares = (cfg.pyramid_vip_pct, cfg.pyramid_major_pct, cfg.pyramid_ordinary_pct)
    level, floors = rules.pyramid(scored, placed, shares)

    # RFM over the members with a purchase in the window.
    recency = np.where(bought, t_day - last_day, 0)
    edges = {"r": rules.quintile_edges(-recency[placed]), "f": rules.quintile_edges(days_w[placed]),
             "m": rules.quintile_edges(scored[placed])}
    rfm_r = np.where(placed, rules.quintile_scores(-recency, edges["r"]), NONE) if edges["r"] else np.full(n, NONE)
    rfm_f = np.where(placed, rules.quintile_scores(days_w, edges["f"]), NONE) if edges["f"] else np.full(n, NONE)
    rfm_m = np.where(placed, rules.quintile_scores(scored, edges["m"]), NONE) if edges["m"] else np.full(n, NONE)
    segment = np.where(placed, rules.rfm_segments(rfm_r, rfm_f, rfm_m), NONE)

    # Lifetime value.
    value = _lifetime(settings, bought, n_days, first_day, last_day, spend_all, first_spend, t_day)

    # Lifecycle.
    own = median_gap if cfg.weakening_gap_stat == "median" else mean_gap
    enough = days_w >= cfg.weakening_min_purchase_days
    with_own = enough & np.isfinite(own)
    fallback = float(np.median(own[with_own])) if with_own.any() else float("nan")
    usual_gap = np.where(with_own, own, fallback)
    prev_ids, prev_tiers = facts.previous_tiers(session, previous_month(month))
    before = np.full(n, NONE, dtype=np.int8)
    pidx, pfound = _index(ids, prev_ids)
    before[pidx[pfound]] = prev_tiers[pfound]
    prior = np.full(n, NONE, dtype=np.int8)
    prior_day = np.zeros(n, dtype=np.int64)
    prior_at = np.zeros(n, dtype=np.int64)
    sid, sstate, sday, sat = facts.prior_states(session, today, LIFECYCLE_STATES)
    sidx, sfound = _index(ids, sid)
    prior[sidx[sfound]] = sstate[sfound]
    prior_day[sidx[sfound]] = sday[sfound]
    prior_at[sidx[sfound]] = sat[sfound]
    lc_rules = rules.LifecycleRules(cfg.lost_days, cfg.reactivated_days, cfg.weakening_gap_factor,
                                    cfg.weakening_p_alive_below, cfg.weakening_on_t_tier_drop)
    state, cause = rules.lifecycle_step(
        lc_rules, prior=prior, prior_day=prior_day, prior_at=prior_at, today=t_day, bought=bought,
        first_at=first_at, last_day=last_day, last_at=last_at, joined_day=joined, usual_gap=usual_gap,
        dropped=rules.t_tier_dropped(t_tier, before), p_alive=value["p_alive"])
    moved = np.flatnonzero(cause != NONE)
    transitions = [(int(ids[i]), LIFECYCLE_STATES[prior[i]] if prior[i] != NONE else None,
                    LIFECYCLE_STATES[state[i]], rules.CAUSES[cause[i]]) for i in moved]

    # Next purchase due: the member's own median gap after the last purchase with next_due_min_purchase_days purchase
    # days (0: never, except for members without BG/NBD figures, from weakening_min_purchase_days), else BG/NBD:
    # today + 365 / the purchases expected in the next 365 days, when at least one is expected.
    due = np.full(n, NONE, dtype=np.int64)
    e365 = value["expected_purchases_365"]
    if cfg.next_due_min_purchase_days:
        own_due = (days_w >= cfg.next_due_min_purchase_days) & np.isfinite(median_gap)
    else:
        own_due = enough & np.isfinite(median_gap) & ~np.isfinite(e365)
    due[own_due] = last_day[own_due] + np.ceil(median_gap[own_due]).astype(np.int64)
    model_due = ~own_due & bought & np.isfinite(e365) & (np.nan_to_num(e365) >= 1)
    due[model_due] = t_day + np.ceil(365.0 / e365[model_due]).astype(np.int64)

    # members.tier from the configured view.
    names = {"pyramid": PYRAMID_LEVELS, "t_tier": T_TIERS}.get(cfg.tier_view)
    view = level if cfg.tier_view == "pyramid" else t_tier
    tiers = {int(ids[i]): (names[view[i]] if names and view[i] != NONE else None) for i in range(n)}

    clv_parameters = value.pop("_parameters")
    columns = {
        "purchases": purchases, "purchase_days": days_w, "spend_fen": spend, "scored_spend_fen": scored,
        "visits": visits, "mean_gap_days": _finite(mean_gap), "first_at": np.where(bought, first_at, NONE),
        "last_at": np.where(bought, last_at, NONE), "t_tier": t_tier, "pyramid": level, "rfm_r": rfm_r,
        "rfm_f": rfm_f, "rfm_m": rfm_m, "rfm_segment": segment, "lifecycle": state, "due": due, **value,
    }
    parameters = {
        "as_of": today.isoformat(), "window_start": start.isoformat(), "window_months": cfg.window_months,
        "visit_sources": list(cfg.visit_sources),
        "t_split": {"mode": cfg.t_split, "visits_over": visits_cut, "spend_over_fen": spend_cut},
        "pyramid": {"shares_pct": list(shares), "one_off_guard": cfg.one_off_guard,
                    "min_scored_spend_fen": dict(zip(PYRAMID_LEVELS, floors, strict=False))},
        "rfm_edges": {"recency_days": [-e for e in edges["r"]], "purchase_days": edges["f"],
                      "scored_spend_fen": edges["m"]},
        "lifecycle": {"gap_stat": cfg.weakening_gap_stat, "gap_factor": cfg.weakening_gap_factor,
                      "fallback_gap_days": None if math.isnan(fallback) else fallback,
                      "p_alive_below": cfg.weakening_p_alive_below, "lost_days": cfg.lost_days,
                      "reactivated_days": cfg.reactivated_days},
        "next_due": {"min_purchase_days": cfg.next_due_min_purchase_days},
        **clv_parameters,
    }
    counts = {
        "t_tier": _count(t_tier, T_TIERS), "pyramid": _count(level, PYRAMID_LEVELS),
        "rfm_segment": _count(segment, RFM_SEGMENTS), "lifecycle": _count(state, LIFECYCLE_STATES),
        "with_purchase_in_window": int(placed.sum()),
    }
    return Computed(today, month, start, ids, columns, transitions, tiers, parameters, counts)


def _count(codes: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    bins = np.bincount(codes[codes >= 0].astype(np.int64), minlength=len(names))
    return {name: int(bins[i]) for i, name in enumerate(names)}


def _lifetime(settings: Settings, bought: np.ndarray, n_days: np.ndarray, first_day: np.ndarray,
              last_day: np.ndarray, spend_all: np.ndarray, first_spend: np.ndarray, t_day: int) -> dict[str, Any]:
    """P(alive), expected purchases and spend, and lifetime value per member (NaN where not scored).

    BG/NBD and Gamma-Gamma (mallapp.domain.clv) fitted on the whole purchase history in weeks: a purchase
    is a mall-local day with purchases; frequency = purchase days - 1; monetary = the mean of the repeat days' spend.
    """
    cfg = settings.segments
    n = len(bought)
    out: dict[str, Any] = {k: np.full(n, np.nan) for k in (
        "p_alive", "expected_purchases_30", "expected_purchases_90", "expected_purchases_365", "expected_spend",
        "clv")}
    params: dict[str, Any] = {"bgnbd": None, "gamma_gamma": None, "clv_horizon_months": cfg.clv_horizon_months,
                              "clv_monthly_discount": cfg.clv_monthly_discount, "clv_errors": []}
    out["_parameters"] = params
    b = np.flatnonzero(bought)
    if len(b) == 0:
        return out
    x = (n_days[b] - 1).astype(np.float64)
    t_x = (last_day[b] - first_day[b]) / WEEK
    age = (t_day - first_day[b]) / WEEK
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(x > 0, (spend_all[b] - first_spend[b]) / np.maximum(x, 1), 0.0)
    repeat = int((x > 0).sum())
    if repeat < cfg.clv_min_repeat_buyers:
        params["clv_errors"].append({"model": "bgnbd", "code": "segments.too_few_repeat_buyers",
                                     "message": f"{repeat} members bought on two days or more; "
                                                f"clv_min_repeat_buyers is {cfg.clv_min_repeat_buyers}"})
        return out
    try:
        bg = clv.fit_bgnbd(x, t_x, age)
        params["bgnbd"] = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "log_likelihood": bg.log_likelihood}
        scored = {"p_alive": clv.p_alive(bg, x, t_x, age)}
        for days in (30, 90, 365):
            scored[f"expected_purchases_{days}"] = clv.expected_purchases(bg, days / WEEK, x, t_x, age)
        purchases = clv.discounted_purchases(bg, x, t_x, age, horizon_months=cfg.clv_horizon_months,
                                             monthly_discount=cfg.clv_monthly_discount,
                                             units_per_month=DAYS_PER_MONTH / WEEK)
    except MallError as exc:   # no fit, or figures the model cannot give for these data: nothing stored
        params["bgnbd"] = None
        params["clv_errors"].append({"model": "bgnbd", "code": exc.code, "message": str(exc)})
        return out
    for key, values in scored.items():
        out[key][b] = values
    # The spend model sees each repeat buyer's mean repeat spend capped at a high percentile: the one-off guard's
    # reasoning again, and what keeps Gamma-Gamma's tail finite on a mall's baskets.
    cap = float(np.percentile(monetary[x > 0], cfg.clv_spend_cap_pct)) if repeat else 0.0
    capped = np.minimum(monetary, cap)
    params["spend_cap_fen"] = round(cap)
    try:
        gg = clv.fit_gamma_gamma(x, capped)
        params["gamma_gamma"] = {"p": gg.p, "q": gg.q, "gamma": gg.gamma, "log_likelihood": gg.log_likelihood}
        spend = clv.expected_spend(gg, x, capped)
        params["spend_model"] = "gamma_gamma"
    except MallError as exc:
        params["gamma_gamma"] = None
        params["clv_errors"].append({"model": "gamma_gamma", "code": exc.code, "message": str(exc)})
        spend = clv.shrunk_spend(x, capped, prior_weight=cfg.clv_spend_prior_days)
        params["spend_model"] = "shrunk_mean"
    value = purchases * spend
    out["expected_spend"][b] = spend
    out["clv"][b] = value
    return out


# --- writing ---------------------------------------------------------------------------------------

SNAPSHOT_COLUMNS = (
    "member_id", "month", "as_of", "window_start", "purchases", "purchase_days", "spend_fen", "scored_spend_fen",
    "visits", "mean_gap_days", "first_purchase_at", "last_purchase_at", "t_tier", "pyramid", "rfm_r", "rfm_f",
    "rfm_m", "rfm_segment", "lifecycle", "p_alive", "expected_purchases_30", "expected_purchases_90",
    "expected_purchases_365", "expected_spend_fen", "clv_fen", "next_purchase_due", "computed_at")


def _names(codes: np.ndarray, names: tuple[str, ...]) -> list[str | None]:
    return [names[c] if c >= 0 else None for c in codes.tolist()]


def _floats(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if math.isnan(v) else round(v, digits) for v in values.tolist()]


def _fen(values: np.ndarray) -> list[int | None]:
    return [None if math.isnan(v) else int(round(v)) for v in values.tolist()]


def _instants(values: np.ndarray) -> list[datetime | None]:
    return [None if v < 0 else datetime.fromtimestamp(v, UTC).replace(tzinfo=None) for v in values.tolist()]


def _ints(values: np.ndarray) -> list[int | None]:
    return [None if v < 0 else v for v in values.tolist()]


def snapshot_rows(c: Computed, now: datetime) -> list[tuple[Any, ...]]:
    """The month's snapshot rows as plain tuples in :data:`SNAPSHOT_COLUMNS` order (UTC instants naive)."""
    col = c.columns
    stamp = now.astimezone(UTC).replace(tzinfo=None)
    due = [None if v == NONE else from_day_number(v) for v in col["due"].tolist()]
    n = c.n
    per_member = zip(
        c.ids.tolist(), col["purchases"].tolist(), col["purchase_days"].tolist(), col["spend_fen"].tolist(),
        col["scored_spend_fen"].tolist(), col["visits"].tolist(), _floats(col["mean_gap_days"], 3),
        _instants(col["first_at"]), _instants(col["last_at"]), _names(col["t_tier"], T_TIERS),
        _names(col["pyramid"], PYRAMID_LEVELS), _ints(col["rfm_r"]), _ints(col["rfm_f"]), _ints(col["rfm_m"]),
        _names(col["rfm_segment"], RFM_SEGMENTS), _names(col["lifecycle"], LIFECYCLE_STATES),
        _floats(col["p_alive"], 6), _floats(col["expected_purchases_30"], 6),
        _floats(col["expected_purchases_90"], 6), _floats(col["expected_purchases_365"], 6),
        _fen(col["expected_spend"]), _fen(col["clv"]), due, strict=True)
    assert n == len(c.ids)
    return [(m, c.month, c.today, c.window_start, *rest[:9], *rest[9:], stamp)
            for m, *rest in per_member]


def store(session: Session, c: Computed, now: datetime) -> int:
    """Write the month's snapshots, today's transitions and members.tier; return the transitions recorded today."""
    session.flush()
    session.execute(text("DELETE FROM member_snapshots WHERE month = :month"), {"month": c.month})
    facts.copy_rows(session, "member_snapshots", SNAPSHOT_COLUMNS, snapshot_rows(c, now))

    # Today's transitions: keep those still true, remove the others (a rerun on new data), add the new ones.
    existing = session.execute(text("SELECT id, member_id, from_state, to_state, cause FROM lifecycle_transitions "
                                    "WHERE day = :day"), {"day": c.today}).all()
    wanted = {(m, f, t, why) for m, f, t, why in c.transitions}
    have = {(r.member_id, r.from_state, r.to_state, r.cause): r.id for r in existing}
    stale = [row_id for key, row_id in have.items() if key not in wanted]
    for i in range(0, len(stale), 1000):
        session.execute(text("DELETE FROM lifecycle_transitions WHERE id IN ({})".format(
            ", ".join(str(int(x)) for x in stale[i:i + 1000]))))
    stamp = now.astimezone(UTC).replace(tzinfo=None)
    new = sorted(key for key in wanted if key not in have)
    facts.copy_rows(session, "lifecycle_transitions", ("member_id", "day", "from_state", "to_state", "cause",
                                                       "created_at"),
                    ((m, c.today, f, t, why, stamp) for m, f, t, why in new))

    current = facts.current_tiers(session)
    changes = [(m, tier) for m, tier in c.tiers.items() if current.get(m) != tier]
    facts.set_tiers(session, changes)
    session.expire_all()
    return len(wanted)
