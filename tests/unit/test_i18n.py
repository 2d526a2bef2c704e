"""The message catalogues: both locales say everything, with the same placeholders; choosing a locale."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mallapp import i18n


def test_both_locales_define_the_same_keys():
    zh, en = i18n.catalogue("zh-CN"), i18n.catalogue("en")
    assert sorted(set(zh) - set(en)) == [], "keys only in zh-CN"
    assert sorted(set(en) - set(zh)) == [], "keys only in en"


def test_translations_fill_the_same_placeholders():
    zh, en = i18n.catalogue("zh-CN"), i18n.catalogue("en")
    differ = {key: (sorted(i18n.placeholders(zh[key])), sorted(i18n.placeholders(en[key])))
              for key in zh if key in en and i18n.placeholders(zh[key]) != i18n.placeholders(en[key])}
    assert differ == {}


def test_chinese_texts_are_chinese():
    # A zh-CN text copied from English by mistake: every zh-CN text with letters has a Han character or is a name.
    zh, en = i18n.catalogue("zh-CN"), i18n.catalogue("en")
    same = [key for key, text in zh.items() if text == en.get(key) and any(c.isalpha() for c in text)
            and not any("\u4e00" <= c <= "\u9fff" for c in text) and len(text) > 12]
    assert same == []


@pytest.mark.parametrize(("choice", "header", "expected"), [
    (None, None, "zh-CN"),
    ("en", None, "en"),
    ("zh_CN", None, "zh-CN"),
    ("fr", "en-US,en;q=0.9", "en"),
    (None, "fr-FR, en;q=0.5, zh;q=0.8", "zh-CN"),
    (None, "de, fr", "zh-CN"),
    (None, "en;q=0, zh-Hans-CN", "zh-CN"),
    (None, "en;q=nonsense", "en"),
])
def test_negotiate_prefers_a_choice_then_the_header_then_chinese(choice, header, expected):
    assert i18n.negotiate(choice, accept_language=header) == expected


def test_missing_keys_and_placeholders_degrade_visibly_not_fatally():
    assert i18n.t("zh-CN", "no.such.key") == "no.such.key"
    assert i18n.t("fr", "no.such.key", n=1) == "no.such.key"


def test_amounts_and_times_in_the_malls_zone():
    shanghai = ZoneInfo("Asia/Shanghai")
    at = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    assert i18n.fmt_datetime(at, shanghai, "zh-CN") == "12月5日 14:30"
    assert i18n.fmt_datetime(at, shanghai, "en") == "5 Dec 14:30"
    assert i18n.fmt_date(date(2026, 12, 5), "zh-CN") == "2026年12月5日"
    assert i18n.fmt_yuan(123456) == "¥1,234.56"
    assert i18n.fmt_yuan(-5) == "-¥0.05"
