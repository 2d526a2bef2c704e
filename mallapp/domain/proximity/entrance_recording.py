"""Labelled recordings of tags inside, in the vestibule and outside a building: the CSV format (docs/presence.md).

::

    tag,label,timestamp_ms,rssi_<receiver>,rssi_<receiver>,...
    t01,inside,1700000000000,-71,,-88
    t01,inside,1700000001000,-69,100,-90

One column per receiver (a fixed receiver, such as a gateway, hearing a person's tag); one row per
reading time of a tag; ``label`` is ``inside``, ``vestibule`` or ``outside``; ``timestamp_ms`` an
integer (milliseconds, any epoch). A cell holds the RSSI in whole dBm (-127..-1), or says "not heard":
empty, ``100`` (UJI's convention), ``-200`` (UCI's) or ``0``. Anything else is an error naming the line.

A *run* is what the evaluation scores: the rows of one tag id, in file order, with the same label and
no other label of that tag between them (a tag id may be reused at another place: a new label starts a
new run, and so does the same label after another). A run's rows are replayed in time order.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LABELS = ("inside", "vestibule", "outside")
NOT_HEARD = frozenset({100, -200, 0})
_RECEIVER = re.compile(r"^rssi_([A-Za-z0-9_.:\-]+)$")


class RecordingError(ValueError):
    """A labelled recording that does not follow the format; the message names the file and line."""


@dataclass
class Run:
    """One tag standing at one labelled place: its rows in time order, each (ms, ((receiver index, rssi), ...))."""

    key: str  # "<tag>#<n>": the tag's n-th run in the file (from 1)
    tag: str
    label: str
    source: str  # the file it came from (the outer folds' unit when there are several files)
    rows: list[tuple[int, tuple[tuple[int, int], ...]]] = field(default_factory=list)


@dataclass
class Recording:
    receivers: list[str]
    runs: list[Run]


def parse(lines: Iterable[str], source: str = "<recording>") -> Recording:
    """Parse a labelled recording strictly; RecordingError on the first problem."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise RecordingError(f"{source}: empty file, expected the header tag,label,timestamp_ms,rssi_<receiver>...") \
            from None
    header = [h.strip() for h in header]
    if header[:3] != ["tag", "label", "timestamp_ms"]:
        raise RecordingError(f"{source}:1: the header must start with tag,label,timestamp_ms (got {','.join(header[:3])})")
    receivers = []
    for column in header[3:]:
        m = _RECEIVER.match(column)
        if m is None:
            raise RecordingError(f"{source}:1: column {column!r} is not rssi_<receiver> (letters, digits, _ . : -)")
        if m.group(1) in receivers:
            raise RecordingError(f"{source}:1: receiver {m.group(1)!r} appears twice")
        receivers.append(m.group(1))
    if not receivers:
        raise RecordingError(f"{source}:1: no receiver columns (rssi_<receiver>)")
    width = len(header)
    runs: list[Run] = []
    current: dict[str, Run] = {}  # tag -> its open run
    counts: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != width:
            raise RecordingError(f"{source}:{line}: {len(row)} fields, the header has {width}")
        tag, label, stamp = row[0].strip(), row[1].strip(), row[2].strip()
        if not tag:
            raise RecordingError(f"{source}:{line}: empty tag")
        if label not in LABELS:
            raise RecordingError(f"{source}:{line}: label {label!r} is not one of {', '.join(LABELS)}")
        try:
            ms = int(stamp)
        except ValueError:
            raise RecordingError(f"{source}:{line}: timestamp_ms {stamp!r} is not an integer") from None
        if ms < 0:
            raise RecordingError(f"{source}:{line}: timestamp_ms {ms} is negative")
        heard = []
        for k, cell in enumerate(row[3:]):
            cell = cell.strip()
            if not cell:
                continue
            try:
                value = int(cell)
            except ValueError:
                raise RecordingError(f"{source}:{line}: rssi_{receivers[k]} {cell!r} is not a whole number of dBm") \
                    from None
            if value in NOT_HEARD:
                continue
            if not -127 <= value <= -1:
                raise RecordingError(f"{source}:{line}: rssi_{receivers[k]} {value} is not an RSSI (-127..-1 dBm; "
                                     f"empty, 100, -200 or 0 for not heard)")
            heard.append((k, value))
        run = current.get(tag)
        if run is None or run.label != label:
            counts[tag] = counts.get(tag, 0) + 1
            run = current[tag] = Run(f"{tag}#{counts[tag]}", tag, label, source)
            runs.append(run)
        run.rows.append((ms, tuple(heard)))
    for run in runs:
        run.rows.sort(key=lambda r: r[0])  # stable: equal times keep the file's order
    return Recording(receivers, runs)


def load(paths: Sequence[Path | str]) -> Recording:
    """One or more recordings; several must name the same receivers (in any order) or be kept apart by name."""
    receivers: list[str] = []
    runs: list[Run] = []
    for path in paths:
        path = Path(path)
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                rec = parse(fh, str(path))
        except OSError as exc:
            raise RecordingError(f"{path}: {exc.strerror or exc}") from None
        # Receivers of different files are different receivers unless they share a name.
        index = []
        for name in rec.receivers:
            if name not in receivers:
                receivers.append(name)
            index.append(receivers.index(name))
        for run in rec.runs:
            run.rows = [(ms, tuple((index[k], v) for k, v in heard)) for ms, heard in run.rows]
            runs.append(run)
    return Recording(receivers, runs)


def write(path: Path | str, receivers: Sequence[str], rows: Iterable[tuple[str, str, int, Sequence[int | None]]]) -> int:
    """Write a recording: rows of (tag, label, timestamp_ms, rssi per receiver or None); returns the row count."""
    n = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["tag", "label", "timestamp_ms", *(f"rssi_{r}" for r in receivers)])
        for tag, label, ms, values in rows:
            out.writerow([tag, label, ms, *("" if v is None else v for v in values)])
            n += 1
    return n
