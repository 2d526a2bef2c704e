"""The parking tariff engine: a car park's declared tariff and the fee of one stay.

A pure module (no database, no clock): ``fee(tariff, vehicle_type, entered_at, exited_at, tz=...,
paid=...)`` returns a ``Quote`` with the amount due and an itemised breakdown. The rules, in the
order they apply (docs/parking.md has worked examples):

1. The stay lasts ``minutes`` = the started minutes between entry and exit (61 s is 2 minutes).
2. A stay of at most ``free_minutes`` costs nothing; a longer one is charged from the entry.
3. The first period (``first_period_minutes``) costs ``first_period_fen``, charged at the entry.
4. After it, every started step of ``step_minutes`` costs the step price of the time-of-day band
   in which the step starts (mall-local time).
5. Charges falling inside one overnight window (e.g. 22:00-08:00) add up to at most its cap.
6. Charges falling inside one rolling 24 h window counted from the entry (0-24 h, 24-48 h, ...)
   add up to at most the daily cap. Rolling, not calendar: a stay of N started days never costs
   more than N caps, and a car that comes at 23:00 is not charged two caps by 01:00.
   Caps apply greedily in time order: each charge is cut to what is left of both caps.
7. Payments: a payment settles the stay up to its time. Leaving within ``grace_minutes`` of the
   last payment owes nothing more; leaving later owes the charges that fell after the payment
   (the same timeline, steps and caps continue: the fee at exit minus the fee at payment).

Money is integer fen, durations whole minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mallapp.errors import InvalidInput, NotFound

__all__ = ["VEHICLE_TYPES", "Band", "Overnight", "Plan", "Tariff", "Line", "Quote", "parse_tariff", "fee"]

VEHICLE_TYPES = ("small", "large", "new_energy", "motorcycle")
DAY = 1440


def _minute_of_day(text: str, *, allow_24: bool) -> int:
    hh, sep, mm = text.partition(":")
    if not sep or len(hh) != 2 or len(mm) != 2 or not (hh + mm).isdigit():
        raise ValueError(f"time {text!r} is not HH:MM")
    value = int(hh) * 60 + int(mm)
    if int(mm) > 59 or value > DAY or (value == DAY and not allow_24):
        raise ValueError(f"time {text!r} is out of range")
    return value


def _window(start: int, end: int) -> list[tuple[int, int]]:
    """Half-open minute-of-day ranges of a window that may wrap past midnight."""
    if start < end:
        return [(start, end)]
    return [(start, DAY), (0, end)] if end else [(start, DAY)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Model):
    """A time-of-day band: the step price for steps starting from ``start`` until ``end`` (local)."""

    name: str = Field(min_length=1, max_length=40)
    start: str  # "HH:MM", mall-local
    end: str    # "HH:MM"; may wrap past midnight ("22:00" to "08:00"); "24:00" is midnight
    step_fen: int = Field(ge=0, le=1_000_000)

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        _minute_of_day(v, allow_24=False)
        return v

    @field_validator("end")
    @classmethod
    def _end(cls, v: str) -> str:
        _minute_of_day(v, allow_24=True)
        return v

    def ranges(self) -> list[tuple[int, int]]:
        start, end = _minute_of_day(self.start, allow_24=False), _minute_of_day(self.end, allow_24=True)
        if start == end % DAY:
            return [(0, DAY)]  # one band for the whole day
        return _window(start, end % DAY)


class Overnight(_Model):
    """A flat overnight band: charges inside one night (``start`` to ``end``) cost at most ``cap_fen``."""

    start: str = "22:00"
    end: str = "08:00"
    cap_fen: int = Field(gt=0, le=10_000_000)

    @model_validator(mode="after")
    def _times(self) -> Overnight:
        start = _minute_of_day(self.start, allow_24=False)
        end = _minute_of_day(self.end, allow_24=True) % DAY
        if start == end:
            raise ValueError("the overnight window is empty (start equals end)")
        return self


class Plan(_Model):
    """The tariff of one vehicle type."""

    free_minutes: int = Field(default=15, ge=0, le=DAY)
    first_period_minutes: int = Field(default=60, ge=0, le=DAY)
    first_period_fen: int = Field(default=0, ge=0, le=10_000_000)
    step_minutes: int = Field(default=30, ge=1, le=DAY)
    bands: tuple[Band, ...] = Field(min_length=1, max_length=24)
    overnight: Overnight | None = None
    daily_cap_fen: int | None = Field(default=None, gt=0, le=100_000_000)  # per rolling 24 h from entry

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        covered = [0] * DAY
        for band in self.bands:
            for lo, hi in band.ranges():
                for m in range(lo, hi):
                    if covered[m]:
                        raise ValueError(f"bands overlap at {m // 60:02d}:{m % 60:02d} (band {band.name!r})")
                    covered[m] = 1
        if not all(covered):
            gap = covered.index(0)
            raise ValueError(f"bands leave {gap // 60:02d}:{gap % 60:02d} without a price")
        if self.first_period_minutes == 0 and self.first_period_fen:
            raise ValueError("a first-period price needs a first period (first_period_minutes > 0)")
        if self.daily_cap_fen is not None:
            if self.daily_cap_fen < self.first_period_fen:
                raise ValueError("the daily cap is below the first-period price")
            if self.overnight is not None and self.overnight.cap_fen > self.daily_cap_fen:
                raise ValueError("the overnight cap is above the daily cap, so it could never apply")
        return self


class Tariff(_Model):
    """A car park's tariff: one plan per vehicle type and the grace after payment."""

    grace_minutes: int = Field(default=15, ge=0, le=240)
    plans: dict[Literal["small", "large", "new_energy", "motorcycle"], Plan] = Field(min_length=1)


def parse_tariff(data: dict) -> Tariff:
    """Validate a tariff declared in configuration; an impossible one raises InvalidInput."""
    try:
        return Tariff.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'tariff'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"The tariff is not valid: {problems}", code="parking.tariff_invalid") from None


@dataclass(frozen=True)
class Line:
    """One readable line of a quote: consecutive charges of one kind in one 24 h window."""

    kind: str              # "first_period" | "step" | "cap" (nothing more charged until ends_at) | "paid"
    label: str             # the band's name, "first period", "daily cap reached", "paid"
    starts_at: datetime    # mall-local
    ends_at: datetime      # mall-local (the end of the last step, or the exit)
    count: int             # steps (1 for the first period)
    list_fen: int          # before caps
    charged_fen: int       # after caps
    note: str = ""         # "overnight cap", "daily cap", "overnight cap, daily cap"


@dataclass(frozen=True)
class Quote:
    """The fee of a stay: ``due_fen`` is what is left to pay now."""

    vehicle_type: str
    minutes: int
    gross_fen: int           # the fee of the whole stay, caps applied
    settled_fen: int         # the fee up to the last payment (0 without payment)
    paid_fen: int            # the sum of the payments
    due_fen: int
    within_grace: bool       # left (or quoted) within grace of the last payment
    grace_until: datetime | None  # the last payment plus grace, UTC
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class _Compiled:
    """A plan flattened for speed: the band of every minute of the day."""

    free: int
    first_minutes: int
    first_fen: int
    step: int
    band_of: tuple[int, ...]        # minute of day -> band index
    step_fen: tuple[int, ...]       # band index -> step price
    names: tuple[str, ...]
    night: tuple[int, int] | None   # overnight window (start, end) minutes of day
    night_cap: int
    day_cap: int | None


_compiled: dict[int, tuple[Plan, _Compiled]] = {}


def _compile(plan: Plan) -> _Compiled:
    """Flatten a plan once; cached per plan object (plans are frozen)."""
    hit = _compiled.get(id(plan))
    if hit is not None and hit[0] is plan:
        return hit[1]
    band_of = [0] * DAY
    for i, band in enumerate(plan.bands):
        for lo, hi in band.ranges():
            band_of[lo:hi] = [i] * (hi - lo)
    night = None
    if plan.overnight is not None:
        night = (_minute_of_day(plan.overnight.start, allow_24=False),
                 _minute_of_day(plan.overnight.end, allow_24=True) % DAY)
    compiled = _Compiled(plan.free_minutes, plan.first_period_minutes, plan.first_period_fen, plan.step_minutes,
                         tuple(band_of), tuple(b.step_fen for b in plan.bands), tuple(b.name for b in plan.bands),
                         night, plan.overnight.cap_fen if plan.overnight else 0, plan.daily_cap_fen)
    if len(_compiled) > 256:
        _compiled.clear()
    _compiled[id(plan)] = (plan, compiled)
    return compiled


def _started_minutes(start: datetime, end: datetime) -> int:
    return math.ceil((end - start).total_seconds() / 60)


def _night_of(day_ordinal: int, minute: int, night: tuple[int, int]) -> int | None:
    """The night (by the local date it starts on) a local minute belongs to, or None."""
    start, end = night
    if start < end:
        return day_ordinal if start <= minute < end else None
    if minute >= start:
        return day_ordinal
    if minute < end:
        return day_ordinal - 1
    return None


def _charges(c: _Compiled, entered_at: datetime, minutes: int, tz: tzinfo) -> list[tuple]:
    """The stay's charges in time order: (minute, band index, list fen, charged fen, note).

    The band index is -1 for the first period and -2 for a marker: the 24 h window is capped.
    """
    if minutes <= c.free:
        return []
    events: list[tuple] = []
    night_spent: dict[int, int] = {}
    day_spent: dict[int, int] = {}
    m = 0 if c.first_minutes else None
    first = m == 0
    if m is None:
        m = 0
    while m < minutes:
        if c.day_cap is not None and day_spent.get(m // DAY, 0) >= c.day_cap:
            # This 24 h window is capped: nothing more is charged in it, skip to the next one.
            events.append((m, -2, 0, 0, "daily cap"))  # a readable "capped until ..." line, no charge
            nxt = (m // DAY + 1) * DAY
            m += -(-(nxt - m) // c.step) * c.step
            continue
        local = (entered_at + timedelta(minutes=m)).astimezone(tz)
        mod = local.hour * 60 + local.minute
        if first:
            band, price = -1, c.first_fen
        else:
            band = c.band_of[mod]
            price = c.step_fen[band]
        amount, notes, n = price, [], None
        if c.night is not None:
            n = _night_of(local.toordinal(), mod, c.night)
            if n is not None and amount > c.night_cap - night_spent.get(n, 0):
                amount = c.night_cap - night_spent.get(n, 0)
                notes.append("overnight cap")
        if c.day_cap is not None:
            w = m // DAY
            if amount > c.day_cap - day_spent.get(w, 0):
                amount = c.day_cap - day_spent.get(w, 0)
                notes.append("daily cap")
            day_spent[w] = day_spent.get(w, 0) + amount
        if n is not None:
            night_spent[n] = night_spent.get(n, 0) + amount  # what was charged counts toward both caps
        events.append((m, band, price, amount, ", ".join(notes)))
        if first:
            first = False
            m = c.first_minutes
        else:
            m += c.step
    return events


def _lines(c: _Compiled, events: list[tuple], entered_at: datetime, minutes: int, tz: tzinfo) -> list[Line]:
    """Group consecutive charges of one band, one 24 h window and one cap note into readable lines."""
    lines: list[Line] = []
    key = None
    for m, band, price, amount, note in events:
        if band == -2:
            key = None
            lines.append(Line("cap", "daily cap reached", (entered_at + timedelta(minutes=m)).astimezone(tz),
                              (entered_at + timedelta(minutes=min((m // DAY + 1) * DAY, minutes))).astimezone(tz),
                              0, 0, 0, note))
            continue
        span = c.first_minutes if band < 0 else c.step
        end = min(m + span, minutes)
        k = (band, m // DAY, note)
        if k == key:
            last = lines[-1]
            lines[-1] = Line(last.kind, last.label, last.starts_at, (entered_at + timedelta(minutes=end)).astimezone(tz),
                             last.count + 1, last.list_fen + price, last.charged_fen + amount, note)
            continue
        key = k
        lines.append(Line("first_period" if band < 0 else "step", "first period" if band < 0 else c.names[band],
                          (entered_at + timedelta(minutes=m)).astimezone(tz),
                          (entered_at + timedelta(minutes=end)).astimezone(tz), 1, price, amount, note))
    return lines


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must carry a time zone (UTC).", code="parking.time_naive")
    return value


def fee(tariff: Tariff, vehicle_type: str, entered_at: datetime, exited_at: datetime, *, tz: tzinfo,
        paid: list[tuple[datetime, int]] | tuple = ()) -> Quote:
    """Quote the fee of a stay from ``entered_at`` to ``exited_at`` (or now), after ``paid`` payments."""
    # In UTC: arithmetic on datetimes sharing a DST zone would count wall-clock time, not elapsed time.
    entered_at = _aware(entered_at, "entered_at").astimezone(UTC)
    exited_at = _aware(exited_at, "exited_at").astimezone(UTC)
    plan = tariff.plans.get(vehicle_type)  # type: ignore[call-overload]
    if plan is None:
        raise NotFound(f"This car park has no tariff for vehicle type {vehicle_type!r}.",
                       code="parking.vehicle_type_unknown")
    if exited_at < entered_at:
        raise InvalidInput("The exit is before the entry.", code="parking.times_out_of_order")
    payments = sorted(((_aware(at, "a payment's time").astimezone(UTC), amount) for at, amount in paid),
                      key=lambda p: p[0])
    for at, amount in payments:
        if not entered_at <= at <= exited_at:
            raise InvalidInput("A payment lies outside the stay.", code="parking.times_out_of_order")
        if amount < 0:
            raise InvalidInput("A payment amount is negative.", code="parking.amount_invalid")
    c = _compile(plan)
    minutes = _started_minutes(entered_at, exited_at)
    events = _charges(c, entered_at, minutes, tz)
    gross = sum(e[3] for e in events)
    lines = _lines(c, events, entered_at, minutes, tz)
    settled = 0
    within_grace = False
    grace_until = None
    paid_fen = sum(a for _, a in payments)
    if payments:
        last = payments[-1][0]
        grace_until = last + timedelta(minutes=tariff.grace_minutes)
        # The charges up to the payment, on the same timeline: what the payment settled.
        settled_minutes = _started_minutes(entered_at, last)
        settled = 0 if settled_minutes <= c.free else sum(e[3] for e in events if e[0] < settled_minutes)
        within_grace = exited_at <= grace_until
        lines.append(Line("paid", "paid", entered_at.astimezone(tz), last.astimezone(tz), len(payments),
                          -settled, -settled))
    due = 0 if within_grace else gross - settled
    return Quote(vehicle_type, minutes, gross, settled, paid_fen, due, within_grace, grace_until, tuple(lines))
