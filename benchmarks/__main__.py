"""``python -m benchmarks`` (``./dev bench``): the whole benchmark in one run.

    python -m benchmarks [--duration 10] [--connections 16] [--workers 4] [--only http|ledger]

It starts its own durable PostgreSQL and Redis, seeds members, and prints two comparisons:
check-in, purchase and take-number requests through gunicorn against the bare JSON route of the same server,
and in-process ledger purchase transactions against pgbench's tpcb-like on the same PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from types import FrameType

from benchmarks.foundation import Seeded, Stack, seed, stack
from benchmarks.ledger import LedgerResult, PgbenchResult, run_ledger, run_pgbench
from benchmarks.machine import ForeignLoad, foreign_load
from benchmarks.web import HttpSuite, LoadPlan, ServerConfig, find_wrk, run_suite

RATIO_GOAL = 0.5
P99_GOAL_MS = 50.0
FOREIGN_NOTE = 0.10  # other processes above this share of the cores make a figure suspect
# Chosen on this 2-core machine (see benchmarks/README.md): sync workers, two per core, because
# the check-in and purchase workers spend a third of their time blocked on PostgreSQL.
DEFAULT_SERVER = "sync:4"


def parse_server(spec: str) -> ServerConfig:
    """``sync:4`` or ``gthread:2x4`` (workers x threads) as a ServerConfig."""
    kind, _, size = spec.partition(":")
    workers, _, threads = (size or "2").partition("x")
    if kind not in ("sync", "gthread") or not workers.isdigit() or (threads and not threads.isdigit()):
        raise argparse.ArgumentTypeError(f"expected sync:N or gthread:NxT, not {spec!r}")
    return ServerConfig(kind, int(workers), int(threads or (4 if kind == "gthread" else 1)))


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except the ones that are None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cpus = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=_Help)
    p.add_argument("--only", choices=("http", "ledger", "proximity"),
                   help="run one part only (proximity: python -m benchmarks.proximity with its defaults)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each measured phase")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per HTTP scenario")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (one keeps the cores for the server)")
    p.add_argument("--server", type=parse_server, action="append",
                   help=f"gunicorn worker class and size, sync:N or gthread:NxT; repeat to compare "
                        f"(default: {DEFAULT_SERVER})")
    p.add_argument("--workers", type=int, help="shorthand: the default worker class with this many workers")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy the gunicorn workers during each HTTP scenario; samples and a per-layer "
                        "summary go to DIR (profiling costs CPU: the figures of such a run are not comparable)")
    p.add_argument("--members", type=int, default=20_000, help="members to seed (one per check-in)")
    p.add_argument("--seed-processes", type=int, default=cpus, help="processes that seed members")
    p.add_argument("--clients", type=int, default=8, help="ledger threads and pgbench clients")
    p.add_argument("--jobs", type=int, default=cpus,
                   help="pgbench threads (-j), and as many ledger processes (one Python process uses one core)")
    p.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    args = p.parse_args(argv)
    if args.server is None:
        base = parse_server(DEFAULT_SERVER)
        args.server = [ServerConfig(base.worker_class, args.workers or base.workers, base.threads)]
    elif args.workers:
        p.error("give either --workers or --server")
    for name in ("duration", "connections", "wrk_threads", "members", "clients", "jobs", "scale"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.duration > 120:
        p.error("--duration is capped at 120 s")
    return args


# --------------------------------------------------------------------------- printing


def log(line: str) -> None:
    print(line, flush=True)


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _revision() -> str:
    """The commit of the work tree, and whether it has changes (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    head = _first_line(["git", "-C", str(root), "log", "-1", "--format=%h %s"])
    try:
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return head + (" (+ uncommitted changes)" if dirty else "")


def print_header(args: argparse.Namespace, wrk: str | None) -> None:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    log("== mallapp benchmark")
    log(f"command: {shlex.join(getattr(sys, 'orig_argv', sys.argv))}   (cwd {os.getcwd()})")
    log(f"machine: nproc {len(os.sched_getaffinity(0))} ({_cpu_model()}), {mem_gib:.0f} GiB, "
        f"{platform.system()} {platform.release()}, load average {os.getloadavg()[0]:.2f}")
    log(f"software: Python {platform.python_version()}, gunicorn {version('gunicorn')}, "
        f"Flask {version('flask')}, SQLAlchemy {version('sqlalchemy')}, psycopg {version('psycopg')}, "
        f"wrk: {_first_line([wrk, '-v']).split(' Copyright')[0] if wrk else 'missing'}")
    log(f"code: {_revision()}")
    with foreign_load() as before:
        time.sleep(1.0)
    log(f"before the run: other processes {100 * before.share:.0f}%, steal {100 * before.steal:.0f}% "
        "of the cores (1 s sample)")
    _note_foreign("the second before the run", before)


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def print_http(suite: HttpSuite) -> None:
    base, plan = suite.ping.load.rps, suite.plan
    log("")
    log(f"== HTTP through gunicorn ({suite.config.describe()}), wrk {plan.connections} connections, "
        f"{plan.wrk_threads} thread(s), {plan.duration:g} s each, same server, same run")
    log(f"{'scenario':<10}{'2xx req/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}{'2xx':>9}{'failed':>8}"
        f"{'db rows':>9}{'others':>8}{'steal':>7}  goal (ratio >= {RATIO_GOAL}, p99 < {P99_GOAL_MS:g} ms)")
    for sc in suite.scenarios:
        r = sc.load
        ratio = r.rps / base if base else 0.0
        if sc is suite.ping:
            goal = "baseline"
        else:
            goal = (f"ratio {_verdict(ratio >= RATIO_GOAL)}, p99 {_verdict(r.p99_ms < P99_GOAL_MS)}")
        rows = "" if sc.rows_written is None else str(sc.rows_written)
        others, steal = f"{100 * sc.foreign.share:.0f}%", f"{100 * sc.foreign.steal:.0f}%"
        log(f"{r.name:<10}{r.rps:>11.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{ratio:>8.3f}{r.ok:>9}{r.failed:>8}"
            f"{rows:>9}{others:>8}{steal:>7}  {goal}")
    for sc in suite.scenarios:
        statuses = {s: n for s, n in sc.load.statuses.items() if not 200 <= s < 300}
        sockets = {k: n for k, n in sc.load.socket_errors.items() if n and k != "status"}
        if statuses or sockets:
            log(f"  {sc.load.name}: non-2xx statuses {statuses or '{}'}, socket errors {sockets or '{}'}")
        _note_foreign(sc.load.name, sc.foreign)
    log("  others: CPU that processes outside the benchmark used meanwhile; steal: CPU the hypervisor gave "
        "to other guests; both as a share of all cores")
    log(f"  wrk: {shlex.join(suite.ping.load.command)}")


def _note_foreign(phase: str, foreign: ForeignLoad) -> None:
    if foreign.share > FOREIGN_NOTE:
        log(f"  NOTE: during {phase} other processes used {100 * foreign.share:.0f}% of the cores "
            f"(most: {foreign.top}); that figure is disturbed")
    if foreign.steal > FOREIGN_NOTE:
        log(f"  NOTE: during {phase} the hypervisor stole {100 * foreign.steal:.0f}% of the cores; "
            "that figure is disturbed")


def print_bound(suites: list[HttpSuite], bench: PgbenchResult) -> None:
    """What no implementation that commits one durable transaction per request can beat, here.

    A request that does what the bare route does plus one pgbench-sized transaction costs the
    machine at least 1/ping_rps + 1/pgbench_tps seconds of its cores, so its rate relative to the
    bare route is at most 1 / (1 + ping_rps / pgbench_tps).
    """
    log("")
    log("== Bound from this run's own figures (bare route + one durable pgbench transaction per request)")
    for suite in suites:
        ping = suite.ping.load.rps
        bound = 1 / (1 + ping / bench.tps) if bench.tps else 0.0
        log(f"{suite.config.describe()}: ping {ping:.0f} req/s, pgbench {bench.tps:.0f} tps: no write endpoint "
            f"can exceed a ratio of {bound:.2f} on this machine")


def print_ledger(ledger: LedgerResult | None, bench: PgbenchResult | None) -> None:
    log("")
    log("== Ledger transactions on the same PostgreSQL (fsync and synchronous_commit on)")
    if ledger is not None:
        log(f"ledger   {ledger.tps:9.1f} tps  {ledger.clients} clients in {ledger.processes} processes, "
            f"purchases.record_purchase per transaction, {ledger.seconds:.1f} s: {ledger.committed} committed, "
            f"{ledger.failed} failed, {ledger.rows_written} rows in the database; "
            f"p50 {ledger.p50_ms:.1f} ms, p99 {ledger.p99_ms:.1f} ms; others {100 * ledger.foreign.share:.0f}%, "
            f"steal {100 * ledger.foreign.steal:.0f}%")
        if ledger.first_error:
            log(f"  first error: {ledger.first_error}")
        _note_foreign("the ledger run", ledger.foreign)
    if bench is not None:
        log(f"pgbench  {bench.tps:9.1f} tps  tpcb-like, -c {bench.clients} -j {bench.jobs}, scale {bench.scale}: "
            f"{bench.processed} processed, {bench.failed} failed, latency average {bench.latency_ms:.1f} ms "
            f"(init took {bench.init_seconds:.1f} s); others {100 * bench.foreign.share:.0f}%, "
            f"steal {100 * bench.foreign.steal:.0f}%")
        _note_foreign("pgbench", bench.foreign)
        for command in bench.commands:
            log(f"  {shlex.join(command)}")
    if ledger is not None and bench is not None and bench.tps:
        ratio = ledger.tps / bench.tps
        log(f"ratio    {ratio:9.3f}  ledger / pgbench  goal >= {RATIO_GOAL}: {_verdict(ratio >= RATIO_GOAL)}")


# --------------------------------------------------------------------------- running


def _measurement_ok(suites: list[HttpSuite], ledger: LedgerResult | None) -> bool:
    """False when a figure cannot be trusted: failures above 1 %, or rows the DB does not hold."""
    ok = True
    for suite in suites:
        for sc in suite.scenarios:
            r = sc.load
            if r.failed > 0.01 * max(1, r.ok + r.failed):
                log(f"INVALID: {r.name} had {r.failed} failures against {r.ok} successes")
                ok = False
            if sc.rows_written is not None and sc.rows_written < r.ok:
                log(f"INVALID: {r.name} answered {r.ok} 2xx but the database holds {sc.rows_written} new rows")
                ok = False
    if ledger is not None and (ledger.rows_written != ledger.committed or ledger.failed > 0.01 * ledger.committed):
        log(f"INVALID: ledger committed {ledger.committed}, failed {ledger.failed}, "
            f"database holds {ledger.rows_written}")
        ok = False
    return ok


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    wrk = find_wrk() if args.only != "ledger" else None
    print_header(args, wrk)
    if args.only != "ledger" and wrk is None:
        log("wrk is not installed and cannot be installed here (needs root and apt-get); "
            "install it (Debian: apt-get install wrk) and run again")
        return 2
    suites: list[HttpSuite] = []
    ledger: LedgerResult | None = None
    bench: PgbenchResult | None = None
    with tempfile.TemporaryDirectory(prefix="mallapp-bench-") as tmp, stack(Path(tmp)) as st:
        log(f"servers: PostgreSQL {st.pg.port} (fast=False: fsync, synchronous_commit, full_page_writes on; "
            f"{st.pg.bindir}), Redis {st.redis.port}")
        seeded = _seed(st, args)
        if args.only != "ledger":
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
            plan = LoadPlan(wrk or "wrk", args.duration, args.connections, args.wrk_threads, args.warmup,
                            args.profile)
            first = 0
            for config in args.server:
                suite = run_suite(st, seeded, config, plan, Path(tmp), first_member=first, log=log)
                first += suite.members_used
                suites.append(suite)
        if args.only != "http":
            log(f"ledger: {args.clients} clients in {args.jobs} processes for {args.duration:g} s")
            ledger = run_ledger(st, seeded, args.clients, args.duration, args.jobs)
            log(f"pgbench: -i -s {args.scale}, then tpcb-like -c {args.clients} -j {args.jobs} for {args.duration:g} s")
            bench = run_pgbench(st, args.clients, args.jobs, args.duration, args.scale)
    for suite in suites:
        print_http(suite)
    if args.only != "http":
        print_ledger(ledger, bench)
    if suites and bench is not None:
        print_bound(suites, bench)
    ok = _measurement_ok(suites, ledger)
    log(f"\nwhole run: {time.monotonic() - began:.0f} s, load average now {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


def _seed(st: Stack, args: argparse.Namespace) -> Seeded:
    log(f"seeding {args.members} members through members.sign_in ({args.seed_processes} processes)")
    seeded = seed(st, args.members, processes=args.seed_processes)
    log(f"  seeded in {seeded.seconds:.1f} s; tokens in Redis, member codes valid for 1 h, merchant key issued")
    return seeded


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only == "proximity":
        from benchmarks import proximity

        return proximity.main([])
    signal.signal(signal.SIGTERM, _terminate)  # clean up servers and gunicorn on kill, as on Ctrl-C
    try:
        return run(args)
    except KeyboardInterrupt:
        log("\ninterrupted; servers stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
