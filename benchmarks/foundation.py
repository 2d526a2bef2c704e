"""The benchmark's own world: a durable PostgreSQL, a Redis, the migrated schema, seeded data.

Everything here goes through mallapp's own services (``members.sign_in``, ``auth.issue_token``,
``auth.card_code``, ``merchants.create``), so the seeded rows are exactly what the app makes.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mallapp.devtools.servers import PostgresServer, RedisServer
from mallapp.domain import auth, members, merchants, points
from mallapp.runtime import Runtime, build_runtime
from mallapp.schema import upgrade
from mallapp.settings import DEMO_SETTINGS_FILE, Settings, load_settings

MALL_DB = "mall"
# Member codes must outlive the run; 3600 s is the most the settings accept.
CARD_TTL_SECONDS = 3600


@dataclass(frozen=True)
class Stack:
    """The running servers and the ``MALL_*`` environment that points mallapp at them."""

    pg: PostgresServer
    redis: RedisServer
    mall_url: str
    environ: dict[str, str]

    @property
    def settings(self) -> Settings:
        return load_settings(environ=self.environ)

    def runtime(self) -> Runtime:
        """A runtime of this process on the benchmark's servers (the caller closes it)."""
        return build_runtime(self.settings)

    def process_env(self) -> dict[str, str]:
        """The environment of a child process (gunicorn): ours less any MALL_*, plus the stack's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_")}
        return {**env, **self.environ}


@dataclass(frozen=True)
class Seeded:
    """What the load needs: one bearer token and one member code per member, and a merchant key."""

    member_ids: list[int]
    tokens: list[str]
    card_codes: list[str]
    merchant_id: int
    merchant_key: str
    seconds: float


def mall_environ(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    """The settings of the benchmark, as the environment variables production would use."""
    return {
        "MALL_DATABASE_URL": database_url,
        "MALL_REDIS_URL": redis_url,
        "MALL_SECRET_KEY": secrets.token_urlsafe(32),
        "MALL_AUTH_CARD_TTL_S": str(CARD_TTL_SECONDS),
        # Nothing in the measured paths calls WeChat; if anything did, it would stay on loopback.
        "MALL_WECHAT_API_BASE": "http://127.0.0.1:9",
        "MALL_WECHAT_SECRET": "benchmark-not-a-secret",
        "MALL_VAR_DIR": str(workdir / "var"),
        # The production defaults, stated so an inherited environment cannot change them.
        "MALL_LOG_LEVEL": "INFO",
        "MALL_LOG_FORMAT": "json",
        # The demo's values for the keys production must set (the mall's name and place, the appid).
        "MALL_CONFIG": str(DEMO_SETTINGS_FILE),
    }


@contextmanager
def stack(workdir: Path) -> Iterator[Stack]:
    """Start PostgreSQL (durable: fsync and synchronous_commit on) and Redis; migrate the mall DB."""
    with PostgresServer(fast=False) as pg, RedisServer() as redis:
        url = pg.create_database(MALL_DB)
        upgrade(url)
        yield Stack(pg=pg, redis=redis, mall_url=url, environ=mall_environ(url, redis.url, workdir))


def _sign_in_range(environ: dict[str, str], nonce: str, start: int, stop: int, batch: int) -> list[int]:
    """Sign members ``start`` to ``stop`` in, ``batch`` to a transaction; return their ids."""
    rt = build_runtime(load_settings(environ=environ))
    ids: list[int] = []
    try:
        for first in range(start, stop, batch):
            with rt.sessions.begin() as session:
                for i in range(first, min(first + batch, stop)):
                    member, _ = members.sign_in(session, openid=f"bench-{nonce}-{i:07d}", unionid=None,
                                                now=rt.now())
                    ids.append(member.id)
    finally:
        rt.close()
    return ids


def seed(st: Stack, count: int, processes: int = 2, batch: int = 500) -> Seeded:
    """Sign ``count`` members in (``members.sign_in`` opens their points accounts) from
    ``processes`` processes, issue each a bearer token and a member code, and create a merchant."""
    started = time.perf_counter()
    nonce = secrets.token_hex(3)
    chunk = max(batch, -(-count // (processes * 4)))
    ranges = [(lo, min(lo + chunk, count)) for lo in range(0, count, chunk)]
    ctx = multiprocessing.get_context("spawn")  # no engine or socket of ours crosses into a child
    with ProcessPoolExecutor(max_workers=max(1, processes), mp_context=ctx) as pool:
        futures = [pool.submit(_sign_in_range, st.environ, nonce, lo, hi, batch) for lo, hi in ranges]
        ids = [member_id for future in futures for member_id in future.result()]
    rt = st.runtime()
    try:
        with rt.sessions.begin() as session:
            merchant, key = merchants.create(session, "Benchmark Till", rt.now())
            merchant_id = merchant.id
            accounts = session.scalar(select(func.count()).select_from(points.PointsAccount))
        if accounts != count:
            raise RuntimeError(f"seeded {count} members but the database holds {accounts} points accounts")
        ttl = rt.settings.auth.token_ttl_s
        pipe = rt.redis.pipeline(transaction=False)
        tokens = [auth.issue_token(pipe, member_id, ttl) for member_id in ids]  # type: ignore[arg-type]
        pipe.execute()
        now = rt.now()
        codes = [auth.card_code(rt.secret, member_id, now, CARD_TTL_SECONDS)[0] for member_id in ids]
    finally:
        rt.close()
    return Seeded(ids, tokens, codes, merchant_id, key, time.perf_counter() - started)


def write_lines(path: Path, lines: list[str]) -> Path:
    """One value a line, for the wrk script to read."""
    path.write_text("\n".join(lines) + "\n")
    return path


def checkpoint(st: Stack) -> None:
    """``CHECKPOINT``, so that no measured phase pays for the dirty pages of the one before."""
    with st.pg.connect() as conn:
        conn.execute("CHECKPOINT")


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process still running, then wait for each (20 s) and kill what does not stop."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def timed(rounds: int, call: Callable[[int], Any]) -> dict[str, float]:
    """p50 and p95 wall time in ms of ``call(i)`` for i in range(rounds); with ``found_mean`` when it returns numbers."""
    times, found = [], []
    for i in range(rounds):
        started = time.perf_counter()
        found.append(call(i))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    out = {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3)}
    if all(isinstance(f, int | float) and not isinstance(f, bool) for f in found):
        out["found_mean"] = round(sum(found) / len(found), 1)
    return out
