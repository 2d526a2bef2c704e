"""The HTTP half: mallapp under gunicorn on loopback, loaded by wrk.

Four scenarios hit the same server in the same run, for the same duration and connection
count: the bare JSON route (``GET /api/v1/ping``), member check-ins (one member per request),
till purchases (one receipt number per request) and members taking a restaurant queue number
(one member per request, across 20 open restaurants). The rows the app wrote are counted in
the database afterwards, so a run that mostly failed cannot pass for a fast one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks import profiles
from benchmarks.foundation import MALL_DB, Seeded, Stack, checkpoint, write_lines
from benchmarks.machine import ForeignLoad, foreign_load
from mallapp.devtools.servers import free_port, stop_process

LUA_SCRIPT = Path(__file__).resolve().parent / "mall.lua"
REPO_ROOT = Path(__file__).resolve().parent.parent
APP = "mallapp:create_app()"


# --------------------------------------------------------------------------- gunicorn


@dataclass(frozen=True)
class ServerConfig:
    """How gunicorn serves: the worker class, how many workers, and threads per worker (gthread)."""

    worker_class: str = "sync"
    workers: int = 4
    threads: int = 1

    def describe(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread, {self.workers} workers x {self.threads} threads"
        return f"{self.worker_class}, {self.workers} workers"


@dataclass
class Gunicorn:
    """A running gunicorn: its address, command line and log file."""

    url: str
    command: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]
    worker_pids: list[int] = field(default_factory=list)


def _die_with_parent() -> None:
    """In the child: have Linux SIGTERM it if the benchmark process dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/api/v1/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"gunicorn did not answer {url}/api/v1/ping within {timeout:.0f}s; log tail:\n{tail}")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@contextmanager
def gunicorn(config: ServerConfig, env: dict[str, str], workdir: Path) -> Iterator[Gunicorn]:
    """Run mallapp under gunicorn on 127.0.0.1:<free port>; stop it (TERM, then KILL) on exit."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", config.worker_class,
        "--workers", str(config.workers),
        "--threads", str(config.threads),
        "--worker-tmp-dir", "/dev/shm",
        APP,
    ]  # fmt: skip
    log_path = workdir / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
    server = Gunicorn(f"http://127.0.0.1:{port}", command, log_path, proc)
    try:
        _wait_ready(server.url, proc, log_path)
        deadline = time.monotonic() + 10
        while len(server.worker_pids) < config.workers and time.monotonic() < deadline:
            time.sleep(0.1)
            server.worker_pids = _children(proc.pid)
        yield server
    finally:
        stop_process(proc, timeout=15)


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class LoadResult:
    """One wrk run, as its done() hook reported it."""

    name: str
    requests: int
    seconds: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    sent: int
    last_index: int
    exhausted: int
    command: list[str]

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def failed(self) -> int:
        """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
        status_errors = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        sockets = sum(n for kind, n in self.socket_errors.items() if kind != "status")
        return status_errors + sockets

    @property
    def rps(self) -> float:
        """Successful (2xx) responses per second."""
        return self.ok / self.seconds if self.seconds else 0.0


def find_wrk(install: bool = True) -> str | None:
    """wrk on PATH; as root on Debian, ``apt-get install wrk`` when it is missing."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("wrk is missing: apt-get install -y wrk", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 300}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False, **quiet)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=False, **quiet)
    return shutil.which("wrk")


def run_wrk(wrk: str, name: str, url: str, args: list[str], *, duration: float, connections: int,
            threads: int) -> LoadResult:
    """Run wrk with mall.lua for ``duration`` seconds and read the line its done() hook prints."""
    command = [
        wrk, "--threads", str(threads), "--connections", str(connections),
        "--duration", f"{max(1, round(duration))}s", "--timeout", "10s", "--latency",
        "--script", str(LUA_SCRIPT), url, "--", *args[:1], str(threads), *args[1:],
    ]  # fmt: skip
    res = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(f"{shlex.join(command)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    lat = data["latency_us"]
    return LoadResult(
        name=name, requests=data["requests"], seconds=data["duration_us"] / 1e6,
        statuses={int(k): v for k, v in data["statuses"].items()}, socket_errors=data["errors"],
        p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000, max_ms=lat["max"] / 1000,
        sent=data["sent"], last_index=data["last_index"], exhausted=data["exhausted"], command=command,
    )


# --------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class Scenario:
    """A measured scenario and what the database says it wrote."""

    load: LoadResult
    rows_written: int | None = None  # check-ins or purchases the run added (None for ping)
    foreign: ForeignLoad = field(default_factory=ForeignLoad)  # what other processes used meanwhile


@dataclass(frozen=True)
class LoadPlan:
    """What every scenario gets: the same duration, connections and wrk threads."""

    wrk: str
    duration: float
    connections: int
    wrk_threads: int
    warmup: float
    profile_dir: Path | None = None  # py-spy the workers during each measured scenario


@dataclass(frozen=True)
class HttpSuite:
    """The three scenarios of one server configuration."""

    config: ServerConfig
    plan: LoadPlan
    gunicorn_command: list[str]
    ping: Scenario
    checkin: Scenario
    purchase: Scenario
    take: Scenario
    members_used: int

    @property
    def scenarios(self) -> list[Scenario]:
        return [self.ping, self.checkin, self.purchase, self.take]


def _count(st: Stack, sql: str, *params: object) -> int:
    with st.pg.connect(MALL_DB) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def _settle(url: str, seconds: float = 0.5) -> None:
    """Let requests still in flight when wrk stopped finish before the rows are counted."""
    time.sleep(seconds)
    with urllib.request.urlopen(url + "/api/v1/ping", timeout=10):
        pass


def run_suite(st: Stack, seeded: Seeded, config: ServerConfig, plan: LoadPlan, workdir: Path,
              first_member: int = 0, log: Callable[[str], None] = print) -> HttpSuite:
    """Start gunicorn, warm each scenario up, then measure ping, check-in and purchase in turn."""
    tokens = write_lines(workdir / "tokens.txt", seeded.tokens)
    codes = write_lines(workdir / "member-codes.txt", seeded.card_codes)
    # One fixed, recent payment time for every purchase of the run (the API accepts 30 days back).
    occurred_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    run_id = secrets.token_hex(3)
    next_member = first_member

    def load(name: str, args: list[str], duration: float) -> LoadResult:
        return run_wrk(plan.wrk, name, server.url, args, duration=duration, connections=plan.connections,
                       threads=plan.wrk_threads)

    def checkin(duration: float) -> LoadResult:
        nonlocal next_member
        result = load("check-in", ["checkin", str(tokens), str(next_member)], duration)
        next_member = result.last_index + 1
        return result

    def purchase(prefix: str, duration: float) -> LoadResult:
        return load("purchase", ["purchase", str(codes), str(next_member % len(seeded.card_codes)),
                                 seeded.merchant_key, prefix, occurred_at], duration)

    restaurants = ",".join(str(i) for i in open_restaurants(st, seeded.merchant_key))
    next_taker = 0  # a member holds one ticket per restaurant: each request is a member's first there

    def take(duration: float) -> LoadResult:
        nonlocal next_taker
        result = load("take", ["take", str(tokens), str(next_taker), restaurants], duration)
        next_taker = result.last_index + 1
        return result

    def measure(name: str, run: Callable[[], LoadResult], rows_sql: str | None, *params: object) -> Scenario:
        """One measured scenario: a checkpoint first, the rows it wrote counted after it settled."""
        checkpoint(st)
        before = _count(st, rows_sql, *params) if rows_sql else 0
        with foreign_load() as foreign:
            if plan.profile_dir is None:
                result = run()
            else:
                result, report = _profiled(st, server, config, plan, name, run)
        _settle(server.url)
        rows = _count(st, rows_sql, *params) - before if rows_sql else None
        log(_progress(result, rows) + f"  others {100 * foreign.share:.0f}%"
            f"  steal {100 * foreign.steal:.0f}%")
        if plan.profile_dir is not None:
            for line in report(rows if rows is not None else result.ok):
                log(line)
        return Scenario(result, rows, foreign)

    with gunicorn(config, st.process_env(), workdir) as server:
        log(f"gunicorn ({config.describe()}) on {server.url}: {shlex.join(server.command)}")
        if plan.warmup > 0:
            log(f"warming up each scenario for {plan.warmup:g}s")
            load("ping", ["ping"], plan.warmup)
            checkin(plan.warmup)
            purchase(f"warm-{run_id}", plan.warmup)
            take(plan.warmup)
            _settle(server.url)
        ping = measure("ping", lambda: load("ping", ["ping"], plan.duration), None)
        check_ins = measure("check-in", lambda: checkin(plan.duration), "SELECT count(*) FROM checkins")
        if check_ins.load.exhausted:
            log(f"WARNING: {check_ins.load.exhausted} check-ins reused members (seed more with --members)")
        prefix = f"bench-{run_id}"
        sales = measure("purchase", lambda: purchase(prefix, plan.duration),
                        "SELECT count(*) FROM purchases WHERE receipt_no LIKE %s", prefix + "-%")
        taken = measure("take", lambda: take(plan.duration), "SELECT count(*) FROM queue_tickets")
        if taken.load.exhausted:
            log(f"WARNING: {taken.load.exhausted} take-number requests reused members (seed more with --members)")
    return HttpSuite(config, plan, server.command, ping, check_ins, sales, taken,
                     members_used=next_member - first_member)


def open_restaurants(st: Stack, merchant_key: str, count: int = 20) -> list[int]:
    """The benchmark merchant's restaurants, with their queues open (made the first time)."""
    from mallapp.domain import merchants, queueing, venue_admin
    from mallapp.domain.venue import Store

    rt = st.runtime()
    try:
        with rt.sessions.begin() as session:
            merchant = merchants.authenticate(session, merchant_key)
            ids = list(session.scalars(select(Store.id).where(Store.merchant_id == merchant.id,
                                                              Store.category == "restaurant").order_by(Store.id)))
            for i in range(len(ids), count):
                ids.append(venue_admin.create_store(session, name=f"Benchmark Noodles {i}", floor=3, x=float(i), y=0.0,
                                                    merchant_id=merchant.id, category="restaurant", now=rt.now()).id)
            for store_id in ids:
                queueing.set_open(session, rt.settings, merchant.id, store_id, True, None, rt.now())
        return ids
    finally:
        rt.close()


def _profiled(st: Stack, server: Gunicorn, config: ServerConfig, plan: LoadPlan, name: str,
              run: Callable[[], LoadResult]) -> tuple[LoadResult, Callable[[int], list[str]]]:
    """Run a scenario under py-spy and PostgreSQL's statement log; return the result and a
    report maker (given the number of requests served) for after the rows were counted."""
    py_spy = profiles.find_py_spy()
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    assert plan.profile_dir is not None
    output = plan.profile_dir / f"{config.worker_class}-{config.workers}x{config.threads}-{name}.txt"
    statements: Counter[str] = Counter()
    with profiles.statement_log(st, statements), profiles.record(py_spy, server.proc.pid, plan.duration, output):
        result = run()

    def report(served: int) -> list[str]:
        return [*profiles.format_summary(name, output), *profiles.format_statements(name, statements, served)]

    return result, report


def _progress(result: LoadResult, rows: int | None = None) -> str:
    line = (f"  {result.name:<9} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.1f} ms  "
            f"p99 {result.p99_ms:6.1f} ms  2xx {result.ok}  failed {result.failed}")
    return line + (f"  rows written {rows}" if rows is not None else "")
