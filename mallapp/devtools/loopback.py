"""A threaded HTTP server on loopback for the emulators of outside systems (WeChat, the car park).

An emulator subclasses :class:`LoopbackServer` and answers each request in ``_dispatch``; this module
binds the port, serves in a daemon thread, writes the answers and stops cleanly.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, body bytes, content type, seconds to wait first, extra headers."""

    status: int
    payload: bytes
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class LoopbackServer(ABC):
    """Serve ``_dispatch``'s answers over real HTTP on ``host:port`` (port 0: any free one)."""

    thread_name = "emulator"
    server_version = "Emulator/1.0"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _dispatch(self, method: str, path: str, body: bytes) -> tuple[int, Any, float]:
        """(status, answer or None, seconds to wait before answering) for one request."""

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """The whole reply to one request; by default ``_dispatch``'s answer, encoded, with no extra headers.

        An emulator that reads request headers or signs its answers (WeChat Pay) overrides this.
        """
        status, answer, delay = self._dispatch(method, path, body)
        payload, content_type = self._encode(status, answer)
        return Reply(status, payload, content_type, delay)

    def _encode(self, status: int, answer: Any) -> tuple[bytes, str]:
        """The answer's bytes and content type: JSON, or an empty body for None."""
        if answer is None:
            return b"", "application/json; charset=utf-8"
        return json.dumps(answer, ensure_ascii=False).encode(), "application/json; charset=utf-8"

    @property
    def base_url(self) -> str:
        """The root URL clients are pointed at (no trailing slash); the port is known once started."""
        return f"http://{self.host}:{self.port}"

    def serve_until_interrupted(self, name: str) -> None:
        """Start, say where, and serve in the foreground until Ctrl-C (a ``python -m`` emulator's main)."""
        self.start()
        print(f"{name} listening on {self.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread."""
        if self._server is None:
            server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
            server.daemon_threads = True
            self._server, self.port = server, server.server_address[1]
            # A short poll interval keeps stop() fast; loopback traffic does not care.
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"{self.thread_name}:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler_for(owner: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0 closes every connection, so a stopped emulator really refuses the next call
        # instead of a kept-alive handler thread answering it.
        protocol_version = "HTTP/1.0"
        server_version = owner.server_version

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            reply = owner._respond(method, self.path, dict(self.headers.items()),
                                   self.rfile.read(length) if length else b"")
            if reply.delay:
                time.sleep(reply.delay)
            # A caller that gave up waiting (a client timeout test) has left nobody to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.payload)))
                self.end_headers()
                self.wfile.write(reply.payload)

        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # Request lines carry app secrets and access tokens; keep them off stderr.
            pass

    return Handler
