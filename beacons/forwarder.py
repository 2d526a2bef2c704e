"""The forwarder: Sightings off the queue, in signed batches, to ``POST {backend}/api/v1/gateway/sightings``.

A batch closes at ``batch_size`` sightings (at most 1000) or ``batch_interval`` seconds after its
first. Answers: 2xx accepted; 408, 429, 5xx, connection errors and timeouts mean the backend is
away: the batch goes to the :class:`~beacons.spool.Spool` and the forwarder retries after an
exponential backoff (or the Retry-After it was given, if longer); any other status refuses the
batch for good: logged at ERROR with the answer's body, counted in ``rejected_batches`` and
``rejected_sightings``, not retried. The spool drains oldest first before any newer batch is sent,
and a batch leaves the spool only once the backend has answered for it. Every attempt is signed
afresh (timestamp and nonce), see :func:`sign`.

Every sighting taken off the queue ends in exactly one counter: ``ignored`` (eddystone_url frames
are not forwarded), ``accepted_sightings``, ``rejected_sightings``, ``spool_dropped_sightings`` (the
spool's bound), ``spool_failed_sightings`` (the spool could not be written: disk full), or it is
still pending (``pending_sightings`` in memory, ``spool_pending_sightings`` on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from beacons.sighting import Sighting
from beacons.spool import Spool

__all__ = [
    "MAX_BATCH",
    "SIGHTINGS_PATH",
    "Forwarder",
    "ForwarderCounters",
    "GatewayKey",
    "Response",
    "encode_batch",
    "new_nonce",
    "parse_key",
    "sign",
    "urllib_transport",
]

log = logging.getLogger(__name__)

SIGHTINGS_PATH = "/api/v1/gateway/sightings"
MAX_BATCH = 1000
_KEY_PREFIX = "gk_"
_URLSAFE_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
_MAX_LOGGED_BODY = 2000


# --- keys and signatures --------------------------------------------------------------------------


class GatewayKey(NamedTuple):
    """A gateway key ``gk_<gateway_id>.<version>.<secret>`` taken apart."""

    gateway_id: int
    version: int
    secret: str

    def __repr__(self) -> str:
        return f"GatewayKey(gateway_id={self.gateway_id}, version={self.version}, secret=...)"

    @property
    def key_id(self) -> str:
        """The ``X-Gateway-Key-Id`` header value, ``<gateway_id>.<version>``."""
        return f"{self.gateway_id}.{self.version}"


def parse_key(text: str) -> GatewayKey:
    """Parse ``gk_<gateway_id>.<version>.<secret>``; ValueError (which never shows the secret) if malformed."""
    text = text.strip()
    parts = text[len(_KEY_PREFIX):].split(".", 2) if text.startswith(_KEY_PREFIX) else []
    if (len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or not parts[2]
            or not set(parts[2]) <= _URLSAFE_B64 or not parts[0].isascii() or not parts[1].isascii()):
        raise ValueError("a gateway key looks like gk_<gateway_id>.<version>.<secret>")
    return GatewayKey(int(parts[0]), int(parts[1]), parts[2])


def new_nonce() -> str:
    """32 random lowercase hex digits."""
    return secrets.token_hex(16)


def sign(key: str | GatewayKey, body: bytes, timestamp: int, nonce: str) -> dict[str, str]:
    """The request headers of a signed batch: a pure function of its arguments.

    ``X-Gateway-Signature`` is the lowercase hex HMAC-SHA256 under ``secret.encode("ascii")`` of
    ``f"{timestamp}\\n{nonce}\\n".encode() + body``. Sign every attempt with a fresh ``timestamp``
    (``int(time.time())``) and ``nonce`` (:func:`new_nonce`): the backend refuses replays.
    """
    k = parse_key(key) if isinstance(key, str) else key
    message = f"{timestamp}\n{nonce}\n".encode() + body
    return {
        "Content-Type": "application/json",
        "X-Gateway-Key-Id": k.key_id,
        "X-Gateway-Timestamp": str(int(timestamp)),
        "X-Gateway-Nonce": nonce,
        "X-Gateway-Signature": hmac.new(k.secret.encode("ascii"), message, hashlib.sha256).hexdigest(),
    }


def encode_batch(sightings: list[dict[str, Any]]) -> bytes:
    """The request body ``{"sightings": [...]}`` as compact JSON."""
    return json.dumps({"sightings": sightings}, separators=(",", ":"), allow_nan=False).encode()


# --- the HTTP seam --------------------------------------------------------------------------------


class Response(NamedTuple):
    """What the backend answered: status, headers (lowercase names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


Transport = Callable[[str, bytes, dict[str, str], float], Response]
"""``(url, body, headers, timeout) -> Response``; raises OSError (or anything) when there is no answer."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a GET without the body; a redirect is an answer here.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def urllib_transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """POST with urllib (blocking: the forwarder runs it in a thread)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()}, exc.read())


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# --- the forwarder --------------------------------------------------------------------------------


@dataclass
class ForwarderCounters:
    """What the forwarder did since it started (see the module docstring for how they add up)."""

    received: int = 0
    ignored: int = 0
    accepted_batches: int = 0
    accepted_sightings: int = 0
    rejected_batches: int = 0
    rejected_sightings: int = 0
    spooled_batches: int = 0
    spooled_sightings: int = 0
    spool_failed_sightings: int = 0
    send_failures: int = 0


class _Batch(NamedTuple):
    n: int
    body: bytes


_ACCEPTED, _REJECTED, _UNAVAILABLE = "accepted", "rejected", "unavailable"


class Forwarder:
    """Batch, sign and POST the sightings of ``queue``; spool what the backend cannot take now.

    Run :meth:`run` as a task; :meth:`stop` makes it send (or spool) what it holds and return.
    ``transport`` replaces urllib (tests); ``clock`` gives the signature's unix time.
    """

    def __init__(
        self,
        queue: asyncio.Queue[Sighting],
        *,
        backend_url: str,
        key: str | GatewayKey,
        spool: Spool,
        batch_size: int = 500,
        batch_interval: float = 1.0,
        timeout: float = 10.0,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        retry_after_max: float = 600.0,
        memory_batches: int = 16,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        if batch_interval <= 0:
            raise ValueError("batch_interval must be positive")
        self.queue = queue
        self.url = backend_url.rstrip("/") + SIGHTINGS_PATH
        self.key = parse_key(key) if isinstance(key, str) else key
        self.spool = spool
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.timeout = timeout
        self.counters = ForwarderCounters()
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retry_after_max = retry_after_max
        self._memory_max = memory_batches
        self._transport = transport or urllib_transport
        self._clock = clock
        self._partial: list[dict[str, Any]] = []
        self._memory: deque[_Batch] = deque()
        self._backoff = retry_initial
        self._retry_at = 0.0  # loop time before which the backend counts as away
        self._failures_in_a_row = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    # --- counters ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The counters, plus what is pending in memory and in the spool."""
        out: dict[str, int] = asdict(self.counters)
        out["pending_sightings"] = len(self._partial) + sum(b.n for b in self._memory)
        out["spool_pending_batches"] = self.spool.pending_batches
        out["spool_pending_sightings"] = self.spool.pending_sightings
        out["spool_bytes"] = self.spool.size_bytes
        out["spool_dropped_sightings"] = self.spool.dropped_sightings
        return out

    # --- the tasks ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Collect and send until :meth:`stop`; then send or spool everything held, and return."""
        collector = asyncio.create_task(self._collect(), name="forwarder collect")
        sender = asyncio.create_task(self._send_loop(), name="forwarder send")
        try:
            await self._stopping.wait()
        finally:
            self._stopping.set()
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
            # The sender finishes the request it has in flight (bounded by the timeout), then returns.
            self._wake.set()
            try:
                await sender
            finally:
                await self._flush()
        log.info("forwarder stopped: %s", self.stats())

    def stop(self) -> None:
        """Ask :meth:`run` to flush and return (call on the forwarder's event loop)."""
        self._stopping.set()
        self._wake.set()

    def _take(self, sighting: Sighting) -> None:
        self.counters.received += 1
        if sighting.kind == "eddystone_url":
            self.counters.ignored += 1
            return
        self._partial.append(sighting.to_json())

    def _seal(self) -> None:
        if self._partial:
            sightings, self._partial = self._partial, []
            self._memory.append(_Batch(len(sightings), encode_batch(sightings)))
            self._wake.set()

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self.queue
        while True:
            self._take(await queue.get())
            deadline = loop.time() + self.batch_interval
            while len(self._partial) < self.batch_size:
                try:
                    sighting = queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        sighting = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                self._take(sighting)
            self._seal()

    async def _wait(self, seconds: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            wait = self._retry_at - loop.time()
            if wait > 0:  # the backend is away: keep what arrives on disk until the next try
                self._spool_memory()
                await self._wait(wait)
                continue
            if self.spool.has_pending:
                if len(self._memory) > self._memory_max:
                    self._spool_memory()  # draining a long spool: keep memory bounded, order intact
                record = self.spool.peek()
                if record is not None:
                    if await self._send(record.n, record.body) != _UNAVAILABLE:
                        self.spool.pop(record)
                    continue
            if self._memory:
                batch = self._memory[0]
                if await self._send(batch.n, batch.body) == _UNAVAILABLE:
                    self._spool_memory()  # this batch first, then the newer ones
                elif self._memory and self._memory[0] is batch:
                    self._memory.popleft()
                continue
            await self._wait(None)

    async def _flush(self) -> None:
        """On stop: drain the queue, then send what memory holds (while the backend answers), spool the rest."""
        while True:
            try:
                self._take(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
            if len(self._partial) >= self.batch_size:
                self._seal()
        self._seal()
        loop = asyncio.get_running_loop()
        if not self.spool.has_pending and self._retry_at <= loop.time():
            while self._memory:
                if await self._send(self._memory[0].n, self._memory[0].body) == _UNAVAILABLE:
                    break
                self._memory.popleft()
        self._spool_memory()

    def _spool_memory(self) -> None:
        while self._memory:
            batch = self._memory.popleft()
            try:
                self.spool.append(batch.n, batch.body)
            except OSError as exc:  # disk full, card gone read-only: lost, but not silently
                self.counters.spool_failed_sightings += batch.n
                log.error("could not spool a batch of %d sightings: %s (%d lost so far)", batch.n, exc,
                          self.counters.spool_failed_sightings)
                continue
            self.counters.spooled_batches += 1
            self.counters.spooled_sightings += batch.n

    # --- one request -------------------------------------------------------------------------

    async def _send(self, n: int, body: bytes) -> str:
        headers = sign(self.key, body, int(self._clock()), new_nonce())
        try:
            response = await asyncio.to_thread(self._transport, self.url, body, headers, self.timeout)
        except Exception as exc:  # no answer: refused, reset, timed out, DNS...
            self._unavailable(f"{type(exc).__name__}: {exc}", None)
            return _UNAVAILABLE
        status = response.status
        if 200 <= status < 300:
            c = self.counters
            c.accepted_batches += 1
            c.accepted_sightings += n
            if self._failures_in_a_row:
                log.info("backend answers again after %d failed attempts", self._failures_in_a_row)
            self._failures_in_a_row = 0
            self._backoff = self._retry_initial
            return _ACCEPTED
        if status in (408, 429) or status >= 500:
            self._unavailable(f"HTTP {status}", response.headers.get("retry-after"))
            return _UNAVAILABLE
        self.counters.rejected_batches += 1
        self.counters.rejected_sightings += n
        log.error("backend refused a batch of %d sightings: HTTP %d: %s", n, status,
                  response.body[:_MAX_LOGGED_BODY].decode("utf-8", "replace"))
        return _REJECTED

    def _unavailable(self, reason: str, retry_after: str | None) -> None:
        self.counters.send_failures += 1
        self._failures_in_a_row += 1
        # Jitter, so that a fleet of gateways does not come back at the same instant.
        delay = self._backoff * random.uniform(0.8, 1.2)
        self._backoff = min(self._backoff * 2, self._retry_max)
        asked = retry_after_seconds(retry_after, time.time())
        if asked is not None:
            delay = max(delay, min(asked, self._retry_after_max))
        self._retry_at = asyncio.get_running_loop().time() + delay
        log.warning("backend unavailable (%s); spooling, next try in %.1f s (%d pending in the spool)",
                    reason, delay, self.spool.pending_sightings + sum(b.n for b in self._memory))
