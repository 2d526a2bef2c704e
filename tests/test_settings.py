"""Settings: where the defaults live, the demo overlay, and how MALL_* variables map onto keys."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import mallapp
from mallapp import settings as settings_module

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
