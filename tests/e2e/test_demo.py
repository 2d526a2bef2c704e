"""The README's run command: the demo brings the whole system up, and a member, a till and ops use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta

from factories import MALLAPP, cli_env
from playwright.sync_api import expect
from websockets.sync.client import connect

from mallapp.adapters import wechatpay_crypto
from mallapp.adapters.wechatpay_v3 import WeChatPayV3
from mallapp.devtools import wechatpay_keys
from mallapp.devtools.servers import free_port


def _call(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_demo_runs_the_whole_system_on_the_embedded_default(tmp_path, console_at):
    port, emulator_port, live_port, carpark_port = free_port(), free_port(), free_port(), free_port()
    proc = subprocess.Popen([MALLAPP, "demo", "--port", str(port), "--emulator-port", str(emulator_port),
                             "--live-port", str(live_port), "--carpark-port", str(carpark_port)],
                            env=cli_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
        # WeChat Pay is the emulator's too, with the dev keys the demo keeps under var/: they agree.
        pay_keys = wechatpay_keys.load_or_make(tmp_path / "var" / "wechatpay-dev")
        pay = WeChatPayV3(api_base=emulator, appid="wx0000000000demo0", mchid=pay_keys.mchid,
                          merchant_serial=pay_keys.merchant_serial,
                          private_key=wechatpay_crypto.load_private_key(pay_keys.merchant_private_pem),
                          platform_public_key=wechatpay_crypto.load_public_key(pay_keys.platform_public_pem),
                          platform_serial=pay_keys.platform_serial, apiv3_key=pay_keys.apiv3_key,
                          notify_url=f"{base}/api/v1/parking/wechatpay/notify")
        assert pay.create_native_order(out_trade_no="DEMO-E2E-0001", description="停车费", total_fen=100,
                                       expires_at=datetime.now(UTC) + timedelta(minutes=5)).code_url

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
        # The demo's walkable graph is seeded: a toilet on each mall floor, for anyone to find.
        status, toilets = _call("GET", f"{base}/api/v1/amenities?kind=toilets&lang=en")
        assert status == 200 and [(a["floor"], a["label"]) for a in toilets["amenities"]] == [
            (1, "Toilets"), (2, "Toilets"), (3, "Toilets")]
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
        # The demo member's car is in the car park (the demo's car traffic drove it in, through the car-park
        # emulator's signed notification): she finds it and pays two hours with points, no cash.
        _, login = _call("POST", f"{emulator}/__emulator/login", {"openid": "demo-shopper-ada"})
        _, ada = _call("POST", f"{base}/api/v1/auth/wechat", {"code": login["code"]})
        ada = {"Authorization": f"Bearer {ada['token']}"}
        deadline = time.monotonic() + 60
        while True:
            _, found = _call("GET", f"{base}/api/v1/me/parking/car", headers=ada)
            if found["cars"]:
                break
            assert time.monotonic() < deadline, "the demo member's car never came in"
            time.sleep(0.5)
        assert (found["cars"][0]["level"]["code"], found["cars"][0]["bay"]) == ("B2", "B2-C058")
        # From 星巴克 (found by its pinyin initials) back to her car, step-free: down by lift (and the car park's ramp),
        # every floor change spelled out, to the bay.
        _, found_store = _call("GET", f"{base}/api/v1/stores?q=xbk")
        starbucks = found_store["stores"][0]
        assert (starbucks["name"], starbucks["unit"]) == ("星巴克", "L2-05")
        status, route = _call("GET", f"{base}/api/v1/routes?from=store:{starbucks['id']}&to=car&profile=step_free",
                              headers=ada)
        texts = [step["text"] for step in route["steps"]]
        assert status == 200 and texts[0] == "从星巴克出发（2楼）" and texts[-1] == "到达您的车位B2-C058", texts
        assert any(text.startswith("乘电梯下到") for text in texts) and not any("扶梯" in t or "楼梯" in t for t in texts)
        legs = [leg["floor_name"] for leg in route["legs"]]
        assert legs[0] == "L2" and legs[-1] == "B2", legs
        status, quote = _call("POST", f"{base}/api/v1/me/parking/quote", {"plate": "沪A12345", "points_hours": 2},
                              ada)
        assert status == 200 and quote["items"][0]["kind"] == "points" and quote["cash_fen"] == 0
        status, paid = _call("POST", f"{base}/api/v1/me/parking/payments", {
            "plate": "沪A12345", "points_hours": 2, "expected_cash_fen": 0, "idempotency_key": "e2e-ada-1"}, ada)
        assert status == 201 and paid["status"] == "paid" and paid["points"] == quote["points"] > 0
        status, after = _call("POST", f"{base}/api/v1/me/parking/quote", {"plate": "沪A12345"}, ada)
        assert (status, after["due_fen"]) == (200, 0)

        _, fleet = _call("GET", f"{base}/api/v1/ops/beacons", headers=ops)
        problems = {b["label"]: b["problems"] for b in fleet["beacons"]}
        assert problems["Food court, centre"] == ["never_seen"]  # no gateway on floor 2 hears it
        assert problems["Starlight Coffee, counter"] == []

        # The README's consoles tour: the demo's staff sign in with the passwords the demo wrote.
        _consoles_tour(console_at(base), tmp_path / "var")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert f"mallapp is running at {base}" in output


def _consoles_tour(console, var) -> None:
    """The demo's consoles in Chromium: the restaurant host's queue, the till, the ops dashboard."""
    staff = {line.split("\t")[0]: line.split("\t")[1]
             for line in (var / "demo-staff-passwords.txt").read_text().splitlines()}
    page = console.sign_in("staff", "jade-host", staff["jade-host"])
    assert page.url.endswith("/console/staff/")
    with page.expect_navigation():
        page.get_by_test_id("to-host").click()
    console.wait_ready()
    # The demo restaurant's queue is open with its three bands.
    for band in ("A", "B", "C"):
        expect(page.get_by_text(f"{band} 桌", exact=False).first).to_be_visible()
    page.context.clear_cookies()
    page = console.sign_in("staff", "coffee-cashier", staff["coffee-cashier"], then="/console/till/")
    expect(page.locator("main")).to_contain_text("Starlight Coffee")
