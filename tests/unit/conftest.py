"""Unit tests start no server: a test here that reaches for Redis, PostgreSQL or the WeChat emulator
(through ``rt``, ``app``, ``client``, ``settings``...) belongs in api/ or integration/."""

from __future__ import annotations

from pathlib import Path

import pytest

SERVERS = {"redis_server", "pg_server", "emulator_server"}
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    misplaced = [item.nodeid for item in items
                 if item.path.is_relative_to(HERE) and SERVERS & set(getattr(item, "fixturenames", ()))]
    if misplaced:
        raise pytest.UsageError("unit tests that need a server (move them to api/ or integration/):\n  "
                                + "\n  ".join(misplaced))
