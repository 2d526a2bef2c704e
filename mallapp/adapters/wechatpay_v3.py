"""WeChat Pay API v3 over signed HTTP: the :class:`~mallapp.adapters.wechatpay.PayClient` mallapp uses."""

from __future__ import annotations

from mallapp.adapters.wechatpay import PayClient
from mallapp.errors import ServiceUnavailable
from mallapp.settings import Settings


def build_client(settings: Settings) -> PayClient:
    """The client for ``[wechatpay]``; refuses when no merchant account is configured."""
    cfg = settings.wechatpay
    if not cfg.mchid:
        raise ServiceUnavailable("WeChat Pay is not configured ([wechatpay] mchid).", code="wechatpay.unconfigured")
    return WeChatPayV3.from_settings(cfg)  # noqa: F821  (written by the WeChat Pay step)
