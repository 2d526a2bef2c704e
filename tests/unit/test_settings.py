"""Settings: where the defaults live, the demo overlay, and how MALL_* variables map onto keys."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from factories import PROJECT

import mallapp
from mallapp import settings as settings_module
from mallapp.settings import DEMO_SETTINGS_FILE, SettingsError, load_settings

ROOT = PROJECT


def test_the_defaults_ship_inside_the_package_as_package_data():
    package_dir = Path(mallapp.__file__).resolve().parent
    assert settings_module.DEFAULTS_FILE.parent == package_dir
    assert settings_module.DEFAULTS_FILE.is_file()
    with (ROOT / "pyproject.toml").open("rb") as fh:
        package_data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]["mallapp"]
    assert settings_module.DEFAULTS_FILE.name in package_data


def test_settings_load_from_any_working_directory(tmp_path):
    # Not from the checkout's root: nothing may be found relative to the working directory.
    code = "from mallapp.settings import load_settings; load_settings()"
    env = {"PATH": "/usr/bin:/bin", "MALL_WECHAT_APPID": "wx-any", "MALL_MALL_NAME": "Any Mall",
           "MALL_MALL_LATITUDE": "30", "MALL_MALL_LONGITUDE": "120"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_production_defaults_need_the_mall_s_own_values():
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={})
    message = str(caught.value)
    for key in ("wechat.appid", "mall.name", "mall.latitude", "mall.longitude"):
        assert key in message
    assert "MALL_CONFIG" in message


def test_production_defaults_carry_nothing_of_the_demo():
    settings = load_settings(environ={"MALL_WECHAT_APPID": "wx-real", "MALL_MALL_NAME": "Real Mall",
                                      "MALL_MALL_LATITUDE": "39.9", "MALL_MALL_LONGITUDE": "116.4"})
    assert settings.gifts == ()
    assert settings.new_member_pack.coupons == () and settings.new_member_pack.house_store is None
    assert settings.notifications.templates == {}


def test_the_demo_overlay_fills_the_required_keys():
    settings = load_settings(environ={}, overlay=DEMO_SETTINGS_FILE)
    assert (settings.mall.name, settings.wechat.appid) == ("Demo Mall", "wx0000000000demo0")
    assert settings.new_member_pack.house_store == "客户服务中心"
    assert settings.notifications.templates["deal"].template_id == "demo-deal-announced"


def test_mall_config_names_overlays_in_order(tmp_path):
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('[mall]\nname = "First"\nradius_m = 50.0\n')
    second.write_text('[mall]\nname = "Second"\n')
    settings = load_settings(environ={"MALL_CONFIG": os.pathsep.join([str(first), str(second)])},
                             overlay=DEMO_SETTINGS_FILE)
    assert (settings.mall.name, settings.mall.radius_m) == ("Second", 50.0)
    with pytest.raises(SettingsError, match="MALL_CONFIG"):
        load_settings(environ={"MALL_CONFIG": str(tmp_path / "missing.toml")})


def test_mall_wide_pack_coupons_need_a_house_store():
    coupon = {"key": "k", "title": "t", "benefit": {"kind": "bonus_points", "points": 5}}
    with pytest.raises(SettingsError, match="house_store is required"):
        load_settings({"new_member_pack": {"house_store": None, "coupons": [coupon]}}, environ={},
                      overlay=DEMO_SETTINGS_FILE)
    settings = load_settings({"new_member_pack": {"house_store": None, "coupons": [{**coupon, "store": "S"}]}},
                             environ={}, overlay=DEMO_SETTINGS_FILE)
    assert settings.new_member_pack.coupons[0].store == "S"


def test_environment_variables_reach_beacon_sub_tables():
    settings = load_settings(environ={"MALL_BEACONS_ZONES_ENTER_STORE_M": "4.5",
                                      "MALL_BEACONS_SIGNAL_RSSI_FILTER": "median",
                                      "MALL_BEACONS_CHECKIN_MIN_UPDATES": "4",
                                      "MALL_BEACONS_INGEST_STREAM_PARTITIONS": "16",
                                      "MALL_BEACONS_HEALTH_BATTERY_LOW_MV": "2400",
                                      "MALL_BEACONS_IDENTITY_TTL_S": "600",
                                      "MALL_BEACONS_UUIDS": "fda50693-a4e2-4fb1-afcf-c6eb07647825, "
                                                            "11111111-2222-3333-4444-555555555555"},
                             overlay=DEMO_SETTINGS_FILE)
    beacons = settings.beacons
    assert beacons.zones.enter_store_m == 4.5 and beacons.zones.enter_item_m == 2.0
    assert beacons.signal.rssi_filter == "median"
    assert beacons.checkin.min_updates == 4
    assert beacons.ingest.stream_partitions == 16
    assert beacons.health.battery_low_mv == 2400
    assert beacons.identity_ttl_s == 600
    assert beacons.uuids[1] == "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("name", ["MALL_BEACONS_ENTER_STORE_M", "MALL_BEACONS_ZONES", "MALL_BEACONS_ZONES_ENTER",
                                  "MALL_AUTH_TOKEN_TTL_SECONDS"])
def test_old_and_partial_names_are_not_settings(name):
    with pytest.raises(SettingsError, match=f"{name} is not a mallapp setting"):
        load_settings(environ={name: "1"}, overlay=DEMO_SETTINGS_FILE)


def test_every_beacon_key_is_commented_in_the_defaults():
    lines = settings_module.DEFAULTS_FILE.read_text().splitlines()
    section = lines[lines.index("[beacons]"):lines.index("[deals]")]

    def is_key(line: str) -> bool:
        return "=" in line and not line.startswith("#")

    for i, line in enumerate(section):
        if is_key(line):
            # The line above it, or above the run of keys it belongs to (enter_store_m, enter_item_m, ...).
            above = next(p for p in reversed(section[:i]) if not is_key(p))
            assert above.startswith("#"), f"{line!r} has no comment"


def test_next_due_min_purchase_days_defaults_to_never_the_own_gap_and_refuses_one():
    assert load_settings({}, environ={}, overlay=DEMO_SETTINGS_FILE).segments.next_due_min_purchase_days == 0
    assert load_settings({"segments": {"next_due_min_purchase_days": 3}}, environ={},
                         overlay=DEMO_SETTINGS_FILE).segments.next_due_min_purchase_days == 3
    with pytest.raises(SettingsError, match="next_due_min_purchase_days"):
        load_settings({"segments": {"next_due_min_purchase_days": 1}}, environ={}, overlay=DEMO_SETTINGS_FILE)
