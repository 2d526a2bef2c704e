"""Which failures are outages (503, mallapp.api.outages), and the log that says so once per interval."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
from psycopg import errors as pg_errors
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

from mallapp.api.outages import classify
from mallapp.logs import Throttled


def _wrapped(cls: type[sa_errors.DBAPIError], orig: Exception, invalidated: bool = False) -> sa_errors.DBAPIError:
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize("exc, code", [
    (redis_errors.ConnectionError("Connection refused"), "service.redis_unavailable"),
    (redis_errors.TimeoutError("Timeout reading from socket"), "service.redis_unavailable"),
    (redis_errors.BusyLoadingError("Redis is loading the dataset in memory"), "service.redis_unavailable"),
    (_wrapped(sa_errors.OperationalError, psycopg.OperationalError("connection refused")),
     "service.database_unavailable"),
    (_wrapped(sa_errors.OperationalError, pg_errors.AdminShutdown("terminating connection")),
     "service.database_unavailable"),
    (_wrapped(sa_errors.OperationalError, pg_errors.CannotConnectNow("the database system is starting up")),
     "service.database_unavailable"),
    (_wrapped(sa_errors.OperationalError, pg_errors.TooManyConnections("too many clients")),
     "service.database_unavailable"),
    (_wrapped(sa_errors.OperationalError, pg_errors.SerializationFailure("x"), invalidated=True),
     "service.database_unavailable"),
    (_wrapped(sa_errors.InterfaceError, psycopg.InterfaceError("the connection is closed")),
     "service.database_unavailable"),
    (sa_errors.DisconnectionError("gone"), "service.database_unavailable"),
    (_wrapped(sa_errors.OperationalError, sqlite3.OperationalError("unable to open database file")),
     "service.database_unavailable"),
])
def test_connection_level_failures_are_503(exc, code):
    error = classify(exc)
    assert error is not None and error.status == 503 and error.code == code
    assert error.details["retry_after_s"] > 0


@pytest.mark.parametrize("exc", [
    # A write lock still held after SQLite's 30 s wait is a stuck transaction: a bug with a traceback.
    _wrapped(sa_errors.OperationalError, sqlite3.OperationalError("database is locked")),
    _wrapped(sa_errors.OperationalError, pg_errors.SerializationFailure("could not serialize access")),
    _wrapped(sa_errors.OperationalError, pg_errors.DeadlockDetected("deadlock detected")),
    _wrapped(sa_errors.OperationalError, pg_errors.QueryCanceled("canceling statement due to statement timeout")),
    redis_errors.ResponseError("WRONGTYPE"),
    ValueError("a bug"),
])
def test_other_failures_are_not_outages(exc):
    assert classify(exc) is None


def test_throttled_says_a_kind_once_per_interval_with_the_count_in_between(caplog):
    now = [0.0]
    throttled = Throttled(logging.getLogger("mallapp.test"), 10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="mallapp.test")
    said = []
    for t in range(25):  # one a second for 25 s, of two kinds
        now[0] = float(t)
        said.append(throttled.warning("redis", "Redis down"))
        throttled.warning("database", "database down")
    assert [i for i, s in enumerate(said) if s] == [0, 10, 20]
    messages = [r.getMessage() for r in caplog.records if r.name == "mallapp.test"]
    assert messages == ["Redis down", "database down",
                        "Redis down (9 more since the last warning)", "database down (9 more since the last warning)",
                        "Redis down (9 more since the last warning)", "database down (9 more since the last warning)"]
    assert caplog.records[2].repeats == 9 and caplog.records[2].kind == "redis"
