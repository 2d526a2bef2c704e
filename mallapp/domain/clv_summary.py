"""Purchases to the per-member summaries the lifetime-value models need (mallapp.domain.clv uses these).

A member's summary, at the end of the calibration period and in a time unit (weeks or days):

- ``frequency`` x: purchase *days* after the first one (same-day purchases are one purchase);
- ``recency`` t_x: the time from the first purchase day to the last one (0 when x is 0);
- ``T``: the time from the first purchase day to the end of calibration (the member's age);
- ``monetary``: the mean amount of the repeat purchase days (each day's amounts summed), 0 when x is 0.

This is how Fader, Hardie and Lee summarise the CDNOW data (and the CDNOW summary files are).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mallapp.errors import InvalidInput

UNIT_DAYS = {"weeks": 7.0, "days": 1.0}
# The header names read_transactions accepts, lower-cased, for each column (first match wins).
ID_HEADERS = ("customer_id", "customer", "member_id", "member", "cust_id", "id")
DATE_HEADERS = ("date", "day", "purchase_date", "purchased_at", "order_date", "timestamp", "datetime")
AMOUNT_HEADERS = ("amount", "amount_fen", "value", "spend", "total", "sales", "price")


@dataclass(frozen=True)
class Summary:
    """One entry per member (numpy arrays in the order of ``ids``)."""

    ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary: np.ndarray


def as_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float array, refusing non-numbers, NaN and infinities."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be numbers", code="clv.input.not_numeric") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional", code="clv.input.shape")
    if not np.all(np.isfinite(array)):
        raise InvalidInput(f"{name} has NaN or infinite values", code="clv.input.non_finite")
    return array


def to_day(value: Any) -> np.datetime64:
    """A date, datetime, numpy datetime64 or string (YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD, an ISO datetime)."""
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]")
    if isinstance(value, dt.datetime):
        return np.datetime64(value.date(), "D")
    if isinstance(value, dt.date):
        return np.datetime64(value, "D")
    text = str(value).strip()
    match = re.fullmatch(r"(\d{4})[-/]?(\d{1,2})[-/]?(\d{1,2})(?:[ T].*)?", text)
    if match:
        try:
            return np.datetime64(dt.date(*(int(g) for g in match.groups())), "D")
        except ValueError:
            pass
    raise InvalidInput(f"not a date: {text[:40]!r} (expected YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD or an ISO "
                       "datetime)", code="clv.input.date")


def summarise(rows: Iterable[tuple[Any, Any, Any]], *, calibration_end: Any = None, observation_end: Any = None,
              unit: str = "weeks") -> Summary:
    """Per-member (frequency, recency, T, monetary) from (customer id, date, amount) rows.

    ``observation_end`` is the last day of data (default: the latest date in ``rows``); purchases after
    it are ignored. ``calibration_end`` (default: ``observation_end``; not after it when both are given)
    is the day the summaries are taken at, ages included: purchases after it are ignored, and members
    who first bought after it are left out.
    Amounts must be finite and >= 0 (an amount of 0 is a purchase that brought nothing).
    """
    if unit not in UNIT_DAYS:
        raise InvalidInput(f"unit must be one of {sorted(UNIT_DAYS)}, not {unit!r}", code="clv.input.unit")
    rows = list(rows)
    if not rows:
        raise InvalidInput("no purchases to summarise", code="clv.input.empty")
    try:
        ids_raw, dates_raw, amounts_raw = zip(*rows, strict=True)
    except (TypeError, ValueError):
        raise InvalidInput("each row must be (customer id, date, amount)", code="clv.input.shape") from None
    amounts = as_array(amounts_raw, "amount")
    if np.any(amounts < 0):
        raise InvalidInput("amounts must be >= 0 (refunds are not purchases)", code="clv.input.amount")
    days = _days(dates_raw)
    last = days.max() if observation_end is None else to_day(observation_end).astype(np.int64)
    end = last if calibration_end is None else to_day(calibration_end).astype(np.int64)
    if observation_end is not None and end > last:
        raise InvalidInput("calibration_end must not be after observation_end", code="clv.input.date")
    keep = days <= end
    if not np.any(keep):
        raise InvalidInput("no purchases on or before the end of calibration", code="clv.input.empty")
    id_values = [str(v) for v in ids_raw] if len({type(v) for v in ids_raw}) > 1 else list(ids_raw)
    ids, customer = np.unique(np.asarray(id_values)[keep], return_inverse=True)
    days, amounts = days[keep], amounts[keep]
    # One entry per (customer, day), amounts summed, ordered by customer then day.
    span = int(days.max() - days.min()) + 1
    key = customer.astype(np.int64) * span + (days - days.min())
    day_keys, day_index = np.unique(key, return_inverse=True)
    day_amounts = np.bincount(day_index, weights=amounts)
    day_customer = day_keys // span
    day_of = day_keys % span + days.min()
    n = ids.size
    count = np.bincount(day_customer, minlength=n)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    first, latest = day_of[starts], day_of[starts + count - 1]
    spent = np.bincount(day_customer, weights=day_amounts, minlength=n) - day_amounts[starts]
    frequency = (count - 1).astype(float)
    step = UNIT_DAYS[unit]
    monetary = np.divide(spent, frequency, out=np.zeros(n), where=frequency > 0)
    return Summary(ids=ids, frequency=frequency, recency=(latest - first) / step, T=(end - first) / step,
                   monetary=np.maximum(monetary, 0.0))


def _days(values: tuple[Any, ...]) -> np.ndarray:
    """Days since the epoch, as int64; numpy days in bulk, anything else one by one."""
    if all(isinstance(v, np.datetime64) for v in values):
        return np.array(values).astype("datetime64[D]").astype(np.int64)
    return np.array([to_day(v) for v in values], dtype="datetime64[D]").astype(np.int64)


def read_transactions(path: str | Path) -> list[tuple[str, np.datetime64, float]]:
    """(customer id, day, amount) rows from a CSV with a header, or from the CDNOW whitespace format.

    CSV: the first line names the columns; the id is the first of ``ID_HEADERS``, the date of
    ``DATE_HEADERS``, the amount of ``AMOUNT_HEADERS`` present (case-insensitive); a comma, semicolon or
    tab separates. CDNOW (``CDNOW_master.txt``, ``CDNOW_sample.txt``): ``id [sample-id] YYYYMMDD
    quantity amount`` separated by spaces, no header. Raises InvalidInput naming the line at fault.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}", code="clv.input.file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text", code="clv.input.file") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidInput(f"{path} is empty", code="clv.input.empty")
    if re.fullmatch(r"\s*\S+(\s+\S+)?\s+\d{8}\s+\S+\s+\S+\s*", lines[0]):
        return _read_cdnow(path, lines)
    return _read_csv(path, lines)


def _read_cdnow(path: Path, lines: list[str]) -> list[tuple[str, np.datetime64, float]]:
    rows = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) not in (4, 5):
            raise InvalidInput(f"{path}:{number}: expected 'id [sample] YYYYMMDD quantity amount'",
                               code="clv.input.file")
        rows.append((fields[0], _day(path, number, fields[-3]), _amount(path, number, fields[-1])))
    return rows


def _read_csv(path: Path, lines: list[str]) -> list[tuple[str, np.datetime64, float]]:
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(lines, dialect)
    header = [h.strip().lower() for h in next(reader)]
    where = {}
    for role, names in (("id", ID_HEADERS), ("date", DATE_HEADERS), ("amount", AMOUNT_HEADERS)):
        found = next((header.index(name) for name in names if name in header), None)
        if found is None:
            raise InvalidInput(f"{path}: no {role} column in the header (one of: {', '.join(names)})",
                               code="clv.input.file")
        where[role] = found
    rows = []
    for number, fields in enumerate(reader, 2):
        if len(fields) != len(header):
            raise InvalidInput(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}",
                               code="clv.input.file")
        rows.append((fields[where["id"]].strip(), _day(path, number, fields[where["date"]]),
                     _amount(path, number, fields[where["amount"]])))
    if not rows:
        raise InvalidInput(f"{path} has a header but no purchases", code="clv.input.empty")
    return rows


def _day(path: Path, number: int, text: str) -> np.datetime64:
    try:
        return to_day(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}:{number}: {exc.message}", code="clv.input.date") from None


def _amount(path: Path, number: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{path}:{number}: not an amount: {text[:40]!r}", code="clv.input.amount") from None
    if not np.isfinite(value) or value < 0:
        raise InvalidInput(f"{path}:{number}: amounts must be finite and >= 0, not {text[:40]!r}",
                           code="clv.input.amount")
    return value
