"""Outages: while Redis or the database cannot be reached, requests answer 503 with ``Retry-After``.

A connection-level failure is not a bug of ours nor the caller's: the request is refused with a stable
code (``service.redis_unavailable``, ``service.database_unavailable``) that clients may retry on, and
the log says so once per ``LOG_INTERVAL_S`` per kind with a count, instead of a traceback per request.

What counts as connection-level, deliberately:

* Redis: ``redis.exceptions.ConnectionError`` (refused, reset, closed; its subclasses include a server
  still loading its data) and ``TimeoutError`` (a frozen server: the client's socket timeouts,
  ``[redis]`` in the settings, bound the wait).
* The database: SQLAlchemy's ``DisconnectionError``, any error SQLAlchemy found to have invalidated the
  connection, ``InterfaceError`` (the driver's connection itself is unusable), and an
  ``OperationalError`` that is about the connection: from PostgreSQL one with no SQLSTATE (the client
  failed to connect or lost the server) or of class 08 (connection exception), an administrator's or a
  crash's shutdown, a server starting up, too many connections; from SQLite, a database file that
  cannot be opened or read.
* Not an outage: every other ``OperationalError``, among them PostgreSQL's serialization failures,
  deadlocks and cancelled statements, and SQLite's "database is locked". SQLite waits 30 s for its
  write lock (mallapp.db) and every writer queues on it, so a lock still held after that is a
  transaction stuck somewhere: a bug to see with its traceback (500 ``internal``), not a server down.
"""

from __future__ import annotations

import logging

from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

from mallapp.errors import ServiceUnavailable
from mallapp.logs import Throttled

# What Retry-After says: long enough for a restarted Redis or a failed-over database to be back.
RETRY_AFTER_S = 5
LOG_INTERVAL_S = 10.0
# The exception classes the app's handler looks at; classify() decides which of them are outages.
HANDLED: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError, redis_errors.TimeoutError,
    sa_errors.OperationalError, sa_errors.InterfaceError, sa_errors.DisconnectionError,
)
# PostgreSQL SQLSTATEs that mean the server is not there for us (class 08 is tested apart).
_PG_UNAVAILABLE = {"57P01", "57P02", "57P03", "53300"}  # admin / crash shutdown, starting up, too many clients
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error")

log = logging.getLogger("mallapp.outages")


def throttled_log() -> Throttled:
    """The warnings of one app: one per kind per LOG_INTERVAL_S."""
    return Throttled(log, LOG_INTERVAL_S)


def classify(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a failure answers when Redis or the database is unreachable, else None (a bug: 500)."""
    details = {"retry_after_s": RETRY_AFTER_S}
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return ServiceUnavailable("Redis cannot be reached right now; try again shortly.",
                                  code="service.redis_unavailable", details=details)
    if _database_down(exc):
        return ServiceUnavailable("the database cannot be reached right now; try again shortly.",
                                  code="service.database_unavailable", details=details)
    return None


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sa_errors.DisconnectionError | sa_errors.InterfaceError):
        return True
    if not isinstance(exc, sa_errors.OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if type(orig).__module__.startswith("psycopg"):
        state = getattr(orig, "sqlstate", None)
        return state is None or state.startswith("08") or state in _PG_UNAVAILABLE
    if type(orig).__module__ == "sqlite3":
        return str(orig).lower().startswith(_SQLITE_UNAVAILABLE)
    return False
