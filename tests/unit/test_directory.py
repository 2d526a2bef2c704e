"""The directory's pure rules: pinyin search keys, opening hours and "open now", category codes, tags, logos."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mallapp import i18n
from mallapp.domain import directory
from mallapp.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(("name", "initials", "full"), [
    ("星巴克", "xbk", "xingbake"),
    ("重庆火锅", "cqhg", "chongqinghuoguo"),      # 重 read chong in 重庆, not zhong
    ("中国银行", "zgyh", "zhongguoyinhang"),      # 行 read hang in 银行, not xing
    ("童趣乐园", "tqly", "tongquleyuan"),         # 乐 read le in 乐园, not yue
    ("长城影院", "ccyy", "changchengyingyuan"),   # 长 read chang in 长城, not zhang
    ("H&M旗舰店", "hmqjd", "hmqijiandian"),       # a Latin run stays whole, punctuation dropped
    ("ZARA 童装", "zaratz", "zaratongzhuang"),
    ("7-11便利店", "711bld", "711bianlidian"),
    ("Apple Store", "applestore", "applestore"),
    ("", "", ""),
])
def test_pinyin_keys_read_polyphones_by_their_phrase_and_keep_latin_whole(name, initials, full):
    assert directory.pinyin_keys(name) == (initials, full)


def test_a_query_is_compared_without_case_spaces_or_punctuation():
    assert directory.search_key(" Xing Ba-Ke ") == "xingbake"


def test_hours_as_one_default_name_every_day():
    hours = directory.check_hours({"default": [["10:00", "22:00"]]})
    assert hours == {day: [["10:00", "22:00"]] for day in directory.WEEKDAYS}


def test_hours_per_weekday_override_the_default_and_sort_periods():
    hours = directory.check_hours({"default": [["10:00", "22:00"]], "mon": [],
                                   "sat": [["17:00", "23:00"], ["10:00", "14:00"]]})
    assert hours["mon"] == [] and hours["sat"] == [["10:00", "14:00"], ["17:00", "23:00"]]
    assert hours["sun"] == [["10:00", "22:00"]]


@pytest.mark.parametrize("hours", [
    [],                                             # not an object
    {},                                             # empty
    {"monday": [["10:00", "22:00"]]},               # unknown day
    {"mon": [["10:00", "22:00"]]},                  # the other days missing, no default
    {"default": [["10:00"]]},                       # not a pair
    {"default": [["25:00", "22:00"]]},              # no such hour
    {"default": [["10:0", "22:00"]]},               # not HH:MM
    {"default": [["24:00", "02:00"]]},              # opening at 24:00
    {"default": [["10:00", "10:00"]]},              # opens and closes at once
    {"default": [["10:00", "14:00"], ["13:00", "20:00"]]},  # overlapping
    {"default": [["20:00", "03:00"], ["21:00", "22:00"]]},  # a period past midnight covering a later one
    {"default": [[10, 22]]},                        # numbers
    {"default": [["08:00", "09:00"]] * 5},          # too many periods
])
def test_malformed_hours_are_refused_with_their_code(hours):
    with pytest.raises(InvalidInput) as refused:
        directory.check_hours(hours)
    assert refused.value.code == "store.invalid_hours"


def test_no_hours_stay_unpublished():
    assert directory.check_hours(None) is None
    assert directory.open_now(None, datetime(2026, 3, 10, 2, 0, tzinfo=UTC), SHANGHAI) is None


LATE = directory.check_hours({"default": [["11:00", "02:00"]], "sun": []})


@pytest.mark.parametrize(("utc", "expected"), [
    (datetime(2026, 3, 10, 2, 59, tzinfo=UTC), False),   # Tue 10:59 in Shanghai
    (datetime(2026, 3, 10, 3, 0, tzinfo=UTC), True),     # Tue 11:00: opens
    (datetime(2026, 3, 10, 17, 59, tzinfo=UTC), True),   # Wed 01:59: Tuesday's period runs past midnight
    (datetime(2026, 3, 10, 18, 0, tzinfo=UTC), False),   # Wed 02:00: closed
    (datetime(2026, 3, 15, 17, 30, tzinfo=UTC), False),  # Mon 01:30: Sunday was closed, so nothing runs over
    (datetime(2026, 3, 14, 17, 30, tzinfo=UTC), True),   # Sun 01:30: Saturday's period still on
])
def test_open_now_reads_the_mall_time_zone_and_periods_past_midnight(utc, expected):
    assert directory.open_now(LATE, utc, SHANGHAI) is expected


def test_open_now_depends_on_the_time_zone_it_is_read_in():
    day = directory.check_hours({"default": [["10:00", "22:00"]]})
    at = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, 23:00 the day before in New York
    assert directory.open_now(day, at, SHANGHAI) is True
    assert directory.open_now(day, at, NEW_YORK) is False


def test_a_period_closing_at_24_00_is_open_until_midnight():
    hours = directory.check_hours({"default": [["18:00", "24:00"]]})
    assert directory.open_now(hours, datetime(2026, 3, 10, 15, 59, tzinfo=UTC), SHANGHAI) is True   # 23:59
    assert directory.open_now(hours, datetime(2026, 3, 10, 16, 0, tzinfo=UTC), SHANGHAI) is False   # 00:00


@pytest.mark.parametrize(("old", "code"), [("cafe", "cafe"), ("Restaurant", "dining"), ("food", "dining"),
                                           ("services", "services"), ("", "other"), ("gadgets", "other")])
def test_old_categories_become_codes_and_unknown_ones_other(old, code):
    assert directory.category_code(old) == code


def test_every_code_has_a_label_in_both_languages():
    for locale in i18n.LOCALES:
        for code in directory.CATEGORIES:
            assert i18n.t(locale, f"directory.category.{code}") != f"directory.category.{code}"


def test_store_fields_recompute_pinyin_on_a_new_name_and_check_the_rest():
    assert directory.store_fields({"name": "星巴克"}) == {"name": "星巴克", "pinyin_initials": "xbk",
                                                          "pinyin_full": "xingbake"}
    assert directory.store_fields({"tags": [" Wi-Fi ", "Wi-Fi", "外卖"]})["tags"] == ["Wi-Fi", "外卖"]
    assert directory.store_fields({"logo_url": "/static/logos/coffee.png"})["logo_url"] == "/static/logos/coffee.png"
    for bad, code in [({"category": "restaurant"}, "store.unknown_category"),
                      ({"tags": ["x" * 21]}, "store.invalid_tags"), ({"tags": ["t"] * 11}, "store.invalid_tags"),
                      ({"tags": [""]}, "store.invalid_tags"),
                      ({"logo_url": "http://example.com/a.png"}, "store.invalid_logo_url"),
                      ({"logo_url": "javascript:alert(1)"}, "store.invalid_logo_url")]:
        with pytest.raises(InvalidInput) as refused:
            directory.store_fields(bad)
        assert refused.value.code == code
