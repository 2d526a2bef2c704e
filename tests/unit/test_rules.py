"""Pure rules: points arithmetic, expiry, birthdays, streaks, member codes, settings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mallapp.domain import auth, checkin, members, points
from mallapp.errors import InvalidInput
from mallapp.settings import DEMO_SETTINGS_FILE, SettingsError, load_settings


@pytest.fixture
def settings():
    return load_settings(environ={}, overlay=DEMO_SETTINGS_FILE)


def test_purchase_points_are_one_per_ten_yuan_rounded_down(settings):
    assert points.purchase_points(settings, 999, None) == 0
    assert points.purchase_points(settings, 1000, None) == 1
    assert points.purchase_points(settings, 123_456, None) == 123


def test_tier_multiplier_hook_scales_purchase_points():
    settings = load_settings({"points": {"tier_multipliers_pct": {"T1": 150}}}, environ={}, overlay=DEMO_SETTINGS_FILE)
    assert points.purchase_points(settings, 100_000, "T1") == 150
    assert points.purchase_points(settings, 100_000, "T4") == 100


def test_birthday_bonus_doubles_by_default(settings):
    assert points.birthday_bonus(settings, 37) == 37
    triple = load_settings({"points": {"birthday_multiplier_pct": 300}}, environ={}, overlay=DEMO_SETTINGS_FILE)
    assert points.birthday_bonus(triple, 37) == 74


def test_points_expire_at_the_end_of_the_following_year_in_mall_time(settings):
    # 31 Dec 2025 20:00 UTC is already 1 Jan 2026 in Shanghai: earned in 2026, expires end of 2027.
    expires = points.expiry_for(settings, datetime(2025, 12, 31, 20, 0, tzinfo=UTC))
    assert expires == datetime(2028, 1, 1, tzinfo=settings.mall.tz)
    assert expires.astimezone(UTC) == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)


def test_points_never_expire_when_configured():
    settings = load_settings({"points": {"expiry_policy": "never"}}, environ={}, overlay=DEMO_SETTINGS_FILE)
    assert points.expiry_for(settings, datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(("birthday", "day", "expected"), [
    (date(1990, 3, 10), date(2026, 3, 10), True),
    (date(1990, 3, 10), date(2026, 3, 11), False),
    (date(1992, 2, 29), date(2026, 2, 28), True),   # no 29 February in 2026
    (date(1992, 2, 29), date(2028, 2, 28), False),  # 2028 has one
    (date(1992, 2, 29), date(2028, 2, 29), True),
])
def test_birthday_matching_handles_leap_days(birthday, day, expected):
    member = members.Member(birthday=birthday)
    assert members.is_birthday(member, day) is expected


def test_streak_bonus_applies_on_configured_days_only(settings):
    assert checkin.streak_bonus(settings, 6) == 0
    assert checkin.streak_bonus(settings, 7) == 20
    assert checkin.streak_bonus(settings, 30) == 100


def test_distance_to_mall_is_geodesic(settings):
    at_mall = checkin.Position(settings.mall.latitude, settings.mall.longitude)
    assert checkin.distance_to_mall_m(settings, at_mall) == pytest.approx(0, abs=0.01)
    # 0.01 degrees of latitude is about 1.11 km anywhere.
    north = checkin.Position(settings.mall.latitude + 0.01, settings.mall.longitude)
    assert checkin.distance_to_mall_m(settings, north) == pytest.approx(1109, rel=0.01)


def test_member_code_round_trips_until_it_expires():
    now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    code, expires = auth.card_code(b"k", 42, now, 180)
    assert auth.member_for_card(b"k", code, now) == 42
    assert expires == int(now.timestamp()) + 180
    later = datetime.fromtimestamp(expires + 1, UTC)
    with pytest.raises(InvalidInput) as exc:
        auth.member_for_card(b"k", code, later)
    assert exc.value.code == "card.expired"


@pytest.mark.parametrize("mutate", [
    lambda c: c.replace("MC1.42.", "MC1.43."),      # another member's id
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # forged signature
    lambda c: "hello",
    lambda c: c.replace("MC1", "MC2"),
])
def test_member_code_rejects_forgeries(mutate):
    now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    code, _ = auth.card_code(b"k", 42, now, 180)
    with pytest.raises(InvalidInput) as exc:
        auth.member_for_card(b"k", mutate(code), now)
    assert exc.value.code == "card.invalid"


def test_member_code_from_another_key_is_rejected():
    now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    code, _ = auth.card_code(b"other", 42, now, 180)
    with pytest.raises(InvalidInput):
        auth.member_for_card(b"k", code, now)


def test_settings_take_mall_environment_variables():
    settings = load_settings(environ={"MALL_POINTS_FEN_PER_POINT": "500", "MALL_DATABASE_URL": "postgresql+psycopg://x",
                                      "MALL_WECHAT_API_BASE": "http://127.0.0.1:9/", "MALL_WECHAT_SECRET": "s"},
                             overlay=DEMO_SETTINGS_FILE)
    assert settings.points.fen_per_point == 500
    assert settings.database_url == "postgresql+psycopg://x"
    assert settings.wechat.api_base == "http://127.0.0.1:9"
    assert settings.wechat.secret == "s"


@pytest.mark.parametrize(("environ", "fragment"), [
    ({"MALL_POINTS_FEN_PER_PIONT": "500"}, "MALL_POINTS_FEN_PER_PIONT is not a mallapp setting"),
    ({"MALL_POINTS_FEN_PER_POINT": "ten"}, "points.fen_per_point"),
    ({"MALL_MALL_TIMEZONE": "Mars/Olympus"}, "mall.timezone"),
])
def test_settings_refuse_typos_and_bad_values(environ, fragment):
    with pytest.raises(SettingsError, match=fragment.replace(".", r"\.")):
        load_settings(environ=environ, overlay=DEMO_SETTINGS_FILE)
