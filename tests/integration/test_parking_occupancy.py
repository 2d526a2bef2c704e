"""The day report's occupancy, aggregated in SQL, against a plain reference on random stays.

The reference walks each day by hand: the car-seconds of every stay's overlap with the day (up to now
today; a car still in stays to then), and the most cars in at any instant, tried at the day's start and at
every entry (a car leaving at an instant is gone at it, one coming is in). Random stays on a minute grid
(so that entries and exits meet at one instant), across midnights, some still in, a seeded
``random.Random(15)``.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from factories import parking_history

from mallapp.domain.parking import reports

MALL = ZoneInfo("Asia/Shanghai")
FIRST = datetime(2026, 3, 4, tzinfo=MALL).astimezone(UTC)
DAYS = [date(2026, 3, d) for d in range(4, 12)]  # to tomorrow: the clock is 03-10 10:00


def _reference(stays, ds: datetime, de: datetime) -> tuple[float, int]:
    area = 0.0
    for entered, exited in stays:
        left = min(exited or de, de)
        came = max(entered, ds)
        area += max(0.0, (left - came).total_seconds())
    instants = [ds] + [entered for entered, _ in stays if ds <= entered < de]
    peak = max(sum(1 for entered, exited in stays if entered <= t and (exited is None or exited > t)) for t in instants)
    return area / (de - ds).total_seconds(), peak


@pytest.mark.parametrize("seed", [15, 16, 17])
def test_occupancy_agrees_with_a_plain_reference_on_random_stays(rt, seed):
    rng = random.Random(seed)
    history = parking_history(rt)
    now = rt.now()
    stays = []
    for n in range(80):
        entered = FIRST + timedelta(minutes=rng.randrange(0, int((now - FIRST).total_seconds() // 60)))
        exited = entered + timedelta(minutes=rng.choice([0, 1, 30, 90, 240, 600, 1500, 2900]) + rng.randrange(60))
        if exited > now or rng.random() < 0.05:
            exited = None
        if rng.random() < 0.1:   # leave, or come, at midnight
            midnight = rt.settings.mall.day_bounds(rng.choice(DAYS[1:7]))[0]
            if midnight > entered and midnight <= now:
                exited = midnight
            elif midnight < now:
                entered, exited = midnight, None
        if stays and rng.random() < 0.2:   # meet another stay's exit at the same instant
            previous = rng.choice([s for s in stays if s[1] is not None] or [stays[0]])
            if previous[1] is not None and previous[1] <= now:
                entered = previous[1]
                exited = exited if exited is None or exited >= entered else None
        history.stay(f"沪A{n:05d}", entered, exited)
        stays.append((entered, exited))
    with rt.sessions() as session:
        report = reports.day_report(session, rt.settings.mall, history.car_park_id, DAYS, now)
    for row in report.days:
        ds, de = rt.settings.mall.day_bounds(row.day)
        if min(de, now) <= ds:
            assert (row.average_cars, row.peak_cars) == (None, None)
            continue
        average, peak = _reference(stays, ds, min(de, now))
        assert row.average_cars == pytest.approx(average, abs=1e-6), row.day
        assert row.peak_cars == peak, row.day
        assert row.entries == sum(1 for entered, _ in stays if ds <= entered < de)
        assert row.exits == sum(1 for _, exited in stays if exited is not None and ds <= exited < de)


@pytest.mark.parametrize("settings_overrides", [{"mall": {"timezone": "Europe/Berlin"}}])
def test_a_daylight_saving_day_is_as_long_as_the_wall_clock_says(rt, clock, settings_overrides):
    berlin = ZoneInfo("Europe/Berlin")
    clock.now = datetime(2026, 4, 1, 12, tzinfo=berlin).astimezone(UTC)
    history = parking_history(rt)
    history.stay("沪A11111", datetime(2026, 3, 28, 20, tzinfo=berlin), datetime(2026, 3, 30, 8, tzinfo=berlin))
    history.stay("沪A22222", datetime(2026, 3, 29, 10, tzinfo=berlin), datetime(2026, 3, 29, 12, tzinfo=berlin))
    history.stay("沪A33333", datetime(2026, 3, 29, 23, 30, tzinfo=berlin), datetime(2026, 3, 30, 0, 30, tzinfo=berlin))
    days = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    with rt.sessions() as session:
        report = reports.day_report(session, rt.settings.mall, history.car_park_id, days, rt.now())
    saturday, sunday, monday = report.days
    assert (sunday.entries, sunday.exits) == (2, 1)   # by the Berlin wall clock, 23 hours long
    assert sunday.average_cars == pytest.approx(1 + 2 / 23 + 0.5 / 23)
    assert (saturday.entries, monday.exits) == (1, 2)
    assert saturday.average_cars == pytest.approx(4 / 24) and monday.average_cars == pytest.approx(8.5 / 24)
