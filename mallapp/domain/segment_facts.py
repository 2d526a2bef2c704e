"""The segmentation's reads and bulk writes: a few set-based statements, whatever the number of members.

Reads come back as numpy columns. Purchases are read once, grouped by member and mall-local day in
SQL (``GROUP BY``); the mall-local day is computed by the database (PostgreSQL: ``AT TIME ZONE``;
SQLite: a Python function registered on the connection). Day numbers count days since 1970-01-01.
Bulk writes use ``COPY`` on PostgreSQL and ``executemany`` on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from psycopg import ClientCursor
from sqlalchemy import text
from sqlalchemy.orm import Session

from mallapp.domain.privacy import TOMBSTONE

EPOCH_DAY = date(1970, 1, 1).toordinal()


def day_number(day: date) -> int:
    return day.toordinal() - EPOCH_DAY


def from_day_number(n: int) -> date:
    return date.fromordinal(int(n) + EPOCH_DAY)


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _sqlite_functions(session: Session, tz: str) -> None:
    """Register seg_day(timestamp) and seg_epoch(timestamp) on this SQLite connection."""
    zone = ZoneInfo(tz)

    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def seg_day(value: str | None) -> int | None:
        return None if value is None else parse(value).astimezone(zone).date().toordinal() - EPOCH_DAY

    def seg_epoch(value: str | None) -> int | None:
        return None if value is None else int(parse(value).timestamp())

    raw = session.connection().connection.dbapi_connection
    raw.create_function("seg_day", 1, seg_day, deterministic=True)
    raw.create_function("seg_epoch", 1, seg_epoch, deterministic=True)


def fixed_offset_s(tz: str, years: int = 30) -> int | None:
    """The zone's UTC offset in seconds if it has not changed in ``years`` years (e.g. Asia/Shanghai), else None."""
    zone = ZoneInfo(tz)
    now = datetime.now(UTC)
    offsets = {int(zone.utcoffset(datetime(now.year - k, month, 15)).total_seconds())  # type: ignore[union-attr]
               for k in range(years) for month in (1, 4, 7, 10)}
    return offsets.pop() if len(offsets) == 1 else None


def _day(session: Session, column: str, tz: str) -> str:
    if _is_pg(session):
        offset = fixed_offset_s(tz)
        if offset is not None:  # a shifted timestamp cast to date: cheaper than two time zone conversions a row
            return f"(({column}) + INTERVAL '{offset} seconds')::date - DATE '1970-01-01'"
        return f"((({column}) AT TIME ZONE 'UTC') AT TIME ZONE :tz)::date - DATE '1970-01-01'"
    return f"seg_day({column})"


def _epoch(session: Session, column: str) -> str:
    if _is_pg(session):
        return f"CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT)"
    return f"seg_epoch({column})"


def _date_column(session: Session, column: str) -> str:
    if _is_pg(session):
        return f"({column} - DATE '1970-01-01')"
    return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"


_PARAM = re.compile(r"(?<!:):([a-z_]+)")


# Binary COPY: element types of the arrays PostgreSQL sends, by type OID.
_PG_TYPES = {20: ">i8", 21: ">i2", 23: ">i4", 1082: ">i4", 1114: ">i8", 1184: ">i8"}
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _parse_binary_arrays(data: bytes, n_cols: int) -> list[np.ndarray]:
    """The columns of a binary COPY whose rows are ``n_cols`` one-dimensional arrays without NULLs, concatenated."""
    if not data.startswith(_COPY_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    pos = len(_COPY_SIGNATURE) + 4
    pos += 4 + int.from_bytes(data[pos:pos + 4], "big")
    parts: list[list[np.ndarray]] = [[] for _ in range(n_cols)]
    while True:
        fields = int.from_bytes(data[pos:pos + 2], "big", signed=True)
        pos += 2
        if fields == -1:
            break
        for col in range(fields):
            length = int.from_bytes(data[pos:pos + 4], "big", signed=True)
            pos += 4
            ndim = int.from_bytes(data[pos:pos + 4], "big")
            if ndim:
                oid = int.from_bytes(data[pos + 8:pos + 12], "big")
                count = int.from_bytes(data[pos + 12:pos + 16], "big")
                kind = _PG_TYPES[oid]
                items = np.frombuffer(data, dtype=np.dtype([("len", ">i4"), ("v", kind)]), count=count,
                                      offset=pos + 20)
                if (items["len"] != np.dtype(kind).itemsize).any():
                    raise ValueError("a NULL in a segmentation read")
                parts[col].append(items["v"].astype(np.int64))
            pos += length
    return [np.concatenate(p) if p else np.zeros(0, dtype=np.int64) for p in parts]


def _columns(session: Session, sql: str, params: dict[str, Any], dtypes: Sequence[Any]) -> list[np.ndarray]:
    """Run ``sql`` and return its columns as numpy arrays of integers (NULLs must not occur)."""
    if _is_pg(session):
        # libpq hands COPY's output over a row at a time, and a Python step per row costs more than the query:
        # PostgreSQL packs the rows into a few hundred rows of arrays, sent in binary and read by numpy in place.
        names = [f"c{i}" for i in range(len(dtypes))]
        inner = _PARAM.sub(r"%(\1)s", sql)
        packed = (f"SELECT {', '.join(f'array_agg({n})' for n in names)} FROM ({inner}) AS x({', '.join(names)}) "
                  "GROUP BY c0 %% 512")
        raw = session.connection().connection.driver_connection
        query = ClientCursor(raw).mogrify(packed, params)
        with raw.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        return [c.astype(t) for c, t in zip(_parse_binary_arrays(data, len(dtypes)), dtypes, strict=True)]
    rows = session.execute(text(sql), params).all()
    if not rows:
        return [np.zeros(0, dtype=t) for t in dtypes]
    return [np.array([r[i] for r in rows], dtype=t) for i, t in enumerate(dtypes)]


def _params(tz: str, now: datetime, **more: Any) -> dict[str, Any]:
    return {"tz": tz, "end": now.astimezone(UTC).replace(tzinfo=None), **more}


def members(session: Session, tz: str, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """The members to segment (not erased, joined by ``now``), by id: (ids, joined day numbers)."""
    if not _is_pg(session):
        _sqlite_functions(session, tz)
    sql = (f"SELECT m.id, {_day(session, 'm.created_at', tz)} FROM members m "
           "WHERE m.openid NOT LIKE :tomb AND m.created_at <= :end "
           "AND NOT EXISTS (SELECT 1 FROM member_deletions d WHERE d.member_id = m.id) ORDER BY m.id")
    ids, joined = _columns(session, sql, _params(tz, now, tomb=TOMBSTONE + "%"), (np.int64, np.int64))
    order = np.argsort(ids)  # PostgreSQL's packed arrays come in groups, not in id order
    return ids[order], joined[order]


def purchase_days(session: Session, tz: str, now: datetime) -> list[np.ndarray]:
    """One row per member and mall-local day with a purchase not wholly refunded, up to ``now``.

    Columns: member id, day number, net spend (fen), the day's largest net purchase, purchases, the
    first and last purchase instants (epoch seconds). PostgreSQL sends the purchases and numpy groups
    them (a hash aggregate of nearly one group per purchase cost PostgreSQL more); SQLite groups.
    """
    net = "(amount_fen - refunded_fen)"
    where = "WHERE refunded_fen < amount_fen AND occurred_at <= :end"
    if _is_pg(session):
        sql = f"SELECT member_id, {_day(session, 'occurred_at', tz)}, {net}, occurred_at FROM purchases {where}"
        member, day, amount, at = _columns(session, sql, _params(tz, now), (np.int64,) * 4)
        return _by_member_day(member, day, amount, at // 1_000_000 + PG_EPOCH_S)
    _sqlite_functions(session, tz)
    sql = (f"SELECT member_id, {_day(session, 'occurred_at', tz)} AS d, SUM({net}), MAX({net}), COUNT(*), "
           f"{_epoch(session, 'MIN(occurred_at)')}, {_epoch(session, 'MAX(occurred_at)')} "
           f"FROM purchases {where} GROUP BY member_id, d")
    return _columns(session, sql, _params(tz, now), (np.int64,) * 7)


# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
PG_EPOCH_S = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())


def _by_member_day(member: np.ndarray, day: np.ndarray, amount: np.ndarray, at: np.ndarray) -> list[np.ndarray]:
    """Purchases grouped by (member, day): member, day, spend, largest, count, first and last instant."""
    if len(member) == 0:
        return [np.zeros(0, dtype=np.int64)] * 7
    low = int(day.min())
    key = member * (1 << 24) + (day - low)
    order = np.argsort(key, kind="stable")
    key, amount, at = key[order], amount[order], at[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    counts = np.diff(np.append(starts, len(key)))
    k = key[starts]
    return [k >> 24, (k & ((1 << 24) - 1)) + low, np.add.reduceat(amount, starts), np.maximum.reduceat(amount, starts),
            counts, np.minimum.reduceat(at, starts), np.maximum.reduceat(at, starts)]


def visit_days(session: Session, tz: str, now: datetime, start: date, start_at: datetime,
               sources: Iterable[str]) -> list[np.ndarray]:
    """(member id, day number) of every mall-local day from ``start`` with a check-in or a mall visit, per ``sources``.

    Purchase days are added by the caller (they are read already); duplicates are left to the caller.
    """
    if not _is_pg(session):
        _sqlite_functions(session, tz)
    parts = []
    if "checkin" in sources:
        parts.append(f"SELECT member_id, {_date_column(session, 'day')} FROM checkins WHERE day >= :start")
    if "mall_visit" in sources:
        parts.append(f"SELECT member_id, {_day(session, 'entered_at', tz)} FROM mall_visits "
                     "WHERE entered_at <= :end AND entered_at >= :start_at")
    if not parts:
        return [np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)]
    sql = " UNION ALL ".join(parts)
    return _columns(session, sql, _params(tz, now, start=start, start_at=start_at.astimezone(UTC).replace(tzinfo=None)), (np.int64, np.int64))


def previous_tiers(session: Session, month: date) -> tuple[np.ndarray, np.ndarray]:
    """(member ids, T-tier index) of the snapshots of ``month`` that have a T-tier."""
    rows = session.execute(text("SELECT member_id, t_tier FROM member_snapshots WHERE month = :month "
                                "AND t_tier IS NOT NULL"), {"month": month}).all()
    return (np.array([r[0] for r in rows], dtype=np.int64),
            np.array([int(r[1][1]) - 1 for r in rows], dtype=np.int8))


def prior_states(session: Session, today: date, states: Sequence[str]) -> list[np.ndarray]:
    """Each member's latest lifecycle transition before ``today``: member ids, state (index in ``states``),
    day number and when it was recorded (epoch seconds)."""
    if not _is_pg(session):
        _sqlite_functions(session, "UTC")
    code = "CASE to_state " + " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(states)) + " END"
    sql = (f"SELECT member_id, {code}, {_date_column(session, 'day')}, {_epoch(session, 'created_at')} "
           "FROM (SELECT member_id, to_state, day, created_at, "
           "ROW_NUMBER() OVER (PARTITION BY member_id ORDER BY day DESC, id DESC) AS n "
           "FROM lifecycle_transitions WHERE day < :today) t WHERE n = 1")
    return _columns(session, sql, {"today": today}, (np.int64,) * 4)


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert ``rows`` into ``table`` in bulk: COPY on PostgreSQL, executemany on SQLite."""
    count = 0
    if _is_pg(session):
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    raw = session.connection().connection.dbapi_connection
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 5000:
            raw.executemany(sql, batch)
            count += len(batch)
            batch = []
    if batch:
        raw.executemany(sql, batch)
        count += len(batch)
    return count


def set_tiers(session: Session, changes: list[tuple[int, str | None]]) -> None:
    """Set members.tier for each (member id, tier) in bulk."""
    if not changes:
        return
    if _is_pg(session):
        session.execute(text("CREATE TEMPORARY TABLE seg_tiers (id integer PRIMARY KEY, tier varchar(16)) "
                             "ON COMMIT DROP"))
        copy_rows(session, "seg_tiers", ("id", "tier"), changes)
        session.execute(text("UPDATE members m SET tier = t.tier FROM seg_tiers t WHERE m.id = t.id"))
        session.execute(text("DROP TABLE seg_tiers"))
        return
    raw = session.connection().connection.dbapi_connection
    raw.executemany("UPDATE members SET tier = ? WHERE id = ?", [(tier, mid) for mid, tier in changes])


def current_tiers(session: Session) -> dict[int, str | None]:
    return dict(session.execute(text("SELECT id, tier FROM members WHERE tier IS NOT NULL")).all())  # type: ignore[arg-type]
