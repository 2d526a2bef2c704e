"""The command line and the demo command's checks, as an operator uses them (the demo running: e2e/test_demo.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from factories import MALLAPP, PROJECT, cli_env
from sqlalchemy import create_engine, text

from mallapp.devtools.servers import free_port
from mallapp.schema import alembic_config
from mallapp.settings import DEMO_SETTINGS_FILE


def test_merchants_create_prints_the_key_last_and_stores_only_its_hash(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = cli_env(tmp_path, MALL_DATABASE_URL=url)
    upgrade = subprocess.run([MALLAPP, "db", "upgrade"], env=env, capture_output=True, text=True, check=True)
    # At the migration scripts' head, whichever revision that is: a new migration needs no edit here.
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert upgrade.stdout.strip().splitlines()[-1] == f"schema at {head}"
    done = subprocess.run([MALLAPP, "merchants", "create", "Harbour Books"], env=env, capture_output=True,
                          text=True, check=True)
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("mk_") and len(key) > 40
    engine = create_engine(url)
    with engine.connect() as conn:
        name, stored = conn.execute(text("SELECT name, api_key_hash FROM merchants")).one()
    engine.dispose()
    assert name == "Harbour Books" and key not in stored

    from mallapp.domain import merchants
    from mallapp.runtime import build_runtime
    from mallapp.settings import load_settings

    rt = build_runtime(load_settings({"database_url": url, "redis_url": "redis://127.0.0.1:1/0",
                                      "var_dir": str(tmp_path / "var")}, environ={},
                                     overlay=DEMO_SETTINGS_FILE))
    with rt.sessions.begin() as session:
        assert merchants.authenticate(session, key).name == "Harbour Books"
    rt.engine.dispose()


def test_bad_settings_fail_with_a_clear_message(tmp_path):
    done = subprocess.run([MALLAPP, "db", "upgrade"], env=cli_env(tmp_path, MALL_POINTS_FEN_PER_POINT="ten"),
                          capture_output=True, text=True)
    assert done.returncode != 0 and "points.fen_per_point" in done.stderr


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # the process may be gone meanwhile
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return lines


@pytest.mark.parametrize("flag", ["--port", "--live-port", "--emulator-port", "--carpark-port"])
def test_demo_with_a_port_taken_says_which_and_starts_nothing(tmp_path, flag):
    import socket

    ports = {"--port": free_port(), "--live-port": free_port(), "--emulator-port": free_port(),
             "--carpark-port": free_port()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports[flag] = taken.getsockname()[1]
        args = [a for item in ports.items() for a in (item[0], str(item[1]))]
        done = subprocess.run([MALLAPP, "demo", *args], env=cli_env(tmp_path), capture_output=True, text=True,
                              timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {ports[flag]} is in use" in lines[0] and f"choose another with {flag}" in lines[0]
    assert done.stdout == ""
    # Nothing was started: no embedded Redis in the var dir, no gunicorn or process on the demo's ports,
    # and the other ports are still free.
    var = tmp_path / "var"
    assert not var.exists() or not any(var.glob("redis*"))
    if Path("/proc/self/cmdline").exists():
        mine = [line for line in _command_lines()
                if f"127.0.0.1:{ports['--port']}" in line or f"--port {ports['--live-port']}" in line]
        assert mine == []
    for other, port in ports.items():
        if other != flag:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))


def test_demo_refuses_one_port_for_two_servers(tmp_path):
    port = free_port()
    done = subprocess.run([MALLAPP, "demo", "--port", str(port), "--live-port", str(port), "--emulator-port",
                           str(free_port()), "--carpark-port", str(free_port())], env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == (f"mallapp demo: port {port} is given to both --port and --live-port; "
                                   "choose another with --live-port")


def test_the_procfile_is_the_process_table():
    from mallapp.processes import procfile

    assert (PROJECT / "Procfile").read_text() == procfile(), \
        "regenerate it: mallapp procfile > Procfile"


@pytest.mark.parametrize("name", ["worker", "offers", "live", "clock", "sends"])
def test_each_process_is_a_command_of_mallapp(name):
    shown = subprocess.run([sys.executable, "-m", "mallapp", name, "--help"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"usage: mallapp {name}")
