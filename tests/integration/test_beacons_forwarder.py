"""The forwarder and the spool against a loopback backend that checks every signature.

The backend here is a stand-in written from the wire contract (beacons/README.md), not from the
forwarder's code: it recomputes the HMAC itself, refuses reused nonces and stale timestamps, and
records what it accepted, in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from factories import CAPTURES, PROJECT

from beacons.forwarder import Forwarder, encode_batch, parse_key, sign
from beacons.gateway import Gateway, GatewayConfig
from beacons.replay import ReplaySource
from beacons.sighting import Sighting
from beacons.spool import Spool

MALL = "fda50693-a4e2-4fb1-afcf-c6eb07647825"
KEY = "gk_7.2.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
SECRET = KEY.split(".", 2)[2]
ROOT = PROJECT
MIXED = CAPTURES / "mall_mixed.jsonl"

Reply = tuple[int, dict[str, str], bytes]


class Backend:
    """A loopback ``POST /api/v1/gateway/sightings`` that verifies the contract and records batches."""

    def __init__(self) -> None:
        self.accepted: list[list[dict[str, Any]]] = []
        self.requests: list[tuple[int, int]] = []  # (status, sightings) per request
        self.nonces: set[str] = set()
        self.reply: Callable[[list[dict[str, Any]]], Reply | None] = lambda sightings: None
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, out = backend.handle(self.path, self.headers, body)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def handle(self, path: str, headers: Any, body: bytes) -> Reply:
        def refuse(status: int, code: str) -> Reply:
            return status, {}, json.dumps({"code": code}).encode()

        with self.lock:
            if path != "/api/v1/gateway/sightings":
                return refuse(404, "not_found")
            if headers["Content-Type"] != "application/json" or headers["X-Gateway-Key-Id"] != "7.2":
                return refuse(401, "gateway.unknown_key")
            timestamp, nonce = headers["X-Gateway-Timestamp"], headers["X-Gateway-Nonce"]
            if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 300:
                return refuse(401, "gateway.stale_signature")
            if not re.fullmatch(r"[0-9a-f]{32}", nonce) or nonce in self.nonces:
                return refuse(401, "gateway.nonce_reused")
            expected = hmac.new(SECRET.encode("ascii"), f"{timestamp}\n{nonce}\n".encode() + body,
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, headers["X-Gateway-Signature"]):
                return refuse(401, "gateway.bad_signature")
            self.nonces.add(nonce)
            sightings = json.loads(body)["sightings"]
            assert set(json.loads(body)) == {"sightings"} and 1 <= len(sightings) <= 1000
            reply = self.reply(sightings) or (202, {}, b'{"accepted": true}')
            self.requests.append((reply[0], len(sightings)))
            if 200 <= reply[0] < 300:
                self.accepted.append(sightings)
            return reply

    def minors(self) -> list[int]:
        with self.lock:
            return [s["minor"] for batch in self.accepted for s in batch]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend()
    yield b
    b.close()


def ib(seq: int, t: float | None = None) -> Sighting:
    return Sighting(time.time() if t is None else t, "ibeacon", "C3:00:00:00:00:01", -60, uuid=MALL, major=1,
                    minor=seq, measured_power=-59)


def forwarder(queue: asyncio.Queue[Sighting], url: str, spool_dir: Path, **kwargs: Any) -> Forwarder:
    spool = kwargs.pop("spool", None) or Spool(spool_dir, max_bytes=kwargs.pop("max_bytes", 1 << 20))
    opts: dict[str, Any] = {"batch_size": 100, "batch_interval": 0.02, "retry_initial": 0.01, "retry_max": 0.05,
                            "timeout": 2.0}
    return Forwarder(queue, backend_url=url, key=KEY, spool=spool, **{**opts, **kwargs})


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def accounted(stats: dict[str, int]) -> int:
    """Where the sightings taken off the queue went: every one in exactly one place."""
    return (stats["ignored"] + stats["accepted_sightings"] + stats["rejected_sightings"]
            + stats["spool_dropped_sightings"] + stats["spool_failed_sightings"] + stats["spool_pending_sightings"]
            + stats["pending_sightings"])


# --- signing ------------------------------------------------------------------------------------------


def test_sign_produces_the_contract_headers():
    body = b'{"sightings":[]}'
    headers = sign(KEY, body, 1700000000, "0123456789abcdef0123456789abcdef")
    message = b"1700000000\n0123456789abcdef0123456789abcdef\n" + body
    assert headers == {
        "Content-Type": "application/json",
        "X-Gateway-Key-Id": "7.2",
        "X-Gateway-Timestamp": "1700000000",
        "X-Gateway-Nonce": "0123456789abcdef0123456789abcdef",
        "X-Gateway-Signature": hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest(),
    }


@pytest.mark.parametrize("bad", ["", "gk_", "gk_1.2", "gk_a.2.secret", "gk_1.b.secret", "xx_1.2.secret",
                                 "gk_1.2.sec ret", "gk_1.2.sec/ret"])
def test_malformed_keys_are_refused_without_echoing_the_secret(bad):
    with pytest.raises(ValueError) as info:
        parse_key(bad)
    assert "secret" not in str(info.value).replace("<secret>", "")


# --- batching and sending ------------------------------------------------------------------------------


def test_batches_close_at_the_size_limit_and_are_signed(backend, tmp_path):
    async def scenario() -> Forwarder:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path, batch_size=500, batch_interval=5.0)
        for i in range(1200):
            queue.put_nowait(ib(i))
        task = asyncio.create_task(fwd.run())
        await until(lambda: len(backend.minors()) >= 1000)
        fwd.stop()  # the last 200 leave with the stop's flush, not after 5 s
        await task
        return fwd

    fwd = asyncio.run(scenario())
    assert [n for _, n in backend.requests] == [500, 500, 200]
    assert backend.minors() == list(range(1200))
    stats = fwd.stats()
    assert stats["accepted_batches"] == 3 and stats["accepted_sightings"] == 1200 and accounted(stats) == 1200


def test_a_batch_closes_after_the_interval(backend, tmp_path):
    async def scenario() -> float:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path, batch_size=500, batch_interval=0.1)
        task = asyncio.create_task(fwd.run())
        started = time.monotonic()
        for i in range(3):
            queue.put_nowait(ib(i))
        await until(lambda: len(backend.minors()) == 3)
        elapsed = time.monotonic() - started
        fwd.stop()
        await task
        return elapsed

    assert 0.09 <= asyncio.run(scenario()) < 1.0
    assert [n for _, n in backend.requests] == [3]


def test_sighting_json_reaches_the_backend_as_the_contract_says(backend, tmp_path):
    sightings = [
        Sighting(1700000000.5, "ibeacon", "A", -61, uuid=MALL, major=1, minor=2, measured_power=-59),
        Sighting(1700000000.6, "tlm", "A", -62, uuid=MALL, major=1, minor=2, battery_mv=3000, temperature_c=None,
                 adv_count=9, uptime_s=1.5),
        Sighting(1700000000.7, "eddystone_uid", "B", -63, namespace="00" * 10, instance="ab" * 6, tx_power=-20),
        Sighting(1700000000.8, "eddystone_url", "C", -64, url="https://x", tx_power=-20),  # not forwarded
    ]

    async def scenario() -> Forwarder:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path)
        for s in sightings:
            queue.put_nowait(s)
        task = asyncio.create_task(fwd.run())
        await until(lambda: bool(backend.accepted))
        fwd.stop()
        await task
        return fwd

    fwd = asyncio.run(scenario())
    assert backend.accepted == [[
        {"t": 1700000000.5, "kind": "ibeacon", "rssi": -61, "address": "A", "uuid": MALL, "major": 1, "minor": 2,
         "measured_power": -59},
        {"t": 1700000000.6, "kind": "tlm", "rssi": -62, "address": "A", "battery_mv": 3000, "temperature_c": None,
         "adv_count": 9, "uptime_s": 1.5, "uuid": MALL, "major": 1, "minor": 2},
        {"t": 1700000000.7, "kind": "eddystone_uid", "rssi": -63, "address": "B", "namespace": "00" * 10,
         "instance": "ab" * 6, "tx_power": -20},
    ]]
    assert fwd.counters.ignored == 1 and fwd.counters.received == 4


# --- the backend away, and back ------------------------------------------------------------------------


def test_backend_down_then_back_drains_the_spool_in_order_before_live_batches(backend, tmp_path):
    down = True
    backend.reply = lambda sightings: (503, {}, b'{"code": "unavailable"}') if down else None

    async def scenario() -> Forwarder:
        nonlocal down
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path, batch_size=50)
        task = asyncio.create_task(fwd.run())
        for i in range(0, 300, 30):  # 300 sightings while the backend is away
            for j in range(i, i + 30):
                queue.put_nowait(ib(j))
            await asyncio.sleep(0.03)
        await until(lambda: fwd.spool.pending_sightings + sum(b.n for b in fwd._memory) == 300)
        assert backend.accepted == [] and fwd.counters.send_failures >= 2
        down = False
        for j in range(300, 400):  # live sightings right as it comes back
            queue.put_nowait(ib(j))
        await until(lambda: len(backend.minors()) >= 400)
        fwd.stop()
        await task
        return fwd

    fwd = asyncio.run(scenario())
    assert backend.minors() == list(range(400))  # in order, nothing lost, nothing twice
    stats = fwd.stats()
    assert stats["spooled_sightings"] >= 250 and stats["spool_pending_batches"] == 0
    assert accounted(stats) == stats["received"] == 400
    assert not list(tmp_path.glob("seg-*.jsonl"))  # every sent segment deleted


def test_refused_batches_are_counted_logged_and_not_retried(backend, tmp_path, caplog):
    backend.reply = lambda sightings: ((422, {}, b'{"code": "sightings.stale", "message": "too old"}')
                                       if any(s["minor"] == 13 for s in sightings) else None)

    async def scenario() -> Forwarder:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path, batch_size=10, batch_interval=5.0)
        for i in range(30):
            queue.put_nowait(ib(i))
        task = asyncio.create_task(fwd.run())
        await until(lambda: len(backend.requests) == 3)
        await asyncio.sleep(0.05)  # a retry would show here
        fwd.stop()
        await task
        return fwd

    with caplog.at_level(logging.ERROR, logger="beacons.forwarder"):
        fwd = asyncio.run(scenario())
    assert backend.requests == [(202, 10), (422, 10), (202, 10)]
    assert backend.minors() == list(range(10)) + list(range(20, 30))
    assert (fwd.counters.rejected_batches, fwd.counters.rejected_sightings) == (1, 10)
    assert any("HTTP 422" in r.getMessage() and "sightings.stale" in r.getMessage() for r in caplog.records)
    assert accounted(fwd.stats()) == 30


def test_retry_after_is_honoured(backend, tmp_path):
    times: list[float] = []

    def reply(sightings: list[dict[str, Any]]) -> Reply | None:
        times.append(time.monotonic())
        return (429, {"Retry-After": "1"}, b"{}") if len(times) == 1 else None

    backend.reply = reply

    async def scenario() -> None:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path)  # its own backoff would retry after 0.01 s
        queue.put_nowait(ib(0))
        task = asyncio.create_task(fwd.run())
        await until(lambda: bool(backend.accepted))
        fwd.stop()
        await task

    asyncio.run(scenario())
    assert len(times) == 2 and times[1] - times[0] >= 0.95


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_spool_survives_a_restart_and_drains_before_new_sightings(backend, tmp_path):
    async def offline() -> dict[str, int]:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, f"http://127.0.0.1:{free_port()}", tmp_path, batch_size=25)  # nothing listens
        task = asyncio.create_task(fwd.run())
        for i in range(100):
            queue.put_nowait(ib(i))
        await until(lambda: fwd.counters.received == 100 and fwd.counters.send_failures >= 1)
        fwd.stop()  # the flush spools what memory still holds
        await task
        return fwd.stats()

    first = asyncio.run(offline())
    assert first["spool_pending_sightings"] == 100 and first["accepted_sightings"] == 0

    async def online() -> dict[str, int]:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, backend.url, tmp_path, batch_size=25)
        assert fwd.spool.pending_sightings == 100
        for i in range(100, 130):
            queue.put_nowait(ib(i))
        task = asyncio.create_task(fwd.run())
        await until(lambda: len(backend.minors()) == 130)
        fwd.stop()
        await task
        return fwd.stats()

    second = asyncio.run(online())
    assert backend.minors() == list(range(130))
    assert second["spool_pending_sightings"] == 0 and second["accepted_sightings"] == 130


def test_spool_bound_drops_the_oldest_and_counts(backend, tmp_path):
    down = True
    backend.reply = lambda sightings: (503, {}, b"{}") if down else None

    async def scenario() -> Forwarder:
        nonlocal down
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        spool = Spool(tmp_path, max_bytes=40_000, segment_bytes=5_000)
        fwd = forwarder(queue, backend.url, tmp_path, spool=spool, batch_size=20)
        task = asyncio.create_task(fwd.run())
        for i in range(0, 1000, 20):
            for j in range(i, i + 20):
                queue.put_nowait(ib(j))
            await until(lambda n=i + 20: fwd.counters.received == n)
        await until(lambda: fwd.spool.pending_sightings + fwd.spool.dropped_sightings == 1000)
        down = False
        await until(lambda: fwd.spool.pending_sightings == 0 and not fwd._memory)
        fwd.stop()
        await task
        return fwd

    fwd = asyncio.run(scenario())
    stats = fwd.stats()
    received = backend.minors()
    assert stats["spool_dropped_sightings"] > 0
    assert stats["spool_dropped_sightings"] + len(received) == 1000
    # What survived is the newest, in order.
    assert received == list(range(1000 - len(received), 1000))
    assert accounted(stats) == 1000


def test_a_spool_that_cannot_write_loses_batches_loudly(tmp_path, caplog):
    class FullDisk(Spool):
        def append(self, n: int, body: bytes) -> None:
            raise OSError(28, "No space left on device")

    async def scenario() -> Forwarder:
        queue: asyncio.Queue[Sighting] = asyncio.Queue()
        fwd = forwarder(queue, f"http://127.0.0.1:{free_port()}", tmp_path, spool=FullDisk(tmp_path))
        for i in range(10):
            queue.put_nowait(ib(i))
        task = asyncio.create_task(fwd.run())
        await until(lambda: fwd.counters.spool_failed_sightings == 10)
        fwd.stop()
        await task
        return fwd

    with caplog.at_level(logging.ERROR, logger="beacons.forwarder"):
        fwd = asyncio.run(scenario())
    assert accounted(fwd.stats()) == 10
    assert any("No space left" in r.getMessage() for r in caplog.records)


def test_gateway_key_repr_hides_the_secret():
    assert SECRET not in repr(parse_key(KEY)) and "7" in repr(parse_key(KEY))


# --- the spool on its own ---------------------------------------------------------------------------------


def body(*minors: int) -> bytes:
    return encode_batch([ib(m, t=1.0).to_json() for m in minors])


def drain_spool(spool: Spool) -> list[int]:
    out = []
    while (record := spool.peek()) is not None:
        out.extend(s["minor"] for s in json.loads(record.body)["sightings"])
        spool.pop(record)
    return out


def test_spool_resumes_at_its_cursor_after_a_restart(tmp_path):
    spool = Spool(tmp_path, segment_bytes=600)
    for i in range(10):
        spool.append(2, body(2 * i, 2 * i + 1))
    assert len(list(tmp_path.glob("seg-*.jsonl"))) > 2
    for _ in range(3):
        record = spool.peek()
        assert record is not None
        spool.pop(record)
    spool.close()
    again = Spool(tmp_path, segment_bytes=600)
    assert (again.pending_batches, again.pending_sightings) == (7, 14)
    again.append(1, body(20))
    assert drain_spool(again) == list(range(6, 21))
    assert not again.has_pending and not list(tmp_path.glob("seg-*.jsonl"))


def test_spool_cuts_a_torn_last_line_and_keeps_the_rest(tmp_path):
    spool = Spool(tmp_path)
    spool.append(1, body(1))
    spool.append(1, body(2))
    spool.close()
    (segment,) = tmp_path.glob("seg-*.jsonl")
    with segment.open("ab") as fh:
        fh.write(b'{"n":1,"sightings":[{"t":1')  # a crash in mid-append
    again = Spool(tmp_path)
    assert drain_spool(again) == [1, 2]


def test_an_unreadable_cursor_resends_rather_than_skips(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(1, body(i))
    record = spool.peek()
    assert record is not None
    spool.pop(record)
    spool.close()
    (tmp_path / "cursor.json").write_text("{garbage")
    assert drain_spool(Spool(tmp_path)) == [0, 1, 2]  # at least once


def test_spool_drops_whole_oldest_segments_past_its_bound(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=3000, segment_bytes=1000)
    with caplog.at_level(logging.WARNING, logger="beacons.spool"):
        for i in range(40):
            spool.append(1, body(i))
    assert spool.size_bytes <= 3000
    kept = drain_spool(spool)
    assert spool.dropped_sightings + len(kept) == 40
    assert kept == list(range(40 - len(kept), 40))
    assert any("spool full" in r.getMessage() for r in caplog.records)


# --- the whole gateway ------------------------------------------------------------------------------------


def test_gateway_replays_a_capture_to_the_backend_and_stops_at_its_end(backend, tmp_path):
    config = GatewayConfig(backend_url=backend.url, key=KEY, spool_dir=tmp_path / "spool", batch_interval=0.05,
                           replay=ReplaySource.from_capture(MIXED, speed=0), stats_interval=None)
    gateway = Gateway(config)
    gateway.start_in_thread()
    stats = gateway.join(timeout=10)
    sent = [s for batch in backend.accepted for s in batch]
    assert len(sent) == 16  # the capture's 17 frames less the URL frame
    assert [s["kind"] for s in sent].count("tlm") == 6
    assert all(abs(s["t"] - time.time()) < 30 for s in sent)  # wall clock, as the backend wants
    assert stats["listener"]["enqueued"] == 17 and stats["forwarder"]["accepted_sightings"] == 16
    assert SECRET not in repr(config)


def test_gateway_in_a_thread_stops_on_request_and_flushes(backend, tmp_path):
    config = GatewayConfig(backend_url=backend.url, key=KEY, spool_dir=tmp_path / "spool", batch_interval=5.0,
                           replay=ReplaySource.from_capture(MIXED, speed=0, loop=True), stats_interval=None,
                           queue_size=100_000)
    gateway = Gateway(config)
    gateway.start_in_thread()
    time.sleep(0.2)
    stats = gateway.stop_and_join(timeout=10)
    f = stats["forwarder"]
    assert f["accepted_sightings"] > 0 and f["spool_pending_sightings"] == 0
    assert f["received"] == stats["listener"]["enqueued"]
    assert accounted(f) == f["received"]
    assert sum(len(batch) for batch in backend.accepted) == f["accepted_sightings"]


def test_python_m_beacons_runs_a_replay_and_stops_cleanly_on_sigterm(backend, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_")}
    env["MALL_GATEWAY_KEY"] = KEY
    proc = subprocess.Popen(
        [sys.executable, "-m", "beacons", "--backend-url", backend.url, "--replay", str(MIXED), "--speed", "4",
         "--loop", "--spool-dir", str(tmp_path / "spool"), "--batch-interval", "0.1", "--log-format", "json",
         "--stats-interval", "0.2"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not backend.nonces and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    final = next(e for e in logs if e["msg"] == "gateway stopped")["stats"]["forwarder"]
    assert final["accepted_sightings"] == sum(len(b) for b in backend.accepted) > 0
    assert final["spool_pending_sightings"] == 0
    assert any(e["msg"].startswith("stats ") for e in logs)
