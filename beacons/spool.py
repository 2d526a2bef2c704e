"""The spool: batches the backend could not take yet, on disk, oldest first, bounded in bytes.

Layout of the directory::

    seg-000000000001.jsonl   append-only segments, one batch per line:
                             {"n":<sightings>,"sightings":[...]}
    seg-000000000002.jsonl   ...
    cursor.json              {"segment": 1, "offset": 12345}: where the oldest unsent batch starts

Writes: each batch is appended whole and fsync'd before :meth:`Spool.append` returns (and the
directory is fsync'd when a segment is created). Appends happen only while the backend is away, at
most one per batch interval, so the cost is one fsync a second on the gateway's flash; in exchange a
batch the forwarder spooled survives a power cut, not only a crash of the process.

Reads: :meth:`peek` gives the oldest batch and :meth:`pop` removes it after the backend answered
for it. The cursor is replaced atomically (write, rename) but not fsync'd: after a power cut it may
point at an older batch, which is then sent again (at least once, never lost). A segment whose
batches are all sent is deleted. A torn last line (a crash in mid-append) is cut off on open.

Bound: when an append would take the segments past ``max_bytes``, whole segments are dropped,
oldest first (their unsent sightings counted in ``dropped_sightings`` and logged), so segments are
kept small (``segment_bytes``, by default a sixteenth of the bound, at most 1 MiB).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

__all__ = ["Spool", "SpoolRecord", "decode_line", "encode_line"]

log = logging.getLogger(__name__)

_PREFIX = b'{"n":'
_BODY_KEY = b'"sightings":'
_CURSOR = "cursor.json"
_SEGMENT_GLOB = "seg-*.jsonl"


class SpoolRecord(NamedTuple):
    """A spooled batch: its sighting count and the request body to send (``{"sightings":[...]}``)."""

    n: int
    body: bytes


def encode_line(n: int, body: bytes) -> bytes:
    """The spool line of a batch whose body is ``{"sightings":[...]}`` (compact JSON, one line)."""
    if not body.startswith(b"{" + _BODY_KEY):
        raise ValueError('a batch body must start with {"sightings":')
    return _PREFIX + str(n).encode() + b"," + body[1:] + b"\n"


def decode_line(line: bytes) -> SpoolRecord:
    """A spool line back to its record; ValueError when it is not one."""
    line = line.rstrip(b"\n")
    if line.startswith(_PREFIX):
        comma = line.find(b",", len(_PREFIX))
        if comma > 0 and line.startswith(_BODY_KEY, comma + 1) and line.endswith(b"}"):
            return SpoolRecord(int(line[len(_PREFIX):comma]), b"{" + line[comma + 1:])
    obj = json.loads(line)  # not written by encode_line: take it apart the slow way
    sightings = obj["sightings"]
    if not isinstance(sightings, list):
        raise ValueError("sightings is not a list")
    return SpoolRecord(len(sightings), json.dumps({"sightings": sightings}, separators=(",", ":")).encode())


@dataclass
class _Segment:
    seq: int
    path: Path
    size: int  # bytes on disk, sent batches included
    batches: int  # not yet sent
    sightings: int  # not yet sent


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only, size-bounded, restart-proof queue of batches in a directory (one user at a time)."""

    def __init__(self, directory: str | Path, *, max_bytes: int = 64 << 20, segment_bytes: int | None = None,
                 fsync: bool = True) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(4096, min(1 << 20, max_bytes // 16))
        self._fsync = fsync
        self.dropped_batches = 0
        self.dropped_sightings = 0
        self._segments: deque[_Segment] = deque()
        self._offset = 0  # of the oldest unsent batch in the first segment
        self._writer: IO[bytes] | None = None  # the segment appends go to: always the last one
        self._reader: IO[bytes] | None = None
        self._reader_seq = -1
        self._peeked: tuple[int, SpoolRecord] | None = None  # (line length, record)
        self._load()

    # --- state -------------------------------------------------------------------------------

    @property
    def pending_batches(self) -> int:
        return sum(s.batches for s in self._segments)

    @property
    def pending_sightings(self) -> int:
        return sum(s.sightings for s in self._segments)

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def has_pending(self) -> bool:
        """Whether a batch waits to be sent."""
        return any(s.batches for s in self._segments)

    def _path(self, seq: int) -> Path:
        return self.directory / f"seg-{seq:012d}.jsonl"

    def _load(self) -> None:
        cursor_seq, cursor_offset = self._read_cursor()
        paths = sorted(self.directory.glob(_SEGMENT_GLOB))
        for path in paths:
            try:
                seq = int(path.stem[4:])
            except ValueError:
                continue
            if seq < cursor_seq:
                path.unlink()  # sent already; the process stopped before deleting it
                continue
            segment, start = self._scan(seq, path, cursor_offset if seq == cursor_seq else 0)
            if segment.batches == 0:
                path.unlink()
                continue
            if not self._segments:
                self._offset = start
            self._segments.append(segment)
        self._next_seq = max([cursor_seq + 1] + [s.seq + 1 for s in self._segments]
                             + [int(p.stem[4:]) + 1 for p in paths if p.stem[4:].isdigit()])
        if self._segments:
            log.info("spool %s holds %d batches (%d sightings) from before", self.directory,
                     self.pending_batches, self.pending_sightings)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            obj = json.loads((self.directory / _CURSOR).read_text())
            return int(obj["segment"]), int(obj["offset"])
        except FileNotFoundError:
            return 0, 0
        except (ValueError, KeyError, TypeError) as exc:
            # Resending from the start of the oldest segment is safe; skipping batches is not.
            log.warning("spool cursor unreadable (%s): sending the oldest segment from its start", exc)
            return 0, 0

    def _scan(self, seq: int, path: Path, start: int) -> tuple[_Segment, int]:
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("spool segment %s: cutting off %d bytes of a torn last line", path.name, len(data) - end)
            with path.open("r+b") as fh:
                fh.truncate(end)
            data = data[:end]
        if start > len(data) or (start and data[start - 1:start] != b"\n"):
            log.warning("spool cursor offset %d is not a line start in %s: sending the segment from its start",
                        start, path.name)
            start = 0
        batches = sightings = 0
        for line in data[start:].splitlines():
            try:
                sightings += decode_line(line).n
                batches += 1
            except (ValueError, KeyError, TypeError):
                log.error("spool segment %s: unreadable line of %d bytes skipped", path.name, len(line))
        return _Segment(seq, path, len(data), batches, sightings), start

    # --- writing -----------------------------------------------------------------------------

    def append(self, n: int, body: bytes) -> None:
        """Spool one batch durably (body ``{"sightings":[...]}``), dropping the oldest data past the bound."""
        line = encode_line(n, body)
        if len(line) > self.max_bytes:
            self.dropped_batches += 1
            self.dropped_sightings += n
            log.error("spool: a batch of %d sightings (%d bytes) exceeds the whole bound of %d bytes: dropped",
                      n, len(line), self.max_bytes)
            return
        last = self._segments[-1] if self._segments else None
        if self._writer is None or last is None or last.size + len(line) > self.segment_bytes:
            self._rotate()
        if self.size_bytes + len(line) > self.max_bytes:
            self._drop_oldest(len(line))
            if self._writer is None:
                self._rotate()
        assert self._writer is not None
        self._writer.write(line)
        self._writer.flush()
        if self._fsync:
            os.fsync(self._writer.fileno())
        segment = self._segments[-1]
        segment.size += len(line)
        segment.batches += 1
        segment.sightings += n

    def _rotate(self) -> None:
        if self._writer is not None:
            self._writer.close()
        seq = self._next_seq
        self._next_seq += 1
        path = self._path(seq)
        self._writer = path.open("ab")
        if self._fsync:
            _fsync_dir(self.directory)
        if not self._segments:
            self._offset = 0
        self._segments.append(_Segment(seq, path, 0, 0, 0))

    def _drop_oldest(self, room: int) -> None:
        dropped_batches = dropped_sightings = 0
        while self._segments and self.size_bytes + room > self.max_bytes:
            segment = self._segments[0]
            if segment is self._segments[-1] and self._writer is not None:
                self._writer.close()
                self._writer = None
            self._forget_first()
            dropped_batches += segment.batches
            dropped_sightings += segment.sightings
        self.dropped_batches += dropped_batches
        self.dropped_sightings += dropped_sightings
        log.warning("spool full (%d bytes): dropped the oldest %d batches (%d sightings; %d in all)",
                    self.max_bytes, dropped_batches, dropped_sightings, self.dropped_sightings)

    def _forget_first(self) -> None:
        """Delete the first segment and move the cursor to the start of the next."""
        segment = self._segments.popleft()
        if self._reader is not None and self._reader_seq == segment.seq:
            self._reader.close()
            self._reader = None
        self._peeked = None
        self._offset = 0
        self._write_cursor(self._segments[0].seq if self._segments else self._next_seq)
        segment.path.unlink(missing_ok=True)

    def _write_cursor(self, seq: int) -> None:
        tmp = self.directory / (_CURSOR + ".tmp")
        tmp.write_text(json.dumps({"segment": seq, "offset": self._offset}))
        os.replace(tmp, self.directory / _CURSOR)

    # --- reading -----------------------------------------------------------------------------

    def peek(self) -> SpoolRecord | None:
        """The oldest unsent batch, or None when the spool is empty."""
        if self._peeked is not None:
            return self._peeked[1]
        while self._segments:
            segment = self._segments[0]
            if segment.batches == 0:
                if segment is self._segments[-1]:
                    return None  # the segment being written, all of it sent
                self._forget_first()
                continue
            if self._reader is None or self._reader_seq != segment.seq:
                if self._reader is not None:
                    self._reader.close()
                self._reader = segment.path.open("rb")
                self._reader_seq = segment.seq
            self._reader.seek(self._offset)
            line = self._reader.readline()
            if not line.endswith(b"\n"):  # cannot happen unless someone else writes the directory
                log.error("spool segment %s: unexpected end at %d; skipping the segment", segment.path.name,
                          self._offset)
                self.dropped_batches += segment.batches
                self.dropped_sightings += segment.sightings
                segment.batches = segment.sightings = 0
                continue
            try:
                record = decode_line(line)
            except (ValueError, KeyError, TypeError):
                log.error("spool segment %s: unreadable line at %d skipped", segment.path.name, self._offset)
                self._offset += len(line)
                continue
            self._peeked = (len(line), record)
            return record
        return None

    def pop(self, record: SpoolRecord) -> None:
        """Remove ``record``, the batch :meth:`peek` returned (the backend answered for it).

        A no-op when the record is no longer the oldest (the bound dropped it meanwhile).
        """
        if self._peeked is None or self._peeked[1] is not record:
            return
        length = self._peeked[0]
        self._peeked = None
        segment = self._segments[0]
        self._offset += length
        segment.batches -= 1
        segment.sightings -= record.n
        if segment.batches == 0:
            if segment is self._segments[-1] and self._writer is not None:
                self._writer.close()
                self._writer = None
            self._forget_first()
        else:
            self._write_cursor(segment.seq)

    def close(self) -> None:
        for fh in (self._writer, self._reader):
            if fh is not None:
                fh.close()
        self._writer = self._reader = None
