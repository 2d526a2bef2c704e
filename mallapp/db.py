"""Database plumbing: the declarative base, a UTC datetime type, and engine construction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    MetaData,
    Table,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from mallapp.errors import NotFound

# Stable constraint names, so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, hand back aware UTC: SQLite keeps no zone, PostgreSQL's would vary."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Ids are 32-bit integer columns (64-bit where BigId): a larger number cannot name a row, and PostgreSQL
# would refuse it as a parameter rather than find nothing.
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1

M = TypeVar("M", bound=Base)


def id_in_range(row_id: int, *, big: bool = False) -> bool:
    """Whether ``row_id`` can name a row: positive and within the id column's integer type."""
    return 0 < row_id <= (MAX_BIG_ID if big else MAX_ID)


def get_or_404(session: Session, model: type[M], row_id: int, *, code: str, what: str | None = None,
               message: str | None = None, lock: bool = False, accept: Callable[[M], bool] | None = None) -> M:
    """The ``model`` row with this id, or NotFound(``code``).

    ``lock`` selects it ``FOR UPDATE`` (and overwrites any stale copy the session kept, the lock being held
    now); otherwise the session's copy serves. A row that ``accept`` refuses (another merchant's, an inactive
    one) is not found either. The message is ``message``, else "no <what> with id <id>" (``what`` defaults to
    the table's name). mallapp.api.error_index reads ``code=`` here as NotFound's: give it as a literal.
    """
    big = isinstance(model.__table__.primary_key.columns[0].type, BigInteger)  # type: ignore[attr-defined]
    row: M | None = None
    if id_in_range(row_id, big=big):
        if lock:
            row = session.scalar(select(model).where(model.id == row_id)  # type: ignore[attr-defined]
                                 .with_for_update().execution_options(populate_existing=True))
        else:
            row = session.get(model, row_id)
    if row is None or (accept is not None and not accept(row)):
        raise NotFound(message or f"no {what or model.__tablename__} with id {row_id}", code=code)
    return row


def make_engine(url: str, *, connect_timeout_s: int | None = None, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-ahead locking; PostgreSQL a connect
    timeout when given (``[database] connect_timeout_s``), so a dead host fails fast."""
    # A database error's text would carry the statement's parameters (phone numbers, codes, tokens)
    # into the logs: SQLAlchemy leaves them out of exceptions and echo with hide_parameters.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _serialize_sqlite_writers(engine)
        return engine
    if "poolclass" not in kwargs:  # NullPool (migrations) takes no pool sizes
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    # No ping before every checkout (a round trip per request): a dropped connection fails one
    # request, and SQLAlchemy then recycles the whole pool; idle connections are renewed hourly.
    kwargs.setdefault("pool_recycle", 3600)
    if connect_timeout_s is not None:
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


def _serialize_sqlite_writers(engine: Engine) -> None:
    # pysqlite's own transaction handling starts transactions late and breaks SAVEPOINT; take it
    # over (as SQLAlchemy's docs describe) and begin every transaction IMMEDIATE, so two writers
    # queue on the lock instead of failing with "database is locked" when one upgrades.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_or_nothing(session: Session, model: type[Base], values: dict[str, Any],
                      conflict_on: list[str], where: str | None = None) -> int | None:
    """Insert a row unless one with the same ``conflict_on`` key exists; return its new id, or None.

    One statement instead of SAVEPOINT/INSERT/RELEASE: on PostgreSQL a concurrent insert of the
    same key waits for the other transaction and then does nothing, so exactly one wins. ``where``
    names a partial unique index's condition (``"cleared_at IS NULL"``).
    """
    stmt = _insert_or_nothing(session.get_bind().dialect.name, model.__table__, tuple(conflict_on), where)
    return session.execute(stmt, values).scalar()


@functools.cache
def _insert_or_nothing(dialect: str, table: Table, conflict_on: tuple[str, ...], where: str | None) -> Any:
    # Built once per table: SQLAlchemy memoizes a statement's cache key, not a fresh one's.
    insert = _dialect_insert(dialect)
    return (insert(table).on_conflict_do_nothing(index_elements=list(conflict_on),
                                                 index_where=None if where is None else text(where))
            .returning(table.c.id))


def _dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two engines mallapp supports
        raise RuntimeError(f"unsupported database {dialect}")
    return insert


def insert_many_or_nothing(session: Session, model: type[Base], rows: list[dict[str, Any]],
                           conflict_on: list[str] | None, returning: tuple[str, ...]) -> list[Any]:
    """Insert the rows in one statement (skipping those whose ``conflict_on`` key exists, when given).

    Every row names the same columns. Returns the ``returning`` columns of the rows inserted; with
    conflicts skipped, match them by key.
    """
    if not rows:
        return []
    table = model.__table__
    dialect = session.get_bind().dialect.name
    insert = _dialect_insert(dialect)
    names = list(rows[0])
    if dialect == "postgresql":
        # One array parameter per column, unnested by the server: the statement's text stays short
        # whatever the batch, where a VALUES list of thousands of parameters costs the driver more
        # to rewrite than the server to run. Functions in a select list are zipped row by row.
        from sqlalchemy.dialects.postgresql import ARRAY

        arrays = [func.unnest(cast(bindparam(f"col_{name}", [row[name] for row in rows],
                                             type_=ARRAY(table.c[name].type)), ARRAY(table.c[name].type)))
                  for name in names]
        stmt = insert(table).from_select(names, select(*arrays))
        params: Any = None
    else:
        stmt, params = insert(table), rows
    if conflict_on:
        stmt = stmt.on_conflict_do_nothing(index_elements=conflict_on)
    returning_stmt = stmt.returning(*(table.c[name] for name in returning))
    return list(session.execute(returning_stmt) if params is None else session.execute(returning_stmt, params))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads that need no snapshot across their statements (a quote, re-checked under a
    lock before anything is written): on PostgreSQL its connection is in autocommit, so no BEGIN and
    COMMIT round trips surround them; on SQLite, where the reads are in-process, an ordinary transaction.
    Never write through it: on PostgreSQL each statement would commit on its own."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        with sessions.begin() as session:
            yield session
        return
    with (engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
          Session(bind=connection, expire_on_commit=False) as session):
        yield session
