"""The merchant footfall's slots: the hours of one mall day (clock changes included) or the days of a range."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mallapp.domain.merchant_desk import MAX_FOOTFALL_DAYS, footfall_slots
from mallapp.errors import InvalidInput

SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")


def test_one_day_is_cut_into_its_24_hours_from_mall_midnight():
    kind, starts = footfall_slots(SHANGHAI, date(2026, 3, 10), date(2026, 3, 10))
    assert kind == "hour" and len(starts) == 24
    assert starts[0] == datetime(2026, 3, 10, tzinfo=SHANGHAI)
    assert [s.hour for s in starts] == list(range(24))


def test_a_day_with_a_clock_change_has_each_real_hour_once():
    _, spring = footfall_slots(BERLIN, date(2026, 3, 29), date(2026, 3, 29))
    _, autumn = footfall_slots(BERLIN, date(2026, 10, 25), date(2026, 10, 25))
    assert len(spring) == 23 and len(autumn) == 25
    assert len({s.timestamp() for s in autumn}) == 25  # 02:00 twice, as two different instants


def test_a_range_is_cut_into_mall_days():
    kind, starts = footfall_slots(SHANGHAI, date(2026, 3, 4), date(2026, 3, 10))
    assert kind == "day" and [s.day for s in starts] == list(range(4, 11))
    assert all(s.hour == 0 and s.tzinfo == SHANGHAI for s in starts)


@pytest.mark.parametrize("first, last", [(date(2026, 3, 10), date(2026, 3, 9)),
                                         (date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=MAX_FOOTFALL_DAYS))])
def test_a_backward_or_too_long_range_is_refused(first, last):
    with pytest.raises(InvalidInput) as refused:
        footfall_slots(SHANGHAI, first, last)
    assert refused.value.code == "footfall.invalid_range"
