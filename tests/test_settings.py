"""Settings: where the defaults live, the demo overlay, and how MALL_* variables map onto keys."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mallapp
from mallapp import settings as settings_module
from mallapp.settings import DEMO_SETTINGS_FILE, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


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
    assert settings.new_member_pack.house_store == "Customer Service"
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
