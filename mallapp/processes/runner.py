"""The one runner every long-running process shares: arguments, runtime, logs, signals, run, close.

A process is a :class:`Process`: a name, what it adds to the command line, and a ``run`` that
works until its ``stop`` event is set. :func:`run` does the rest the same way for each::

    parse the arguments -> build the runtime -> configure logs -> SIGINT/SIGTERM set stop
        -> process.run(rt, args, stop) -> close the runtime
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mallapp import logs
from mallapp.runtime import Runtime, build_runtime
from mallapp.settings import SettingsError

__all__ = ["Process", "run"]


@dataclass(frozen=True)
class Process:
    """A long-running process of the Procfile, started by ``mallapp <name>``."""

    name: str
    summary: str
    run: Callable[[Runtime, argparse.Namespace, threading.Event], None]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None


def run(process: Process, argv: Sequence[str] | None = None) -> None:
    """Run ``process`` until SIGINT or SIGTERM, then close its runtime."""
    parser = argparse.ArgumentParser(prog=f"mallapp {process.name}", description=process.summary)
    process.arguments(parser)
    args = parser.parse_args(argv)
    try:
        rt = build_runtime()
    except SettingsError as exc:  # a bad configuration is one line, not a traceback
        parser.exit(2, f"{parser.prog}: {exc}\n")
    logs.configure(rt.settings.log_format, rt.settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger(f"mallapp.{process.name}").info("%s starting", process.name)
    try:
        process.run(rt, args, stop)
    finally:
        rt.close()
