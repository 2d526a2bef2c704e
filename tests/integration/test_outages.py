"""Outages, on real servers: Redis or the database goes away (stopped, frozen, never there) while the app runs.

Requests answer 503 with Retry-After and a stable code, quickly, with one warning in the log rather than a
traceback per request; the live channel keeps its sockets through a Redis restart and subscribes again.
Each test makes its own throwaway servers: the session's must stay up for the other tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from mallapp.adapters.live import channel, frame, online
from mallapp.api.app import create_app
from mallapp.devtools.servers import PostgresServer, RedisServer, free_port
from mallapp.domain import auth
from mallapp.runtime import Runtime, build_runtime
from mallapp.schema import upgrade

# The app's database is beside the point here (the database tests name their own): SQLite only.
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

REQUESTS = 25


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, on a fixed port so that it can be stopped and started again."""
    server = RedisServer(port=free_port())
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def runtime_with(settings, clock, **changes: Any) -> Iterator[Runtime]:
    """A runtime built as a process builds one (its own Redis client, with the settings' timeouts)."""
    rt = build_runtime(settings.model_copy(update=changes))
    rt.clock = clock
    try:
        yield rt
    finally:
        with contextlib.suppress(Exception):
            rt.close()


def sign_in(client, emulator, openid: str) -> dict[str, Any]:
    response = client.post("/api/v1/auth/wechat", json={"code": emulator.login(openid=openid)})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    body["headers"] = {"Authorization": f"Bearer {body['token']}"}
    return body


def assert_refused(response, code: str) -> None:
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) > 0


def outage_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mallapp.outages" and r.levelno == logging.WARNING]


def unhandled(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "unhandled error"]


# --- Redis -----------------------------------------------------------------------------------------

@SQLITE
def test_redis_stopped_answers_503_and_warns_once(settings, clock, emulator, own_redis, caplog):
    with runtime_with(settings, clock, redis_url=own_redis.url) as rt:
        client = create_app(runtime=rt).test_client()
        member = sign_in(client, emulator, "o-outage")
        assert client.get("/api/v1/me", headers=member["headers"]).status_code == 200
        own_redis.stop()
        caplog.clear()
        caplog.set_level(logging.INFO)
        started = time.monotonic()
        for _ in range(REQUESTS):
            assert_refused(client.get("/api/v1/me", headers=member["headers"]), "service.redis_unavailable")
        assert time.monotonic() - started < REQUESTS * 0.5  # refused connections fail at once
        assert len(outage_warnings(caplog)) == 1, [r.getMessage() for r in outage_warnings(caplog)]
        assert "service.redis_unavailable" in outage_warnings(caplog)[0].getMessage()
        assert unhandled(caplog) == []


@SQLITE
def test_redis_frozen_fails_within_the_socket_timeout(settings, clock, emulator, own_redis, caplog):
    timeouts = {"socket_timeout_s": 0.5, "connect_timeout_s": 0.5, "health_check_interval_s": 30.0}
    with runtime_with(settings.model_copy(update={"redis": settings.redis.model_copy(update=timeouts)}), clock,
                      redis_url=own_redis.url) as rt:
        client = create_app(runtime=rt).test_client()
        member = sign_in(client, emulator, "o-frozen")
        assert own_redis.pid is not None
        os.kill(own_redis.pid, signal.SIGSTOP)
        try:
            caplog.set_level(logging.INFO)
            for _ in range(3):
                started = time.monotonic()
                assert_refused(client.get("/api/v1/me", headers=member["headers"]), "service.redis_unavailable")
                # One timeout, not retried (nor three retries of 5-10 s each as before).
                assert time.monotonic() - started < 2.0
        finally:
            os.kill(own_redis.pid, signal.SIGCONT)
        assert len(outage_warnings(caplog)) == 1
        assert unhandled(caplog) == []
        # Back: the same client answers again.
        assert client.get("/api/v1/me", headers=member["headers"]).status_code == 200


@SQLITE
def test_redis_restarted_costs_no_request(settings, clock, emulator, own_redis):
    with runtime_with(settings, clock, redis_url=own_redis.url) as rt:
        client = create_app(runtime=rt).test_client()
        member = sign_in(client, emulator, "o-restart")
        own_redis.stop()
        own_redis.start()  # same port, empty: the token is gone, so 401 -- but not 503 nor 500
        response = client.get("/api/v1/me", headers=member["headers"])
        assert response.status_code == 401, response.get_json()


# --- the database ----------------------------------------------------------------------------------

@SQLITE
def test_database_host_not_there_answers_503_and_warns_once(settings, clock, redis_client, caplog):
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/mallapp"
    with runtime_with(settings, clock, database_url=closed) as rt:
        client = create_app(runtime=rt).test_client()
        token = auth.issue_token(rt.redis, 1, 600)
        caplog.set_level(logging.INFO)
        for _ in range(REQUESTS):
            assert_refused(client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}),
                           "service.database_unavailable")
        assert len(outage_warnings(caplog)) == 1
        assert unhandled(caplog) == []


@SQLITE
def test_database_connect_timeout_is_set_from_the_settings(settings, clock):
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    with runtime_with(settings, clock, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x") as rt:
        given: dict[str, Any] = {}
        event.listen(rt.engine, "do_connect", lambda _dialect, _record, _args, params: given.update(params))
        with pytest.raises(OperationalError):
            rt.engine.connect()
        assert given["connect_timeout"] == settings.database.connect_timeout_s == 5


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@SQLITE
def test_database_stopped_answers_503_not_500(settings, clock, emulator, own_postgres, caplog):
    url = own_postgres.create_database("outage")
    upgrade(url)
    with runtime_with(settings, clock, database_url=url) as rt:
        client = create_app(runtime=rt).test_client()
        member = sign_in(client, emulator, "o-pg")
        assert client.get("/api/v1/me", headers=member["headers"]).status_code == 200  # a pooled connection
        own_postgres.stop()
        caplog.set_level(logging.INFO)
        # The pooled connection is dead (SQLAlchemy invalidates the pool), then no new one can be made.
        for _ in range(5):
            assert_refused(client.get("/api/v1/me", headers=member["headers"]), "service.database_unavailable")
        assert len(outage_warnings(caplog)) == 1
        assert unhandled(caplog) == []


# --- the live channel ------------------------------------------------------------------------------

def _wait_online(redis: Redis, member_id: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while member_id not in online(redis, [member_id]):
        assert time.monotonic() < deadline, f"member {member_id} was not subscribed again"
        time.sleep(0.02)


@SQLITE
def test_live_socket_survives_a_redis_restart(settings, clock, emulator, own_redis, start_live_server, caplog):
    caplog.set_level(logging.INFO, logger="mallapp.live")
    with runtime_with(settings, clock, redis_url=own_redis.url) as rt:
        client = create_app(runtime=rt).test_client()
        member = sign_in(client, emulator, "o-live")
        member_id = member["member"]["id"]
        live = start_live_server(redis_url=own_redis.url)
        with live.connect(member) as ws:
            _wait_online(rt.redis, member_id)
            own_redis.stop()
            time.sleep(0.3)  # the subscriber notices and starts reconnecting
            own_redis.start()  # same port; messages published meanwhile went nowhere (they are in the inbox)
            _wait_online(rt.redis, member_id)
            assert rt.redis.publish(channel(member_id), frame("notification", title="after the restart")) == 1
            assert json.loads(ws.recv(timeout=5)) == {"type": "notification", "title": "after the restart"}
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        assert live.thread.is_alive()
        assert live.server.reconnects == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "mallapp.live" and r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # lost once, back once: not one line per attempt
    assert warnings[0].startswith("lost Redis") and warnings[1].startswith("Redis is back")


@SQLITE
def test_live_handshake_while_redis_is_down_is_503(settings, clock, emulator, own_redis, start_live_server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with runtime_with(settings, clock, redis_url=own_redis.url) as rt:
        client = create_app(runtime=rt).test_client()
        member = sign_in(client, emulator, "o-live-down")
        live = start_live_server(redis_url=own_redis.url)
        own_redis.stop()
        with pytest.raises(InvalidStatus) as refused, connect(live.url, additional_headers=member["headers"],
                                                              open_timeout=5):
            pass
        response = refused.value.response
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "service.redis_unavailable"
        assert response.headers["Retry-After"]
        assert live.thread.is_alive()


# --- blocking reads under the socket timeout -------------------------------------------------------

def test_a_stream_read_blocks_no_longer_than_the_socket_timeout_allows(redis_server):
    """XREADGROUP BLOCK 2000 on a client whose reads time out after 1 s: the wait is cut to fit, not an error."""
    from mallapp.processes.streams import GroupConsumer

    class Reader(GroupConsumer):
        def streams(self) -> list[str]:
            return ["test:outage-stream"]

        def step(self, block_ms: int | None = None) -> int:
            return len(self.read(self.streams(), block_ms))

    client = Redis.from_url(redis_server.url, socket_timeout=1.0)
    try:
        client.delete("test:outage-stream")
        reader = Reader(client, "outage-group", "r1", count=10, block_ms=2000, claim_idle_ms=1000)
        reader.ensure_group()
        started = time.monotonic()
        assert reader.step(2000) == 0
        assert 0.4 < time.monotonic() - started < 1.0
    finally:
        client.delete("test:outage-stream")
        client.close()
