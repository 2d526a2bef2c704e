"""How busy the rest of the machine was: CPU used by processes that are not the benchmark's,
and CPU time the hypervisor stole from this virtual machine.

On a shared 2-core machine another process's test run can halve a figure. Every measured phase
takes a snapshot of each process's CPU time before and after; what processes outside the
benchmark's own tree (this process, gunicorn, wrk, PostgreSQL, Redis) used in between is
reported as a share of the machine, and so is the ``steal`` time of /proc/stat (the host ran
something else on our virtual cores), so a disturbed figure says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Proc:
    ppid: int
    started: int  # clock ticks after boot: tells a process from a later one with the same pid
    cpu: int  # utime + stime, clock ticks


def _processes() -> dict[int, _Proc]:
    procs: dict[int, _Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22.
        procs[int(entry.name)] = _Proc(int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]))
    return procs


def _ours(procs: dict[int, _Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    ours, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in ours:
            ours.add(pid)
            todo.extend(children.get(pid, []))
    return ours


def _cpu_ticks() -> tuple[int, int]:
    """(all ticks, steal ticks) of all cores, from the first line of /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user.
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


@dataclass
class ForeignLoad:
    """Filled in when the block ends: the share of all cores used by other processes, the
    share stolen by the hypervisor, and the other process that used most."""

    share: float = 0.0
    steal: float = 0.0
    top: str = ""


@contextmanager
def foreign_load() -> Iterator[ForeignLoad]:
    """Measure the CPU that processes outside this process's tree use while the block runs."""
    result = ForeignLoad()
    before = _processes()
    ticks_before = _cpu_ticks()
    began = time.monotonic()
    yield result
    seconds = time.monotonic() - began
    ticks_after = _cpu_ticks()
    after = _processes()
    all_ticks = ticks_after[0] - ticks_before[0]
    result.steal = (ticks_after[1] - ticks_before[1]) / all_ticks if all_ticks > 0 else 0.0
    ours = _ours(after, os.getpid()) | _ours(before, os.getpid())
    used: dict[int, int] = {}
    for pid, p in after.items():
        if pid in ours:
            continue
        old = before.get(pid)
        used[pid] = p.cpu - (old.cpu if old is not None and old.started == p.started else 0)
    ncpu = len(os.sched_getaffinity(0))
    result.share = sum(used.values()) / _TICKS / max(seconds, 1e-6) / ncpu
    if used:
        pid = max(used, key=lambda k: used[k])
        if used[pid] > 0:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            result.top = f"{cmd.strip()[:80]} (pid {pid}, {used[pid] / _TICKS:.1f} s CPU)"
