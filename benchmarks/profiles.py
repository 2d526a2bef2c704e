"""Where the workers' time goes: py-spy samples of gunicorn while wrk loads it (``--profile DIR``).

py-spy writes collapsed stacks (``frame;frame;... count``), idle samples included. A sample whose
innermost frame waits on a socket counts as that round trip (PostgreSQL, Redis, the client);
any other is charged to the innermost frame of a known layer (Flask, pydantic, the ORM...), so
the table reads as "share of worker wall time spent in this layer's own code".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.foundation import Stack

# py-spy names mallapp/api/*.py by their bare file name.
API_FILES = (" (core.py:", " (members.py:", " (merchant.py:", " (meta.py:")
# Where a sample's innermost frame is waiting on a socket: (what, substrings of that frame).
IO_LEAVES: list[tuple[str, tuple[str, ...]]] = [
    ("PostgreSQL round trips (send, wait, commit)", (
        "Connection.wait (psycopg/", "_send_query_prepared (psycopg/", "_execute_send (psycopg/",
        "_exec_command (psycopg/", "wait_c (psycopg", "do_ping (sqlalchemy")),
    ("Redis round trips", ("read_from_socket (redis/", "send_packed_command (redis/")),
    ("gunicorn socket I/O (accept, send, close)", (
        "write (gunicorn/util.py", "close_graceful (gunicorn/", "socket.accept (socket.py", "recv_into",
        "Unreader.chunk (gunicorn/", "SocketUnreader.chunk (gunicorn/")),
    ("idle: waiting for a request", (
        "SyncWorker.wait (gunicorn/", "select (selectors.py", "ThreadWorker.wait_for_and_dispatch")),
]
# Otherwise the sample is CPU in the innermost frame of a known layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("psycopg (Python side)", ("psycopg/",)),
    ("redis client", ("redis/",)),
    ("SQLAlchemy ORM (session, unit of work, loading)", ("sqlalchemy/orm/",)),
    ("SQLAlchemy Core (statements, cache keys, engine, pool)", ("sqlalchemy/",)),
    ("pydantic", ("pydantic",)),
    ("logging (access log as JSON)", ("logging/", "mallapp/logs.py", "json/")),
    ("Flask/Werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn (HTTP parsing)", ("gunicorn/",)),
    ("mallapp", ("mallapp/", *API_FILES)),
]


def _classify(frames: list[str]) -> str:
    leaf = frames[-1]
    for name, needles in IO_LEAVES:
        if any(n in leaf for n in needles):
            return name
    for frame in reversed(frames):
        for name, needles in LAYERS:
            if any(n in frame for n in needles):
                return name
    return "other (stdlib, interpreter)"


def _mallapp_function(frame: str) -> str | None:
    """``check_in (mallapp/checkin.py:77)`` -> ``mallapp/checkin.py:check_in``; None if not mallapp's."""
    api = any(f in frame for f in API_FILES)
    if "mallapp/" not in frame and not api:
        return None
    name, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{'mallapp/api/' if api else ''}{path}:{name.replace('<locals>.', '')}"


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples of gunicorn's workers in a py-spy ``--format raw`` file: the total, the samples per
    layer, and the samples spent under each mallapp function (inclusive)."""
    per_layer: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        if sum(f.startswith("process ") for f in frames) < 2:
            continue  # the arbiter (master), not a worker
        count = int(count_text)
        total += count
        per_layer[_classify(frames)] += count
        for fn in {_mallapp_function(f) for f in frames} - {None}:
            inclusive[fn] += count  # type: ignore[index]
    return total, per_layer, inclusive


def format_summary(name: str, path: Path, top: int = 12) -> list[str]:
    total, per_layer, inclusive = summarise(path)

    def share(n: int) -> str:
        return f"{100 * n / max(1, total):5.1f}%"

    lines = [f"  profile of {name}: {total} worker samples ({path}); by layer:"]
    lines += [f"    {share(n)}  {layer}" for layer, n in per_layer.most_common()]
    if inclusive:
        lines.append("  under mallapp functions (inclusive):")
        lines += [f"    {share(n)}  {fn}" for fn, n in inclusive.most_common(top)]
    return lines


def find_py_spy() -> str | None:
    """py-spy next to this Python (the venv's bin), else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def record(py_spy: str, pid: int, duration: float, output: Path) -> Iterator[None]:
    """Sample ``pid`` and its children (gunicorn's workers) with py-spy for ``duration`` seconds."""
    command = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--idle", "--nonblocking",
               "--rate", "250", "--duration", str(max(1, round(duration))), "--format", "raw",
               "--output", str(output)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- SQL statements

_LOGGED = re.compile(r"LOG:  duration: [\d.]+ ms  (?:statement|execute [^:]*): (.*)$", re.S)
_ENTRY_START = re.compile(r"^\d{4}-\d\d-\d\d ", re.M)  # log_line_prefix starts with %m


def _statement_kind(sql: str) -> str:
    """``SELECT a, b FROM points_accounts WHERE ... FOR UPDATE`` -> ``SELECT points_accounts FOR UPDATE``."""
    words = sql.split()
    if not words:
        return "?"
    upper = " ".join(words).upper()
    verb = words[0].upper()
    if verb == "WITH":  # data-modifying CTEs: name what the one statement writes
        tokens = re.findall(r"[A-Z_][A-Z0-9_.]*", upper)
        writes = [f"{tokens[i].lower()} {tokens[i + 2 if tokens[i] == 'INSERT' else i + 1].lower()}"
                  for i in range(len(tokens) - 2) if tokens[i] in ("INSERT", "UPDATE", "DELETE")
                  and (tokens[i] != "INSERT" or tokens[i + 1] == "INTO")]
        return "WITH ... " + ", ".join(writes) if writes else "WITH ... SELECT"
    if verb == "UPDATE" and len(words) > 1:
        target = words[1]
    elif verb == "INSERT" and len(words) > 2:
        target = words[2]
    elif " FROM " in upper:
        target = words[upper.split().index("FROM") + 1]
    else:
        text = " ".join(words)[:40]  # BEGIN, COMMIT, SAVEPOINT ...
        return "; (the pool's pre-ping)" if text == ";" else text
    extras = [text for text in ("ON CONFLICT", "FOR UPDATE", "RETURNING") if text in upper]
    return " ".join([verb, target, *extras])


@contextmanager
def statement_log(st: Stack, into: Counter[str]) -> Iterator[None]:
    """Have PostgreSQL log every statement while the block runs; tally them by kind into ``into``."""
    assert st.pg.log_path is not None
    with st.pg.connect() as conn:
        conn.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)
    offset = st.pg.log_path.stat().st_size
    try:
        yield
    finally:
        with st.pg.connect() as conn:
            conn.execute("ALTER SYSTEM RESET log_min_duration_statement")
            conn.execute("SELECT pg_reload_conf()")
        with open(st.pg.log_path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        for entry in _ENTRY_START.split(text):  # a statement's lines stay in one entry
            match = _LOGGED.search(entry.strip())
            if match and "pg_reload_conf" not in match.group(1) and "ALTER SYSTEM" not in match.group(1):
                into[_statement_kind(match.group(1))] += 1


def format_statements(name: str, tally: Counter[str], requests: int) -> list[str]:
    per = max(1, requests)
    total = sum(tally.values())
    lines = [f"  SQL of {name}: {total / per:.1f} statements (round trips) per request over {requests} requests:"]
    lines += [f"    {n / per:5.2f}  {kind}" for kind, n in tally.most_common() if n / per >= 0.05]
    return lines
