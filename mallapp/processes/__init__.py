"""The mall's processes: the one table the Procfile, ``mallapp <process>`` and ``mallapp demo`` read.

``PROCFILE`` is every line of the Procfile (``mallapp procfile`` prints it; a test keeps the file
equal to it). ``PROCESSES`` are the long-running ones that :mod:`mallapp.processes.runner` runs.
"""

from __future__ import annotations

from mallapp.processes import clock, live, offers, sends, worker
from mallapp.processes.runner import Process

__all__ = ["PROCESSES", "PROCFILE", "procfile"]

PROCESSES: tuple[Process, ...] = (worker.PROCESS, offers.PROCESS, live.PROCESS, clock.PROCESS, sends.PROCESS)

# Procfile name -> command. The long-running processes' lines add only what production needs.
PROCFILE: tuple[tuple[str, str], ...] = (
    ("release", "mallapp db upgrade"),
    ("web", "gunicorn --workers ${WEB_CONCURRENCY:-4} --bind 0.0.0.0:${PORT:-8000} "
            '--logger-class mallapp.api.gunicorn_logging.Logger "mallapp:create_app()"'),
    *((p.name, f"mallapp {p.name}" + (" --host 0.0.0.0" if p is live.PROCESS else "")) for p in PROCESSES),
)


def procfile() -> str:
    """The Procfile's text."""
    return "".join(f"{name}: {command}\n" for name, command in PROCFILE)
