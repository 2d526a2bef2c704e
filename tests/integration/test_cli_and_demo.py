"""The command line and the README's run command, as an operator uses them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from factories import PROJECT
from sqlalchemy import create_engine, text
from websockets.sync.client import connect

from mallapp.devtools.servers import free_port
from mallapp.schema import alembic_config
from mallapp.settings import DEMO_SETTINGS_FILE

MALLAPP = str(Path(sys.executable).with_name("mallapp"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_")}
    return {**env, "MALL_CONFIG": str(DEMO_SETTINGS_FILE), "MALL_VAR_DIR": str(tmp_path / "var"),
            "MALL_LOG_FORMAT": "text", **extra}


def test_merchants_create_prints_the_key_last_and_stores_only_its_hash(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = _env(tmp_path, MALL_DATABASE_URL=url)
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
    done = subprocess.run([MALLAPP, "db", "upgrade"], env=_env(tmp_path, MALL_POINTS_FEN_PER_POINT="ten"),
                          capture_output=True, text=True)
    assert done.returncode != 0 and "points.fen_per_point" in done.stderr


def _call(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_demo_runs_the_whole_system_on_the_embedded_default(tmp_path):
    port, emulator_port, live_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([MALLAPP, "demo", "--port", str(port), "--emulator-port", str(emulator_port),
                             "--live-port", str(live_port)],
                            env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    base, emulator = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = _call("GET", f"{base}/healthz")
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the demo did not come up within 60 s"
                time.sleep(0.2)
        assert (status, health["status"]) == (200, "ok")

        _, login = _call("POST", f"{emulator}/__emulator/login", {})
        status, signed_in = _call("POST", f"{base}/api/v1/auth/wechat", {"code": login["code"]})
        assert status == 200 and signed_in["new_member"] is True
        member = {"Authorization": f"Bearer {signed_in['token']}"}
        # The member's mini-program opens the live channel (its server may still be starting).
        deadline = time.monotonic() + 30
        while True:
            try:
                with connect(f"ws://127.0.0.1:{live_port}/api/v1/live", additional_headers=member) as ws:
                    hello = json.loads(ws.recv(timeout=10))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the live channel did not come up within 30 s"
                time.sleep(0.2)
        assert hello == {"type": "hello", "member_id": signed_in["member"]["id"]}
        # The demo mall has the house store, so a new member's pack is in the wallet.
        status, wallet = _call("GET", f"{base}/api/v1/me/coupons?status=active", headers=member)
        assert status == 200 and len(wallet["coupons"]) == 4
        status, checked = _call("POST", f"{base}/api/v1/checkins", {}, member)
        assert status == 201 and checked["points"] > 0

        # A demo merchant's till posts a purchase against the member's code.
        key = (tmp_path / "var" / "demo-merchant-keys.txt").read_text().splitlines()[0].split("\t")[1]
        _, card = _call("GET", f"{base}/api/v1/me/card", headers=member)
        status, bought = _call("POST", f"{base}/api/v1/merchant/purchases", {
            "member_code": card["code"], "amount_fen": 18800, "receipt_no": "DEMO-1",
            "occurred_at": datetime.now(UTC).isoformat()}, {"Authorization": f"Bearer {key}"})
        assert status == 201 and bought["points_total"] == 18
        _, me = _call("GET", f"{base}/api/v1/me", headers=member)
        assert me["points"]["balance"] == checked["points"] + 18

        # The demo's shoppers walk past the gateways: the listeners' batches reach the worker, and
        # operations see them in the mall, checked in by beacon, next to the fleet's health.
        username, password = (tmp_path / "var" / "demo-ops-password.txt").read_text().split()
        _, signed_ops = _call("POST", f"{base}/api/v1/ops/auth", {"username": username, "password": password})
        ops = {"Authorization": f"Bearer {signed_ops['token']}"}
        deadline = time.monotonic() + 90
        while True:
            _, presence = _call("GET", f"{base}/api/v1/ops/presence", headers=ops)
            stores = {z["name"]: z["present"] for z in presence["zones"]}
            if presence["mall"] >= 2 and stores["Starlight Coffee"] >= 1:
                break
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"no demo shoppers in the mall and the coffee shop: {presence}"
            time.sleep(1)
        _, fleet = _call("GET", f"{base}/api/v1/ops/beacons", headers=ops)
        problems = {b["label"]: b["problems"] for b in fleet["beacons"]}
        assert problems["Food court, centre"] == ["never_seen"]  # no gateway on floor 2 hears it
        assert problems["Starlight Coffee, counter"] == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert f"mallapp is running at {base}" in output


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # the process may be gone meanwhile
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return lines


@pytest.mark.parametrize("flag", ["--port", "--live-port", "--emulator-port"])
def test_demo_with_a_port_taken_says_which_and_starts_nothing(tmp_path, flag):
    import socket

    ports = {"--port": free_port(), "--live-port": free_port(), "--emulator-port": free_port()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports[flag] = taken.getsockname()[1]
        args = [a for item in ports.items() for a in (item[0], str(item[1]))]
        done = subprocess.run([MALLAPP, "demo", *args], env=_env(tmp_path), capture_output=True, text=True,
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
                           str(free_port())], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == (f"mallapp demo: port {port} is given to both --port and --live-port; "
                                   "choose another with --live-port")


def test_the_procfile_is_the_process_table():
    from mallapp.processes import procfile

    assert (PROJECT / "Procfile").read_text() == procfile(), \
        "regenerate it: mallapp procfile > Procfile"


@pytest.mark.parametrize("name", ["worker", "offers", "live", "clock"])
def test_each_process_is_a_command_of_mallapp(name):
    shown = subprocess.run([sys.executable, "-m", "mallapp", name, "--help"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"usage: mallapp {name}")
