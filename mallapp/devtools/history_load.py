"""Loading the synthetic history (mallapp.devtools.history): binary COPY on PostgreSQL, executemany on SQLite.

A PostgreSQL binary COPY tuple of fixed-width fields is laid out by a numpy structured array, so a
million rows are encoded without a Python loop per row; text of varying length (the points entries'
keys) goes a row at a time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

_PG_EPOCH = date(2000, 1, 1)
BULK_TABLES = ("purchases", "checkins", "mall_visits")


@dataclass
class Rows:
    """The drawn rows of one chunk of members, numpy arrays by column."""

    members: dict[str, np.ndarray]
    purchases: dict[str, np.ndarray]
    checkins: dict[str, np.ndarray]
    visits: dict[str, np.ndarray]
    entries: dict[str, np.ndarray] | None
    behaviours: dict[str, int]
    day0: date                     # times are whole seconds since this day's 00:00 UTC


def drop_keys(session: Session, tables: tuple[str, ...]) -> list[str]:
    """Drop the tables' foreign keys, unique constraints and secondary indexes; return the statements that
    make them again (read from the catalogue, so they are exactly what the migrations made)."""
    again: list[str] = []
    session.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    for table in tables:
        for name, definition in session.execute(text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('f', 'u') ORDER BY contype DESC, conname"),
                {"t": table}).all():
            session.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
            again.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for name, definition in session.execute(text(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = CAST(:t AS regclass) AND NOT x.indisprimary ORDER BY i.relname"),
                {"t": table}).all():
            session.execute(text(f'DROP INDEX "{name}"'))
            again.append(definition)
    return again


def load(session: Session, rows: Rows) -> None:
    """Write the drawn rows: binary COPY on PostgreSQL, executemany on SQLite."""
    day0 = rows.day0
    base = np.datetime64(datetime.combine(day0, datetime.min.time()), "s")
    m, p, c, v, en = rows.members, rows.purchases, rows.checkins, rows.visits, rows.entries
    n_members = len(m["id"])
    openid = _fixed("synth", m["id"], 10)
    phone = _fixed("+861", (m["id"] * 7_919_111 + 3_000_000_000) % 10_000_000_000, 10)
    nickname = _fixed("会员", m["id"], 8)
    receipt = _fixed("SYN", p["id"], 12)
    c_day = (np.datetime64(day0) + c["day"].astype("timedelta64[D]"))
    accounts_balance = np.zeros(n_members, dtype=np.int64)
    accounts_check = None
    if en is not None and len(en["id"]):
        idx = en["member_id"] - m["id"][0]
        np.add.at(accounts_balance, idx, en["delta"])
        if (en["expires_at"] >= 0).any():
            check = np.full(n_members, np.iinfo(np.int64).max)
            np.minimum.at(check, idx, en["expires_at"])
            accounts_check = np.where(check == np.iinfo(np.int64).max, -1, check)
    tables: list[tuple[str, list[tuple[str, str, Any]]]] = [
        ("members", [("id", "int4", m["id"]), ("openid", "bytes", openid), ("unionid", "null", None),
                     ("nickname", "bytes", nickname), ("gender", "bytes", _const(b"unknown", n_members)),
                     ("birthday", "null", None), ("phone", "bytes", phone), ("referral_code", "bytes", m["referral"]),
                     ("referred_by_id", "null", None), ("tier", "null", None),
                     ("created_at", "ts", m["created_at"])]),
        ("points_accounts", [("member_id", "int4", m["id"]), ("balance", "int8", accounts_balance),
                             ("debt", "int8", np.zeros(n_members, np.int64)),
                             ("expiry_check_at", "null", None) if accounts_check is None
                             else ("expiry_check_at", "ts?", accounts_check)]),
        ("purchases", [("id", "int8", p["id"]), ("merchant_id", "int4", p["merchant_id"]),
                       ("receipt_no", "bytes", receipt), ("member_id", "int4", p["member_id"]),
                       ("amount_fen", "int8", p["amount_fen"]), ("refunded_fen", "int8", np.zeros_like(p["id"])),
                       ("points_earned", "int4", p["points_earned"]), ("birthday_bonus", "int4", np.zeros_like(p["id"])),
                       ("points_reversed", "int4", np.zeros_like(p["id"])), ("occurred_at", "ts", p["occurred_at"]),
                       ("created_at", "ts", p["occurred_at"])]),
        ("checkins", [("id", "int4", c["id"]), ("member_id", "int4", c["member_id"]), ("day", "date", c_day),
                      ("streak", "int4", c["streak"]), ("points", "int4", c["points"]),
                      ("method", "bytes", _const(b"app", len(c["id"]))), ("created_at", "ts", c["created_at"])]),
        ("mall_visits", [("id", "int8", v["id"]), ("member_id", "int4", v["member_id"]),
                         ("entered_at", "ts", v["entered_at"]), ("exited_at", "ts", v["exited_at"]),
                         ("dwell_seconds", "int4", v["dwell_seconds"])]),
    ]
    if en is not None:
        pid, cid = p["id"], c["id"]
        src = np.where(en["is_purchase"], pid[np.where(en["is_purchase"], en["source"], 0)],
                       cid[np.where(en["is_purchase"], 0, en["source"])] if len(cid) else 0)
        pm = p["merchant_id"][np.where(en["is_purchase"], en["source"], 0)]
        cday = c_day[np.where(en["is_purchase"], 0, en["source"])] if len(cid) else None
        refs, keys = [], []
        for i in range(len(en["id"])):
            if en["is_purchase"][i]:
                refs.append(f"purchase:{src[i]}")
                keys.append(f"purchase:{pm[i]}:SYN{src[i]:012d}")
            else:
                refs.append(f"checkin:{src[i]}")
                keys.append(f"checkin:{en['member_id'][i]}:{cday[i]}")  # type: ignore[index]
        reason = np.where(en["is_purchase"], "purchase", "checkin")
        tables.append(("points_entries", [("id", "int8", en["id"]), ("member_id", "int4", en["member_id"]),
                                          ("delta", "int8", en["delta"]), ("balance_after", "int8", en["balance_after"]),
                                          ("reason", "str", reason), ("source_ref", "str", refs),
                                          ("idempotency_key", "str", keys), ("note", "null", None),
                                          ("created_at", "ts", en["created_at"])]))
        tables.append(("points_lots", [("id", "int8", en["lot_id"]), ("member_id", "int4", en["member_id"]),
                                       ("entry_id", "int8", en["id"]), ("amount", "int8", en["delta"]),
                                       ("remaining", "int8", en["delta"]), ("expires_at", "ts?", en["expires_at"])]))
    if session.get_bind().dialect.name == "postgresql":
        _copy_postgres(session, tables, base)
    else:
        _insert_sqlite(session, tables, base)


def _fixed(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + each number zero-padded to ``width`` digits, as fixed-width UTF-8 bytes (vectorised)."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty((len(numbers), len(head) + width), dtype=np.uint8)
    out[:, :len(head)] = head
    v = numbers.astype(np.int64).copy()
    for i in range(width):
        out[:, len(head) + width - 1 - i] = 48 + v % 10
        v //= 10
    return out.view(f"S{len(head) + width}").ravel()


def _const(value: bytes, n: int) -> np.ndarray:
    return np.full(n, value, dtype=f"S{len(value)}")


def _copy_postgres(session: Session, tables: list[tuple[str, list[tuple[str, str, Any]]]], base: np.datetime64) -> None:
    """COPY each table in binary, the tuples laid out by a numpy structured array (no Python loop per row)."""
    pg_epoch_s = int((base - np.datetime64("2000-01-01T00:00:00", "s")).astype(np.int64))
    raw = session.connection().connection.dbapi_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        for name, columns in tables:
            n = len(next(values for _, kind, values in columns if kind != "null"))
            if n == 0:
                continue
            cols = ", ".join(col for col, _, _ in columns)
            with cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT binary)") as copy:
                copy.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00")
                if any(kind == "str" for _, kind, _ in columns):
                    _copy_rows_slow(copy, columns, n, pg_epoch_s)
                else:
                    for start in range(0, n, 1_000_000):
                        copy.write(_binary_tuples(columns, start, min(n, start + 1_000_000), pg_epoch_s))
                copy.write(b"\xff\xff")


def _binary_tuples(columns: list[tuple[str, str, Any]], start: int, stop: int, pg_epoch_s: int) -> bytes:
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, (_, kind, values) in enumerate(columns):
        fields.append((f"l{i}", ">i4"))
        if kind == "int4":
            fields.append((f"v{i}", ">i4"))
        elif kind in ("int8", "ts", "ts?"):
            fields.append((f"v{i}", ">i8"))
        elif kind == "date":
            fields.append((f"v{i}", ">i4"))
        elif kind == "bytes":
            fields.append((f"v{i}", values.dtype.str))
    out = np.zeros(stop - start, dtype=np.dtype(fields))
    out["n"] = len(columns)
    for i, (_, kind, values) in enumerate(columns):
        if kind == "null":
            out[f"l{i}"] = -1
            continue
        part = values[start:stop]
        if kind == "int4" or kind == "int8":
            out[f"l{i}"] = 4 if kind == "int4" else 8
            out[f"v{i}"] = part
        elif kind in ("ts", "ts?"):
            out[f"l{i}"] = 8
            out[f"v{i}"] = (part.astype(np.int64) + pg_epoch_s) * 1_000_000
            if kind == "ts?":
                out[f"l{i}"] = np.where(part < 0, -1, 8)
        elif kind == "date":
            out[f"l{i}"] = 4
            out[f"v{i}"] = (part - np.datetime64(_PG_EPOCH)).astype(np.int64)
        elif kind == "bytes":
            out[f"l{i}"] = values.dtype.itemsize
            out[f"v{i}"] = part
    if any(kind == "ts?" for _, kind, _ in columns):
        # A NULL field has no data: rebuild those tuples without the 8 bytes.
        return _drop_null_payloads(out, columns)
    return out.tobytes()


def _drop_null_payloads(out: np.ndarray, columns: list[tuple[str, str, Any]]) -> bytes:
    nullable = [i for i, (_, kind, _) in enumerate(columns) if kind == "ts?"]
    if not any((out[f"l{i}"] < 0).any() for i in nullable):
        return out.tobytes()
    chunks = []
    width = out.dtype.itemsize
    buf = out.tobytes()
    offsets = {i: out.dtype.fields[f"v{i}"][1] for i in nullable}  # type: ignore[index]
    for r in range(len(out)):
        row = buf[r * width:(r + 1) * width]
        for i in sorted(nullable, reverse=True):
            if out[f"l{i}"][r] < 0:
                row = row[:offsets[i]] + row[offsets[i] + 8:]
        chunks.append(row)
    return b"".join(chunks)


def _copy_rows_slow(copy: Any, columns: list[tuple[str, str, Any]], n: int, pg_epoch_s: int) -> None:
    """Rows with variable-length text (the points entries): encoded a row at a time."""
    for r in range(n):
        parts = [struct.pack(">h", len(columns))]
        for _, kind, values in columns:
            if kind == "null" or (kind == "ts?" and values[r] < 0):
                parts.append(b"\xff\xff\xff\xff")
            elif kind == "int4":
                parts.append(struct.pack(">ii", 4, int(values[r])))
            elif kind == "int8":
                parts.append(struct.pack(">iq", 8, int(values[r])))
            elif kind in ("ts", "ts?"):
                parts.append(struct.pack(">iq", 8, (int(values[r]) + pg_epoch_s) * 1_000_000))
            else:
                data = str(values[r]).encode()
                parts.append(struct.pack(">i", len(data)) + data)
        copy.write(b"".join(parts))


def _insert_sqlite(session: Session, tables: list[tuple[str, list[tuple[str, str, Any]]]], base: np.datetime64) -> None:
    """executemany on the raw connection; datetimes as SQLAlchemy's SQLite text ('YYYY-MM-DD HH:MM:SS.ffffff')."""
    conn = session.connection()
    for name, columns in tables:
        n = len(next(values for _, kind, values in columns if kind != "null"))
        if n == 0:
            continue
        data: list[list[Any]] = []
        for _, kind, values in columns:
            if kind == "null":
                data.append([None] * n)
            elif kind in ("ts", "ts?"):
                stamps = np.datetime_as_string(base + np.asarray(values).astype("timedelta64[s]"), unit="us")
                col = np.char.replace(stamps, "T", " ").tolist()
                if kind == "ts?":
                    col = [None if v < 0 else s for v, s in zip(values, col, strict=True)]
                data.append(col)
            elif kind == "date":
                data.append(np.datetime_as_string(values, unit="D").tolist())
            elif kind == "bytes":
                data.append([b.decode() for b in values.tolist()])
            elif kind == "str":
                data.append([str(x) for x in values])
            else:
                data.append(np.asarray(values).tolist())
        cols = ", ".join(col for col, _, _ in columns)
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {name} ({cols}) VALUES ({marks})", list(zip(*data, strict=True)))
