"""The domain's :class:`~mallapp.domain.notifications.Senders`: live frames through Redis, subscribe messages through WeChat."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from redis import Redis

from mallapp.adapters import live, wechat


@dataclass(frozen=True)
class WeChatAndLive:
    """Messages out: the live servers listen on this Redis; subscribe messages go by this WeChat client."""

    wechat: wechat.MallWeChatClient
    redis: Redis

    def online(self, member_ids: Iterable[int]) -> set[int]:
        return live.online(self.redis, member_ids)

    def publish_live(self, messages: Collection[tuple[int, str]]) -> list[int]:
        return live.publish_many(self.redis, messages)

    def send_subscribe(self, openid: str, template_id: str, data: dict[str, dict[str, str]],
                       page: str | None) -> int:
        return wechat.send_subscribe_message(self.wechat, openid, template_id, data, page=page)
