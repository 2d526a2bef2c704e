"""Synthetic member history: members, a year of purchases, check-ins and mall visits, deterministic by seed.

The members follow the behaviours the articles describe, each a share of the members (``BEHAVIOURS``):
the four activity tiers (often or rarely × much or little), members weakening (a T1-like year whose last
months fall to a few small purchases), members lost (nothing for more than a year), members joining
through the year, a blanket New Year promotion's spike of members who buy once if at all, and one-off
big spenders (one 100,000-yuan purchase). Days follow a weekly rhythm (weekends busier) and a seasonal
one (the New Year and December busier); purchases fall within opening hours (10:00–22:00 mall-local).

Rows are what the app itself would write. Two ways to treat points, by ``with_points``:

- ``True`` (the demo): every purchase and check-in credits its points as ``points.credit`` would: an
  entry with the same idempotency key, a lot expiring as ``points.expiry_for`` says, the account's
  balance and expiry hint, so ``points.check_invariants`` holds.
- ``False`` (the scale benchmark): purchases and check-ins record ``points_earned = 0`` / ``points = 0``,
  as history imported from before the points scheme would; the ledger is left empty and so is sound.

Everything is drawn with numpy from one seed in a fixed order, so a seed gives the same rows on SQLite
and PostgreSQL. On PostgreSQL the rows go in by ``COPY ... (FORMAT binary)`` built straight from numpy
arrays; on SQLite by ``executemany``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from mallapp.devtools.history_load import BULK_TABLES, Rows, drop_keys, load
from mallapp.domain.members import Member
from mallapp.settings import Settings

# name: share of members, purchases a year, mean purchase (fen), spread (lognormal sigma),
#       visits a year without a purchase, chance a visit day has a check-in
BEHAVIOURS: dict[str, tuple[float, float, int, float, float, float]] = {
    "t1": (0.07, 36, 80_000, 0.6, 20, 0.5),        # often and much
    "t2": (0.08, 5, 150_000, 0.7, 2, 0.2),         # rarely but much
    "t3": (0.17, 30, 3_000, 0.5, 25, 0.5),         # often but little
    "t4": (0.279, 4, 8_000, 0.6, 2, 0.2),          # rarely and little (often a one-store devotee)
    "weakening": (0.10, 30, 40_000, 0.6, 10, 0.4),  # as T1 until the last months, then a few purchases
    "lost": (0.10, 8, 15_000, 0.6, 3, 0.2),        # bought, then nothing for more than a year
    "promo": (0.10, 0, 5_000, 0.5, 1, 0.3),        # joined in the New Year promotion; once if at all
    "new": (0.09, 12, 15_000, 0.6, 6, 0.3),        # joined through the year
    "oneoff": (0.001, 0, 10_000_000, 0.0, 0, 0.0),  # one 100,000-yuan purchase
}
ONE_OFF_FEN = 10_000_000
CHUNK = 100_000                  # members drawn and loaded at a time
WEAKENING_MONTHS = 4             # a weakening member's last months
WEAKENING_RATE = 3.0             # purchases a year in those months
OPENING_HOURS = range(10, 22)
HOUR_WEIGHTS = np.array([3, 5, 9, 8, 5, 5, 6, 8, 9, 8, 5, 2], dtype=float)
WEEKDAY_WEIGHTS = np.array([1.0, 0.95, 1.0, 1.05, 1.25, 1.6, 1.5])  # Monday first
MONTH_WEIGHTS = np.array([1.35, 1.3, 0.95, 0.95, 1.0, 1.0, 1.05, 1.1, 0.95, 1.05, 1.1, 1.3])  # January first
_REFERRAL_ALPHABET = np.frombuffer(b"23456789ABCDEFGHJKMNPQRSTUVWXYZ", dtype=np.uint8)


@dataclass
class Generated:
    """What a run wrote (counts), and the first member id it used."""

    members: int = 0
    purchases: int = 0
    checkins: int = 0
    mall_visits: int = 0
    points_entries: int = 0
    first_member_id: int = 0
    behaviours: dict[str, int] = field(default_factory=dict)


def generate(target: Session | Engine, settings: Settings, *, members: int, now: datetime, seed: int = 0,
             purchases: int | None = None, purchases_per_member: float = 20.0, months: int = 12,
             merchant_ids: list[int] | None = None, with_points: bool = False, bulk: bool = False) -> Generated:
    """Write ``members`` synthetic members and their history up to ``now``; return the counts.

    ``purchases`` (total) wins over ``purchases_per_member``; the total is met exactly. ``merchant_ids``
    are the stores they buy from (default: every merchant; at least one must exist). A ``Session`` is
    written in its own transaction's flow (the caller commits); an ``Engine`` gets a transaction of its own.
    ``bulk`` (PostgreSQL, a throwaway database only: nobody else may write meanwhile) drops the history
    tables' foreign keys and secondary indexes for the load and builds them again after it.
    """
    if members <= 0:
        return Generated()
    if isinstance(target, Engine):
        with Session(target) as session, session.begin():
            return generate(session, settings, members=members, now=now, seed=seed, purchases=purchases,
                            purchases_per_member=purchases_per_member, months=months, merchant_ids=merchant_ids,
                            with_points=with_points, bulk=bulk)
    session = target
    session.flush()
    if merchant_ids is None:
        merchant_ids = list(session.scalars(text("SELECT id FROM merchants ORDER BY id")))
    if not merchant_ids:
        raise ValueError("the synthetic history needs at least one merchant")
    first = _next_id(session, "members")
    total = purchases if purchases is not None else round(members * purchases_per_member)
    taken = set(session.scalars(select(Member.referral_code)))
    made = Generated(first_member_id=first)
    postgres = session.get_bind().dialect.name == "postgresql"
    dropped = drop_keys(session, BULK_TABLES) if bulk and postgres else []
    # Members are drawn in chunks of CHUNK (each from the seed and the chunk's number), so memory stays
    # bounded and a seed gives the same rows whatever the machine.
    for index, start in enumerate(range(0, members, CHUNK)):
        size = min(CHUNK, members - start)
        share = total * (start + size) // members - total * start // members
        rows = build(settings, members=size, purchases=share, now=now, seed=(seed, index), months=months,
                     merchant_ids=merchant_ids, first_member_id=first + start, with_points=with_points,
                     first_ids={t: _next_id(session, t) for t in ("purchases", "checkins", "mall_visits",
                                                                   "points_entries", "points_lots")},
                     taken_codes=taken)
        load(session, rows)
        made.members += size
        made.purchases += len(rows.purchases["id"])
        made.checkins += len(rows.checkins["id"])
        made.mall_visits += len(rows.visits["id"])
        made.points_entries += 0 if rows.entries is None else len(rows.entries["id"])
        for name, n in rows.behaviours.items():
            made.behaviours[name] = made.behaviours.get(name, 0) + n
    for statement in dropped:
        session.execute(text(statement))
    if postgres:
        for name in BULK_TABLES:
            session.execute(text(f"ANALYZE {name}"))
        for name in ("members", "purchases", "checkins", "mall_visits", "points_entries", "points_lots"):
            session.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                 f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"))
    return made


def _next_id(session: Session, table: str) -> int:
    return int(session.execute(text(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")).scalar_one())


# --- drawing ---------------------------------------------------------------------------------------

def build(settings: Settings, *, members: int, purchases: int, now: datetime, seed: int | tuple[int, int],
          months: int,
          merchant_ids: list[int], first_member_id: int, with_points: bool, first_ids: dict[str, int],
          taken_codes: set[str] = frozenset()) -> Rows:  # type: ignore[assignment]
    """Draw every row (numpy arrays by column) without touching a database."""
    rng = np.random.default_rng(seed)
    tz = settings.mall.tz
    end_day = now.astimezone(tz).date()             # the history stops before now
    start_day = _months_before(end_day, months)     # the year of history
    day0 = start_day - timedelta(days=400)          # lost members bought before the year
    n_days = (end_day - day0).days + 1
    days = np.array([(day0 + timedelta(days=i)) for i in range(n_days)], dtype="datetime64[D]")
    # Offset of each local day from UTC (zoneinfo, so a zone with summer time stays right).
    offsets = np.array([int(datetime.combine(day0 + timedelta(days=i), datetime.min.time(), tzinfo=tz)
                            .utcoffset().total_seconds()) for i in range(n_days)], dtype=np.int64)  # type: ignore[union-attr]
    weekday = (days.astype(np.int64) + 3) % 7       # 1970-01-01 was a Thursday
    month_of = days.astype("datetime64[M]").astype(np.int64) % 12
    weights = WEEKDAY_WEIGHTS[weekday] * MONTH_WEIGHTS[month_of]
    cdf = np.concatenate([[0.0], np.cumsum(weights)])
    s = (start_day - day0).days                      # index of the year's first day
    e = n_days - 1                                   # index of today (partial: stops at now)

    names = list(BEHAVIOURS)
    shares = np.array([BEHAVIOURS[n][0] for n in names])
    kind = rng.choice(len(names), size=members, p=shares / shares.sum())
    ids = np.arange(first_member_id, first_member_id + members, dtype=np.int64)
    rate = np.array([BEHAVIOURS[n][1] for n in names])[kind]
    # Each member buys in up to two spans [a1, b1) and [a2, b2) (day indices) at rates r1, r2 a year.
    joined = s - rng.integers(30, 1100, size=members)   # most joined before the year
    a1 = np.maximum(joined, 0).astype(np.int64)
    b1 = np.full(members, e, dtype=np.int64)
    r1 = rate.astype(float)
    a2 = np.zeros(members, dtype=np.int64)
    b2 = np.zeros(members, dtype=np.int64)
    r2 = np.zeros(members)
    a1 = np.maximum(a1, s - 60)                          # history before the year is kept short
    k = {n: kind == i for i, n in enumerate(names)}
    # weakening: full rate until the last months, then a trickle
    cut = e - WEAKENING_MONTHS * 30
    b1[k["weakening"]] = cut
    a2[k["weakening"]], b2[k["weakening"]], r2[k["weakening"]] = cut, e, WEAKENING_RATE
    # lost: bought between 25 and 13 months ago, nothing since
    a1[k["lost"]] = np.maximum(0, e - 760)
    b1[k["lost"]] = e - 395
    # new: joined through the year
    n_new = int(k["new"].sum())
    joined[k["new"]] = rng.integers(s, e - 7, size=n_new)
    a1[k["new"]] = joined[k["new"]]
    # promo: joined within the New Year promotion's three weeks
    promo_start = _promo_start(day0, start_day, end_day)
    n_promo = int(k["promo"].sum())
    joined[k["promo"]] = promo_start + rng.integers(0, 21, size=n_promo)
    # one-off: joined before, one purchase in the year
    n_scaled = np.where(b1 > a1, (b1 - a1) * r1, 0) / 365 + np.where(b2 > a2, (b2 - a2) * r2, 0) / 365
    count = _counts(rng, n_scaled, purchases - int(k["oneoff"].sum()), kind, names)
    count[k["oneoff"]] = 1
    a1[k["oneoff"]], b1[k["oneoff"]] = s, e
    a1[k["promo"]] = joined[k["promo"]]
    b1[k["promo"]] = np.minimum(joined[k["promo"]] + 14, e)
    joined = np.minimum(joined, a1)

    # purchases
    n = int(count.sum())
    owner = np.repeat(np.arange(members), count)
    len1 = np.maximum(b1 - a1, 0) * r1
    len2 = np.maximum(b2 - a2, 0) * r2
    p2 = np.divide(len2, len1 + len2, out=np.zeros(members), where=(len1 + len2) > 0)
    second = rng.random(n) < p2[owner]
    lo = np.where(second, a2[owner], a1[owner])
    hi = np.where(second, b2[owner], b1[owner])
    hi = np.maximum(hi, lo + 1)
    u = cdf[lo] + rng.random(n) * (cdf[hi] - cdf[lo])
    day = np.clip(np.searchsorted(cdf, u, side="right") - 1, lo, hi - 1)
    hour = rng.choice(np.array(OPENING_HOURS), size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    second_of_day = hour * 3600 + rng.integers(0, 3600, size=n)
    # Today's purchases stop before now.
    now_s = _seconds(now, day0)
    at = _utc_seconds(day, second_of_day, offsets)
    at = np.where(at >= now_s, now_s - 1 - rng.integers(0, 3600, size=n), at)
    day = (at + offsets[day]) // 86400
    mean = np.array([BEHAVIOURS[n_][2] for n_ in names], dtype=float)[kind]
    sigma = np.array([BEHAVIOURS[n_][3] for n_ in names])[kind]
    taste = np.exp(rng.normal(0, 0.35, size=members))        # some spend more than their kind
    amount = np.exp(rng.normal(np.log(mean * taste)[owner] - sigma[owner] ** 2 / 2, sigma[owner]))
    amount = np.maximum(100, np.round(amount / 10) * 10).astype(np.int64)
    amount[kind[owner] == names.index("oneoff")] = ONE_OFF_FEN
    # Stores: a few popular (Zipf), and each member's favourite.
    stores = np.asarray(merchant_ids, dtype=np.int64)
    pop = 1.0 / np.arange(1, len(stores) + 1)
    favourite = rng.choice(len(stores), size=members, p=pop / pop.sum())
    loyal = np.where(kind == names.index("t4"), 0.7, 0.35)[owner]
    store = np.where(rng.random(n) < loyal, favourite[owner], rng.choice(len(stores), size=n, p=pop / pop.sum()))
    order = np.lexsort((at, ids[owner]))
    owner, day, at, amount, store = owner[order], day[order], at[order], amount[order], stores[store[order]]
    pid = np.arange(first_ids["purchases"], first_ids["purchases"] + n, dtype=np.int64)

    # visits: purchase days (when the app was open: 70%) and days in the mall without a purchase
    extra_rate = np.array([BEHAVIOURS[n_][4] for n_ in names])[kind]
    n_extra = rng.poisson(extra_rate * np.maximum(b1 - a1, 0) / 365 * (count > 0))
    x_owner = np.repeat(np.arange(members), n_extra)
    x_day = a1[x_owner] + (rng.random(len(x_owner)) * np.maximum(b1 - a1, 1)[x_owner]).astype(np.int64)
    keep = rng.random(n) < 0.7
    v_owner = np.concatenate([owner[keep], x_owner])
    v_day = np.concatenate([day[keep], x_day])
    key = np.sort(v_owner.astype(np.int64) * (n_days + 1) + v_day)
    key = key[np.concatenate([[True], key[1:] != key[:-1]])] if len(key) else key
    v_owner, v_day = key // (n_days + 1), key % (n_days + 1)
    first_buy = np.full(len(key), -1, dtype=np.int64)      # the day's first purchase, if any
    p_key = owner.astype(np.int64) * (n_days + 1) + day
    pos = np.searchsorted(p_key, key)                      # purchases are sorted by member, time
    hit = (pos < n) & (p_key[np.minimum(pos, n - 1)] == key)
    first_buy[hit] = at[pos[hit]]
    wander = _utc_seconds(v_day, 10 * 3600 + rng.integers(0, 9 * 3600, size=len(key)), offsets)
    entered = np.where(hit, first_buy - rng.integers(300, 2700, size=len(key)), wander)
    entered = np.minimum(entered, now_s - 3600)
    dwell = rng.integers(900, 3 * 3600, size=len(key))
    exited = np.minimum(entered + dwell, now_s)
    vid = np.arange(first_ids["mall_visits"], first_ids["mall_visits"] + len(key), dtype=np.int64)

    # check-ins: on some visit days
    checkin_p = np.array([BEHAVIOURS[n_][5] for n_ in names])[kind]
    ck = rng.random(len(key)) < checkin_p[v_owner]
    c_owner, c_day, c_at = v_owner[ck], v_day[ck], entered[ck] + 60
    newrun = np.ones(len(c_owner), dtype=bool)
    newrun[1:] = (c_owner[1:] != c_owner[:-1]) | (c_day[1:] != c_day[:-1] + 1)
    run_start = np.maximum.accumulate(np.where(newrun, np.arange(len(c_owner)), 0))
    streak = np.arange(len(c_owner)) - run_start + 1
    if with_points:
        bonus = np.array([settings.checkin.streak_bonus.get(int(x), 0) for x in range(int(streak.max(initial=0)) + 1)])
        c_points = settings.checkin.points + bonus[streak]
        p_earned = (amount // settings.points.fen_per_point
                    * settings.points.tier_multipliers_pct.get("", 100) // 100)
    else:
        c_points = np.zeros(len(c_owner), dtype=np.int64)
        p_earned = np.zeros(n, dtype=np.int64)
    cid = np.arange(first_ids["checkins"], first_ids["checkins"] + len(c_owner), dtype=np.int64)

    created = _utc_seconds(joined, 9 * 3600 + rng.integers(0, 12 * 3600, size=members), offsets)
    first_act = np.full(members, np.iinfo(np.int64).max)
    np.minimum.at(first_act, owner, at)
    np.minimum.at(first_act, v_owner, entered)
    created = np.minimum(created, first_act - 600)

    member_cols = {"id": ids, "created_at": created, "phone": ids, "referral": _referral_codes(ids, seed if isinstance(seed, int) else seed[0],
                                                                                taken_codes)}
    purchase_cols = {"id": pid, "merchant_id": store, "member_id": ids[owner], "amount_fen": amount,
                     "points_earned": p_earned, "occurred_at": at}
    checkin_cols = {"id": cid, "member_id": ids[c_owner], "day": c_day, "streak": streak, "points": c_points,
                    "created_at": c_at}
    visit_cols = {"id": vid, "member_id": ids[v_owner], "entered_at": entered, "exited_at": exited,
                  "dwell_seconds": exited - entered}
    entries = None
    if with_points:
        entries = _entries(settings, first_ids, purchase_cols, checkin_cols, day0, offsets)
    counted = {nm: int(k[nm].sum()) for nm in names}
    return Rows(member_cols, purchase_cols, checkin_cols, visit_cols, entries, counted, day0)


def _months_before(day: date, months: int) -> date:
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(y, m + 1, min(day.day, 28))


def _promo_start(day0: date, start_day: date, end_day: date) -> int:
    """Index of the New Year promotion's first day: the last 1 January within the year (or the year's start)."""
    jan = date(end_day.year, 1, 1)
    if jan < start_day:
        jan = start_day
    if (end_day - jan).days < 21:
        jan = max(start_day, date(end_day.year - 1, 1, 1))
    return (jan - day0).days


def _counts(rng: np.random.Generator, expected: np.ndarray, total: int, kind: np.ndarray,
            names: list[str]) -> np.ndarray:
    """Poisson counts scaled so that they add up to exactly ``total``."""
    scale = total / max(expected.sum(), 1e-9)
    count = rng.poisson(expected * scale).astype(np.int64)
    promo = kind == names.index("promo")
    # The promotion's members: 55% never buy, most of the rest once.
    count[promo] = rng.choice([0, 1, 2], size=int(promo.sum()), p=[0.55, 0.35, 0.10])
    count[kind == names.index("oneoff")] = 0
    diff = total - int(count.sum())
    eligible = np.flatnonzero((expected > 0) & ~promo)
    if diff > 0 and len(eligible):
        np.add.at(count, rng.choice(eligible, size=diff, p=expected[eligible] / expected[eligible].sum()), 1)
    elif diff < 0:
        while diff < 0:
            have = np.flatnonzero(count[eligible] > 1)
            if not len(have):
                break
            pick = rng.choice(eligible[have], size=min(-diff, len(have)), replace=False)
            count[pick] -= 1
            diff += len(pick)
    return count


def _seconds(at: datetime, day0: date) -> int:
    """``at`` as whole seconds since ``day0`` 00:00 UTC."""
    return int((at - datetime.combine(day0, datetime.min.time(), tzinfo=UTC)).total_seconds())


def _utc_seconds(day: np.ndarray, local_second: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Seconds since day0 00:00 UTC of mall-local (day index, second of the day)."""
    day = day.astype(np.int64)
    return day * 86400 + local_second - offsets[np.clip(day, 0, len(offsets) - 1)]


def _referral_codes(ids: np.ndarray, seed: Any, taken: set[str]) -> np.ndarray:
    """Eight-character codes from the referral alphabet: a bijection of the id (so unique), scrambled to look random."""
    space = 31 ** 8
    salt = zlib.crc32(repr(seed).encode()) % space
    codes = np.zeros((len(ids), 8), dtype=np.uint8)
    for attempt in range(5):
        v = (ids.astype(np.int64) * 1_000_003 + salt + attempt * 7919) % space
        for i in range(8):
            codes[:, 7 - i] = _REFERRAL_ALPHABET[v % 31]
            v //= 31
        out = codes.view("S8").ravel()
        if not taken or not np.isin(out, np.array(sorted(taken), dtype="S8")).any():
            return out
    raise RuntimeError("referral codes of the synthetic members collide with existing ones")


def _entries(settings: Settings, first_ids: dict[str, int], purchases: dict[str, np.ndarray],
             checkins: dict[str, np.ndarray], day0: date, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """Points entries and lots for the purchases and check-ins, in each member's time order."""
    p = purchases["points_earned"] > 0
    c = checkins["points"] > 0
    member = np.concatenate([purchases["member_id"][p], checkins["member_id"][c]])
    at = np.concatenate([purchases["occurred_at"][p], checkins["created_at"][c]])
    delta = np.concatenate([purchases["points_earned"][p], checkins["points"][c]]).astype(np.int64)
    is_purchase = np.concatenate([np.ones(int(p.sum()), bool), np.zeros(int(c.sum()), bool)])
    source = np.concatenate([np.flatnonzero(p), np.flatnonzero(c)])
    order = np.lexsort((~is_purchase, at, member))
    member, at, delta, is_purchase, source = member[order], at[order], delta[order], is_purchase[order], source[order]
    running = np.cumsum(delta)
    first_of = np.ones(len(member), dtype=bool)
    first_of[1:] = member[1:] != member[:-1]
    base = np.maximum.accumulate(np.where(first_of, np.arange(len(member)), 0))
    before = np.concatenate([[0], running])[base]
    balance_after = running - before
    # Lots expire as points.expiry_for says: 1 January of the local year + expiry_years_after + 1.
    if settings.points.expiry_policy == "never":
        expires = np.full(len(member), -1, dtype=np.int64)
    else:
        tz = settings.mall.tz
        local_day = (at + offsets[np.clip(at // 86400, 0, len(offsets) - 1)]) // 86400
        years = (np.datetime64(day0) + local_day.astype("timedelta64[D]")).astype("datetime64[Y]").astype(int) + 1970
        table = {int(y): _seconds(datetime(int(y) + settings.points.expiry_years_after + 1, 1, 1, tzinfo=tz), day0)
                 for y in np.unique(years)}
        expires = np.array([table[int(y)] for y in years], dtype=np.int64) if len(years) else np.zeros(0, np.int64)
    eid = np.arange(first_ids["points_entries"], first_ids["points_entries"] + len(member), dtype=np.int64)
    lid = np.arange(first_ids["points_lots"], first_ids["points_lots"] + len(member), dtype=np.int64)
    return {"id": eid, "lot_id": lid, "member_id": member, "delta": delta, "balance_after": balance_after,
            "is_purchase": is_purchase, "source": source, "created_at": at, "expires_at": expires}
