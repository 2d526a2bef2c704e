"""Shared fixtures: real Redis and PostgreSQL servers, the WeChat emulator, an app per backend.

API tests that take ``client`` run twice, on SQLite and on PostgreSQL. After any test that
built a runtime, the points ledger's invariants are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import WECHATPAY_NOTIFY_URL, Venue, build_venue
from redis import Redis
from sqlalchemy import text
from websockets.sync.client import ClientConnection, connect
from werkzeug.serving import make_server

from beacons.datasets import shared_data_dir
from mallapp import create_app
from mallapp.adapters import live
from mallapp.devtools import wechatpay_keys
from mallapp.devtools.servers import PostgresServer, RedisServer
from mallapp.devtools.wechat_emulator import WeChatEmulator
from mallapp.domain import auth, merchants, points
from mallapp.domain.models import metadata
from mallapp.domain.parking import quota as parking_quota
from mallapp.processes.live import LiveServer
from mallapp.runtime import Runtime, build_runtime
from mallapp.schema import upgrade
from mallapp.settings import DEMO_SETTINGS_FILE, Settings, load_settings

APPID = "wxtest00000000001"
SECRET = "test-secret-0123456789"
SECRET_KEY = "test-signing-key-not-for-production"


@dataclass
class Clock:
    """A clock the tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# --- servers (one per test session) ----------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def wechatpay_dev_keys() -> wechatpay_keys.DevKeys:
    """The merchant and platform key pairs and the APIv3 key, made once per session (RSA 2048 takes a while)."""
    return wechatpay_keys.make()


@pytest.fixture(scope="session")
def emulator_server(wechatpay_dev_keys: wechatpay_keys.DevKeys) -> Iterator[WeChatEmulator]:
    with WeChatEmulator(APPID, SECRET) as emulator:
        emulator.configure_pay(wechatpay_dev_keys)
        yield emulator


@pytest.fixture
def emulator(emulator_server: WeChatEmulator) -> WeChatEmulator:
    emulator_server.reset()
    return emulator_server


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The recorded BLE data sets' directory (``$MALL_SHARED_DATA``, else ``../shared/data`` beside the
    project); a test that takes it skips, naming the path, where a clone has no data there."""
    root = shared_data_dir()
    if not (root / "ble").is_dir():
        pytest.skip(f"the recorded BLE data sets are not at {root / 'ble'}: put ../shared/data beside the "
                    "project or set MALL_SHARED_DATA")
    return root


# --- databases -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database(pg_server: PostgresServer) -> str:
    url = pg_server.create_database("mallapp_test")
    upgrade(url)
    return url


def _truncate_all(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        # TRUNCATE fires no row triggers, so the ledger's append-only guard stays in place.
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "mallapp.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
        yield url
        _truncate_all(url)


@pytest.fixture
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at a token cost, for modules that prove an API, not the hash's cost.

    Opt in with ``pytestmark = pytest.mark.usefixtures("cheap_password_hashing")``.
    """
    monkeypatch.setitem(auth.SCRYPT, "n", 2**8)


# --- the runtime and the app -----------------------------------------------------------------------

@pytest.fixture
def clock() -> Clock:
    # 10:00 in Shanghai on an ordinary weekday.
    return Clock(datetime(2026, 3, 10, 2, 0, tzinfo=UTC))


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change settings for its tests."""
    return {}


@pytest.fixture
def settings(database_url: str, redis_server: RedisServer, emulator_server: WeChatEmulator, tmp_path: Path,
             settings_overrides: dict[str, Any], wechatpay_dev_keys: wechatpay_keys.DevKeys) -> Settings:
    base = {
        "database_url": database_url,
        "redis_url": redis_server.url,
        "var_dir": str(tmp_path / "var"),
        "secret_key": SECRET_KEY,
        "log_format": "json",
        "wechat": {"appid": APPID, "secret": SECRET, "api_base": emulator_server.base_url},
        # WeChat Pay against the same emulator (rt.wechatpay works in every test); no retries, so a fault
        # a test scripts is the answer it sees.
        "wechatpay": {**wechatpay_keys.settings_for(wechatpay_dev_keys, api_base=emulator_server.base_url,
                                                     notify_url=WECHATPAY_NOTIFY_URL), "retries": 0},
    }
    from mallapp.settings import _merge

    # The demo's overlay: the demo mall's name and place, its pack coupons, gifts and deal template.
    return load_settings(_merge(base, settings_overrides), environ={}, overlay=DEMO_SETTINGS_FILE)


@pytest.fixture
def rt(settings: Settings, redis_client: Redis, clock: Clock) -> Iterator[Runtime]:
    runtime = build_runtime(settings, redis=redis_client)
    runtime.clock = clock
    yield runtime
    # Every test that touched the ledger leaves it sound.
    with runtime.sessions.begin() as session:
        problems = points.check_invariants(session)
        # ...and merchants' parking quota equal to the sum of its entries, never negative.
        problems += parking_quota.check_invariants(session)
    runtime.engine.dispose()
    assert problems == [], "ledger invariants broken:\n" + "\n".join(problems)


@pytest.fixture
def app(rt: Runtime, emulator: WeChatEmulator):
    app = create_app(runtime=rt)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app_url(app) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1 and a free port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="app-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def client(app):
    return app.test_client()


# --- the live channel ------------------------------------------------------------------------------

class LiveThread:
    """A live server on its own event loop in a thread, on a free port."""

    def __init__(self, settings, redis_url: str, **kwargs: Any) -> None:
        self.server = LiveServer(settings, redis_url, host="127.0.0.1", port=0, **kwargs)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.run(self.stop),),
                                       daemon=True)

    def __enter__(self) -> LiveThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.server.bound_port is None:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.bound_port}{self.server.path}"

    def wait_online(self, rt: Runtime, member_id: int) -> None:
        """Until the member's connection is subscribed in Redis (messages reach it from then on)."""
        deadline = time.monotonic() + 5
        while member_id not in live.online(rt.redis, [member_id]):
            assert time.monotonic() < deadline, f"member {member_id} did not come online"
            time.sleep(0.01)

    @contextlib.contextmanager
    def connect(self, member: dict[str, Any]) -> Iterator[ClientConnection]:
        """Connect as the mini-program does, and read the hello."""
        with connect(self.url, additional_headers=member["headers"], open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5)) == {"type": "hello", "member_id": member["member"]["id"]}
            yield ws


@pytest.fixture
def start_live_server(rt: Runtime, redis_server: RedisServer) -> Iterator[Callable[..., LiveThread]]:
    """Start live servers on the test Redis, or the one ``redis_url`` names (other keyword arguments go to
    LiveServer); all stop after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda redis_url=None, **kwargs: stack.enter_context(
            LiveThread(rt.settings, redis_url or redis_server.url, **kwargs))


@pytest.fixture
def live_server(start_live_server: Callable[..., LiveThread]) -> LiveThread:
    """A live server (the WebSocket channel) for members' open mini-programs."""
    return start_live_server()



# --- helpers ---------------------------------------------------------------------------------------

class Members:
    """Signs members in through the real endpoint, as the mini-program does."""

    def __init__(self, client, emulator: WeChatEmulator):
        self.client = client
        self.emulator = emulator

    def sign_in(self, openid: str | None = None, unionid: str | None = None, **extra: Any) -> dict[str, Any]:
        code = self.emulator.login(openid=openid, unionid=unionid)
        response = self.client.post("/api/v1/auth/wechat", json={"code": code, **extra})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        body["headers"] = {"Authorization": f"Bearer {body['token']}"}
        return body


@pytest.fixture
def members_api(client, emulator: WeChatEmulator) -> Members:
    return Members(client, emulator)


@pytest.fixture
def shoppers(members_api: Members) -> dict[str, dict[str, Any]]:
    """Three signed-in members, ``ada``, ``bo`` and ``chen``: sign-in bodies with ``headers`` and ``openid``."""
    out = {}
    for name in ("ada", "bo", "chen"):
        body = members_api.sign_in(openid=f"o-{name}")
        body["openid"] = f"o-{name}"
        out[name] = body
    return out


@pytest.fixture
def venue(rt: Runtime) -> Venue:
    """The small proximity venue of ``factories.build_venue``: entrance, coffee shop, sale item, gateway."""
    return build_venue(rt)


@pytest.fixture
def member(members_api: Members) -> dict[str, Any]:
    """A signed-in member: the sign-in body plus ready ``headers``."""
    return members_api.sign_in(openid="o-member-1")


@pytest.fixture
def merchant(rt: Runtime) -> dict[str, Any]:
    with rt.sessions.begin() as session:
        row, key = merchants.create(session, "Starlight Coffee", rt.now())
        merchant_id = row.id
    return {"id": merchant_id, "key": key, "headers": {"Authorization": f"Bearer {key}"}}


@pytest.fixture
def card(client, member: dict[str, Any]) -> str:
    """A fresh member code for ``member``, as the till scans it."""
    return client.get("/api/v1/me/card", headers=member["headers"]).get_json()["code"]


OPS_PASSWORD = "correct-horse-battery-staple"


def _ops_user(rt: Runtime, client, username: str, role: str) -> dict[str, Any]:
    """An ops user made as the CLI makes one, signed in through the real endpoint."""
    from mallapp.domain import ops

    with rt.sessions.begin() as session:
        user_id = ops.create_user(session, username, role, OPS_PASSWORD, rt.now()).id
    response = client.post("/api/v1/ops/auth", json={"username": username, "password": OPS_PASSWORD})
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["token"]
    return {"id": user_id, "username": username, "password": OPS_PASSWORD, "token": token,
            "headers": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
def ops_admin(rt: Runtime, client) -> dict[str, Any]:
    """A signed-in ops admin: ``id``, ``token`` and ready ``headers``."""
    return _ops_user(rt, client, "ops-admin", "admin")


@pytest.fixture
def ops_viewer(rt: Runtime, client) -> dict[str, Any]:
    """A signed-in ops viewer (reads only): ``id``, ``token`` and ready ``headers``."""
    return _ops_user(rt, client, "ops-viewer", "viewer")


@pytest.fixture
def ops_marketing(rt: Runtime, client) -> dict[str, Any]:
    """A signed-in ops marketing user (segments, reports, campaigns): ``id``, ``token`` and ready ``headers``."""
    return _ops_user(rt, client, "ops-marketing", "marketing")


@pytest.fixture
def ops_desk(rt: Runtime, client) -> dict[str, Any]:
    """A signed-in service-desk user (members, points adjustments, gifts): ``id``, ``token`` and ``headers``."""
    return _ops_user(rt, client, "ops-desk", "desk")
