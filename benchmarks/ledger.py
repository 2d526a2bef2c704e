"""The ledger half: purchase transactions in-process against pgbench's tpcb-like, same PostgreSQL.

N client threads, spread over as many processes as pgbench has worker threads (``-j``), loop
``with sessions.begin(): purchases.record_purchase(...)`` with receipt numbers of their own, for
members in turn; pgbench then runs its built-in tpcb-like script with N clients and the same
``-j`` on a database of its own (``pgbench -i``) on the same server.
"""

from __future__ import annotations

import multiprocessing
import re
import secrets
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.foundation import MALL_DB, Seeded, Stack, checkpoint
from benchmarks.machine import ForeignLoad, foreign_load
from mallapp.domain import purchases
from mallapp.runtime import build_runtime
from mallapp.settings import load_settings

PGBENCH_DB = "pgbench"
MAX_TRANSACTIONS_PER_CLIENT = 1_000_000  # a bound on top of the time limit


@dataclass(frozen=True)
class LedgerResult:
    clients: int
    processes: int
    seconds: float
    committed: int
    failed: int
    rows_written: int
    p50_ms: float
    p99_ms: float
    first_error: str | None
    foreign: ForeignLoad

    @property
    def tps(self) -> float:
        return self.committed / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class PgbenchResult:
    clients: int
    jobs: int
    scale: int
    tps: float
    processed: int
    failed: int
    latency_ms: float
    init_seconds: float
    foreign: ForeignLoad
    commands: list[list[str]] = field(default_factory=list)


@dataclass
class _Client:
    """One thread's tally."""

    committed: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def run_ledger(st: Stack, seeded: Seeded, clients: int, duration: float, processes: int) -> LedgerResult:
    """``clients`` threads, spread over ``processes`` processes as pgbench spreads its clients over
    ``-j`` threads, post purchases through ``purchases.record_purchase`` for ``duration`` s.

    One Python process runs one thread at a time (the GIL), so the processes give the ledger the
    same use of the cores that pgbench's worker threads have.
    """
    ctx = multiprocessing.get_context("fork")
    prefix = f"ledger-{secrets.token_hex(3)}"
    shares = [share for i in range(processes) if (share := list(range(clients))[i::processes])]
    start = ctx.Barrier(len(shares) + 1)
    results = ctx.Queue()
    workers = [ctx.Process(target=_ledger_process, name=f"ledger-{i}", daemon=True,
                           args=(st.environ, seeded, prefix, share, clients, duration, start, results))
               for i, share in enumerate(shares)]
    tallies: list[_Client] = []
    try:
        for w in workers:
            w.start()
        checkpoint(st)
        with foreign_load() as foreign:
            began = time.perf_counter()
            start.wait(timeout=120)
            for _ in workers:
                tallies.extend(results.get(timeout=duration + 120))
            elapsed = time.perf_counter() - began
        with st.pg.connect(MALL_DB) as conn:
            rows = int(conn.execute("SELECT count(*) FROM purchases WHERE receipt_no LIKE %s",
                                    (prefix + "-%",)).fetchone()[0])
    finally:
        start.abort()  # releases processes still waiting to start
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.kill()
    latencies = sorted(x for t in tallies for x in t.latencies)
    return LedgerResult(
        clients=clients, processes=len(workers), seconds=elapsed, committed=sum(t.committed for t in tallies),
        failed=sum(t.failed for t in tallies), rows_written=rows,
        p50_ms=_percentile(latencies, 50) * 1000, p99_ms=_percentile(latencies, 99) * 1000,
        first_error=next((t.first_error for t in tallies if t.first_error), None), foreign=foreign,
    )


def _ledger_process(environ: dict[str, str], seeded: Seeded, prefix: str, tids: list[int], clients: int,
                    duration: float, start: Any, results: Any) -> None:
    """One process of the ledger run: its own runtime (no connection crosses the fork), its threads."""
    rt = build_runtime(load_settings(environ=environ))
    settings, members = rt.settings, seeded.member_ids
    tallies = {tid: _Client() for tid in tids}
    go = threading.Event()
    deadline = 0.0

    def client(tid: int) -> None:
        tally = tallies[tid]
        go.wait()
        for n in range(MAX_TRANSACTIONS_PER_CLIENT):
            began = time.perf_counter()
            if began >= deadline:
                break
            now = rt.now()
            try:
                with rt.sessions.begin() as session:
                    purchases.record_purchase(
                        session, settings, merchant_id=seeded.merchant_id,
                        member_id=members[(tid + n * clients) % len(members)], receipt_no=f"{prefix}-{tid}-{n}",
                        amount_fen=1000 + (n * 7919) % 99000, occurred_at=now, now=now)
            except Exception as exc:  # counted and reported, never hidden
                tally.failed += 1
                tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
                continue
            tally.committed += 1
            tally.latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(tid,), daemon=True) for tid in tids]
    for t in threads:
        t.start()
    try:
        start.wait(timeout=120)
    except threading.BrokenBarrierError:
        return
    deadline = time.perf_counter() + duration
    go.set()
    for t in threads:
        t.join(timeout=duration + 60)
    rt.close()
    results.put(list(tallies.values()))


def _pgbench(st: Stack, args: list[str], timeout: float) -> tuple[list[str], str]:
    assert st.pg.bindir is not None
    command = [str(Path(st.pg.bindir) / "pgbench"), *args, PGBENCH_DB]
    res = subprocess.run(command, env=st.pg.psql_env(PGBENCH_DB), capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return command, res.stdout + res.stderr


def init_pgbench(st: Stack, scale: int) -> tuple[list[str], float]:
    """``pgbench -i -s scale`` into a database of its own on the same server."""
    st.pg.create_database(PGBENCH_DB)
    began = time.perf_counter()
    command, _ = _pgbench(st, ["-i", "-s", str(scale), "-q"], timeout=600)
    return command, time.perf_counter() - began


def run_pgbench(st: Stack, clients: int, jobs: int, duration: float, scale: int) -> PgbenchResult:
    """pgbench's built-in tpcb-like script for ``duration`` seconds (after ``pgbench -i``)."""
    init_command, init_seconds = init_pgbench(st, scale)
    checkpoint(st)
    seconds = max(1, round(duration))
    with foreign_load() as foreign:
        command, out = _pgbench(st, ["-b", "tpcb-like", "-c", str(clients), "-j", str(jobs), "-T", str(seconds)],
                                timeout=seconds + 120)

    def number(pattern: str, default: float | None = None) -> float:
        match = re.search(pattern, out)
        if match is None:
            if default is not None:
                return default
            raise RuntimeError(f"pgbench output lacks {pattern!r}:\n{out}")
        return float(match.group(1))

    return PgbenchResult(
        clients=clients, jobs=jobs, scale=scale,
        tps=number(r"tps = ([\d.]+) \(without initial connection time\)"),
        processed=int(number(r"number of transactions actually processed: (\d+)")),
        failed=int(number(r"number of failed transactions: (\d+)", 0)),
        latency_ms=number(r"latency average = ([\d.]+) ms"),
        init_seconds=init_seconds, foreign=foreign, commands=[init_command, command],
    )
