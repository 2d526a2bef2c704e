"""The throwaway servers of mallapp.devtools.servers are the real thing, not fakes."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import psycopg
import pytest
import redis
import sqlalchemy as sa
from psycopg import errors

from mallapp.devtools.servers import PostgresServer, RedisServer, find_pg_bindir, free_port


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(unix_socket=True) as server:
        yield server


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.flushdb()
    client.close()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- Redis


def test_redis_answers_ping_and_info(r: redis.Redis, redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert r.ping() is True
    info = r.info("server")
    assert info["redis_version"].split(".")[0].isdigit()
    assert info["tcp_port"] == redis_server.port
    # No persistence: nothing is written behind the tests' back.
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly") == {"appendonly": "no"}


def test_redis_streams_with_consumer_groups(r: redis.Redis) -> None:
    first = r.xadd("orders", {"order": "1", "amount_fen": "1200"})
    r.xadd("orders", {"order": "2", "amount_fen": "800"})
    r.xgroup_create("orders", "points", id="0")
    got = r.xreadgroup("points", "worker-1", {"orders": ">"}, count=1)
    assert got == [["orders", [(first, {"order": "1", "amount_fen": "1200"})]]]
    # The second entry goes to the next reader of the group, the first stays pending until acked.
    got2 = r.xreadgroup("points", "worker-2", {"orders": ">"})
    assert [fields["order"] for _id, fields in got2[0][1]] == ["2"]
    assert r.xpending("orders", "points")["pending"] == 2
    assert r.xack("orders", "points", first) == 1
    assert r.xpending("orders", "points")["pending"] == 1


def test_redis_unix_socket(redis_server: RedisServer) -> None:
    assert redis_server.socket_path is not None
    client = redis.Redis(unix_socket_path=str(redis_server.socket_path))
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_redis_stop_removes_everything() -> None:
    server = RedisServer().start()
    port, tmpdir = server.port, server.tmpdir
    assert port is not None and tmpdir is not None
    assert _port_open(port) and tmpdir.is_dir()
    server.stop()
    server.stop()  # idempotent
    assert not server.running
    assert not tmpdir.exists()
    assert not _port_open(port)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_is_real(pg_server: PostgresServer) -> None:
    assert pg_server.bindir == find_pg_bindir()
    assert pg_server.url() == f"postgresql+psycopg://postgres@127.0.0.1:{pg_server.port}/postgres"
    with pg_server.connect() as conn:
        version, encoding, fsync, max_conn = conn.execute(
            "SELECT version(), current_setting('server_encoding'), current_setting('fsync'),"
            " current_setting('max_connections')"
        ).fetchone()
    assert "PostgreSQL" in version
    assert (encoding, fsync, max_conn) == ("UTF8", "off", "200")


@pytest.mark.postgres
def test_postgres_server_does_not_run_as_root(pg_server: PostgresServer) -> None:
    assert pg_server.pid is not None
    real_uid = os.stat(f"/proc/{pg_server.pid}").st_uid
    assert real_uid != 0
    if os.geteuid() != 0:
        assert real_uid == os.geteuid()


@pytest.mark.postgres
def test_create_database_and_sqlalchemy_url(pg_server: PostgresServer) -> None:
    url = pg_server.create_database("mall_servers_test")
    assert url == pg_server.url("mall_servers_test")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == "mall_servers_test"
    finally:
        engine.dispose()
    pg_server.drop_database("mall_servers_test")
    with pg_server.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'mall_servers_test'"
        ).fetchone() == (0,)


@pytest.mark.postgres
def test_two_connections_see_each_others_commits(pg_server: PostgresServer) -> None:
    with pg_server.connect() as setup:
        setup.execute("DROP TABLE IF EXISTS visibility; CREATE TABLE visibility (id int PRIMARY KEY, v text)")
    with pg_server.connect(autocommit=False) as a, pg_server.connect(autocommit=False) as b:
        a.execute("INSERT INTO visibility VALUES (1, 'from a')")
        assert b.execute("SELECT count(*) FROM visibility").fetchone() == (0,)  # not committed yet
        b.rollback()
        a.commit()
        assert b.execute("SELECT v FROM visibility WHERE id = 1").fetchone() == ("from a",)
        b.execute("INSERT INTO visibility VALUES (2, 'from b')")
        b.commit()
        assert a.execute("SELECT v FROM visibility ORDER BY id").fetchall() == [("from a",), ("from b",)]
        a.commit()


@pytest.mark.postgres
def test_select_for_update_blocks_a_second_transaction(pg_server: PostgresServer) -> None:
    with pg_server.connect() as setup:
        setup.execute(
            "DROP TABLE IF EXISTS wallet; CREATE TABLE wallet (id int PRIMARY KEY, points int NOT NULL);"
            "INSERT INTO wallet VALUES (1, 100)"
        )
    with pg_server.connect(autocommit=False) as a, pg_server.connect(autocommit=False) as b:
        assert a.execute("SELECT points FROM wallet WHERE id = 1 FOR UPDATE").fetchone() == (100,)
        b.execute("SET lock_timeout = '200ms'")
        with pytest.raises(errors.LockNotAvailable):
            b.execute("SELECT points FROM wallet WHERE id = 1 FOR UPDATE")
        b.rollback()
        # A plain read is not blocked, and sees the last committed value.
        assert b.execute("SELECT points FROM wallet WHERE id = 1").fetchone() == (100,)
        b.rollback()
        a.execute("UPDATE wallet SET points = points - 30 WHERE id = 1")
        a.commit()
        b.execute("SET lock_timeout = '200ms'")
        assert b.execute("SELECT points FROM wallet WHERE id = 1 FOR UPDATE").fetchone() == (70,)
        b.commit()


@pytest.mark.postgres
def test_libpq_tools_env(pg_server: PostgresServer) -> None:
    assert pg_server.bindir is not None
    assert (pg_server.bindir / "pgbench").exists()
    env = pg_server.psql_env()
    assert env["PGPORT"] == str(pg_server.port)
    assert env["PATH"].split(os.pathsep)[0] == str(pg_server.bindir)
    with psycopg.connect(pg_server.dsn(), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


@pytest.mark.postgres
def test_postgres_stop_removes_everything() -> None:
    server = PostgresServer().start()
    port, tmpdir = server.port, server.tmpdir
    assert port is not None and tmpdir is not None
    assert _port_open(port)
    server.stop()
    server.stop()  # idempotent
    assert not server.running
    assert not tmpdir.exists()
    assert not _port_open(port)
