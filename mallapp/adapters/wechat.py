"""WeChat server APIs for mallapp: login, phone numbers, subscribe messages.

A wechatpy client routed through a configurable ``api_base`` (WeChat itself, or the emulator in
:mod:`mallapp.devtools.wechat_emulator`), whose access token lives in shared storage (Redis) with
its expiry, so every process uses and refreshes one token. Every failure becomes a
:mod:`mallapp.errors` error with a stable code; the app secret, access tokens and session keys
never reach an exception message, its details, or a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import requests
from wechatpy import WeChatClient
from wechatpy.client.api.base import BaseWeChatAPI
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage
from wechatpy.session.redisstorage import RedisStorage

from mallapp.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MallError,
    RateLimited,
    RuleViolation,
    UpstreamError,
)

if TYPE_CHECKING:
    from redis import Redis

    from mallapp.settings import Settings

logger = logging.getLogger(__name__)

WECHAT_API_BASE = "https://api.weixin.qq.com"
# Refresh this long before WeChat's own expiry, so no request races a token's last seconds.
TOKEN_REFRESH_MARGIN_SECONDS = 300
# invalid credential / invalid access_token / access_token expired
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})

_ERRCODES: dict[int, tuple[type[MallError], str, str]] = {
    40029: (InvalidInput, "wechat.invalid_code", "The WeChat code is invalid or has expired."),
    40163: (Conflict, "wechat.code_used", "The WeChat code has already been used."),
    45011: (RateLimited, "wechat.rate_limited", "WeChat is limiting requests; try again shortly."),
    40226: (Forbidden, "wechat.risky_user", "WeChat flagged this user as risky."),
    43101: (RuleViolation, "wechat.no_quota", "The user has not agreed to receive this message."),
    40003: (InvalidInput, "wechat.invalid_openid", "The openid does not belong to this mini-program."),
}


class MallWeChatClient(WeChatClient):
    """A wechatpy ``WeChatClient`` that talks to ``api_base`` and shares its token through storage."""

    def __init__(self, appid: str, secret: str, *, api_base: str = WECHAT_API_BASE,
                 session: SessionStorage | None = None, timeout: float | None = None,
                 auto_retry: bool = True, clock: Callable[[], float] = time.time,
                 refresh_margin: int = TOKEN_REFRESH_MARGIN_SECONDS):
        # wechatpy's own auto_retry refreshes and retries on every token error, forever if WeChat
        # keeps refusing; this class retries once instead (see _request).
        super().__init__(appid, secret, session=session, timeout=timeout, auto_retry=False)
        self.api_base = api_base.rstrip("/")
        self.retry_on_token_error = auto_retry
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.API_BASE_URL = f"{self.api_base}/cgi-bin/"
        # wechatpy built one API object per client in __new__; point each at api_base.
        for api in list(vars(self).values()):
            if isinstance(api, BaseWeChatAPI) and getattr(api, "API_BASE_URL", ""):
                api.API_BASE_URL = self._rebase(api.API_BASE_URL)
        self.wxa.API_BASE_URL = f"{self.api_base}/"

    def _rebase(self, url: str) -> str:
        if url.startswith(WECHAT_API_BASE + "/"):
            return self.api_base + url[len(WECHAT_API_BASE):]
        return url

    @property
    def expires_at_key(self) -> str:
        """Return the storage key holding when the shared access token must be refreshed."""
        return f"{self.access_token_key}_expires_at"

    @property
    def access_token(self) -> str:
        """Return a valid access token, fetching one when storage has none or it is due."""
        # wechatpy keeps expires_at on the instance, so a token another process fetched would look
        # user-provided (valid forever); the expiry is kept in storage next to the token instead.
        token = self.session.get(self.access_token_key)
        if token:
            expires_at = self.session.get(self.expires_at_key)
            # No expiry recorded: a token given to the constructor; trust it until WeChat says no.
            if expires_at is None or self.clock() < float(expires_at):
                return token
        return self.fetch_access_token()["access_token"]

    def fetch_access_token(self) -> dict[str, Any]:
        """Fetch a new access token from ``api_base`` and store it for every process."""
        logger.info("fetching a WeChat access token")
        res = self._http.get(
            f"{self.api_base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        try:
            res.raise_for_status()
        except requests.RequestException:
            raise WeChatClientException(None, None, client=self, request=res.request,
                                        response=res) from None
        result = self._decode_result(res)
        if not isinstance(result, dict):
            raise WeChatClientException(None, "not JSON", client=self, request=res.request, response=res)
        errcode = int(result.get("errcode") or 0)
        if errcode != 0:
            raise WeChatClientException(errcode, result.get("errmsg"), client=self, request=res.request,
                                        response=res)
        if not result.get("access_token"):
            raise WeChatClientException(None, "no access_token", client=self, request=res.request,
                                        response=res)
        expires_in = int(result.get("expires_in", 7200))
        lifetime = max(expires_in - self.refresh_margin, expires_in // 2, 1)
        # Storage TTL (Redis) and the stored timestamp agree, so any storage expires the token.
        self.session.set(self.expires_at_key, self.clock() + lifetime, lifetime)
        self.session.set(self.access_token_key, result["access_token"], lifetime)
        self.expires_at = int(self.clock()) + lifetime
        return result

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        url_or_endpoint = self._rebase(url_or_endpoint)
        if "api_base_url" in kwargs:
            kwargs["api_base_url"] = self._rebase(kwargs["api_base_url"])
        # wechatpy writes the token into params in place; keep the caller's dict untouched.
        params = kwargs.get("params") or {}
        sent = dict(params) if isinstance(params, dict) else params
        try:
            return super()._request(method, url_or_endpoint, **{**kwargs, "params": sent})
        except WeChatClientException as exc:
            used_token = isinstance(sent, dict) and sent.get("access_token") is not None
            if not (self.retry_on_token_error and used_token and exc.errcode in TOKEN_ERRCODES):
                raise
            logger.info("WeChat refused the access token (errcode %s); fetching a new one", exc.errcode)
        retry = {**sent, "access_token": self.fetch_access_token()["access_token"]}
        return super()._request(method, url_or_endpoint, **{**kwargs, "params": retry})


def build_client(settings: Settings, redis: Redis) -> MallWeChatClient:
    """Build the WeChat client for ``settings.wechat``, sharing its access token through Redis."""
    wechat = settings.wechat
    return MallWeChatClient(
        wechat.appid,
        wechat.secret,
        api_base=wechat.api_base,
        session=RedisStorage(redis, prefix="wechat"),
        timeout=wechat.timeout_s,
    )


@dataclass(frozen=True)
class WeChatSession:
    """Who a wx.login code belongs to; ``session_key`` stays out of repr and logs."""

    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


class PhoneNumber(TypedDict):
    phone_number: str  # with the country code for numbers outside mainland China
    pure_phone_number: str
    country_code: str


def code_to_session(client: MallWeChatClient, code: str) -> WeChatSession:
    """Exchange a wx.login code for the user's openid, unionid and session key."""
    if not code:
        raise InvalidInput("A WeChat login code is required.", code="wechat.invalid_code")
    # code2Session needs no access token; None keeps wechatpy from fetching one (requests drops it).
    result = _call("code2Session", client.get, "sns/jscode2session", api_base_url=client.wxa.API_BASE_URL,
                   params={"appid": client.appid, "secret": client.secret, "js_code": code,
                           "grant_type": "authorization_code", "access_token": None})
    openid, session_key = result.get("openid"), result.get("session_key")
    if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
        raise _malformed("code2Session")
    unionid = result.get("unionid")
    return WeChatSession(openid=openid, unionid=unionid if isinstance(unionid, str) and unionid else None,
                         session_key=session_key)


SESSION_KEY_TTL_SECONDS = 7 * 24 * 3600


def _session_key_name(member_id: int | str) -> str:
    return f"wechat:session_key:{member_id}"


def remember_session_key(redis: Redis, member_id: int | str, session: WeChatSession,
                         ttl_seconds: int = SESSION_KEY_TTL_SECONDS) -> None:
    """Keep the member's latest session_key in Redis (to decrypt encryptedData later)."""
    # Each wx.login may rotate the key, so the newest login always wins.
    redis.set(_session_key_name(member_id), session.session_key, ex=ttl_seconds)


def forget_session_key(redis: Redis, member_id: int | str) -> None:
    """Drop the member's session_key (an erased account)."""
    redis.delete(_session_key_name(member_id))


def recall_session_key(redis: Redis, member_id: int | str) -> str | None:
    """Return the member's latest session_key, or None when unknown or expired."""
    value = redis.get(_session_key_name(member_id))
    return value.decode() if isinstance(value, bytes) else value


def get_phone_number(client: MallWeChatClient, code: str) -> PhoneNumber:
    """Exchange a getPhoneNumber button code for the user's phone number."""
    if not code:
        raise InvalidInput("A WeChat phone code is required.", code="wechat.invalid_code")
    result = _call("getuserphonenumber", client.post, "wxa/business/getuserphonenumber",
                   api_base_url=client.wxa.API_BASE_URL, data={"code": code})
    info = result.get("phone_info")
    if not isinstance(info, dict) or not info.get("purePhoneNumber"):
        raise _malformed("getuserphonenumber")
    pure = str(info["purePhoneNumber"])
    return PhoneNumber(phone_number=str(info.get("phoneNumber") or pure), pure_phone_number=pure,
                       country_code=str(info.get("countryCode") or ""))


def send_subscribe_message(client: MallWeChatClient, openid: str, template_id: str,
                           data: dict[str, Any], page: str | None = None) -> int:
    """Send a subscribe message and return WeChat's msgid."""
    body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
    if page is not None:
        body["page"] = page
    result = _call("subscribeMessage.send", client.post, "message/subscribe/send",
                   api_base_url=client.API_BASE_URL, data=body)
    msgid = result.get("msgid")
    if not isinstance(msgid, int):
        raise _malformed("subscribeMessage.send")
    return msgid


def _call(api: str, method: Callable[..., Any], endpoint: str, **kwargs: Any) -> dict[str, Any]:
    """Call one WeChat API and return its JSON object, or raise the mapped mallapp error."""
    error: MallError | None = None
    try:
        result = method(endpoint, **kwargs)
    except WeChatClientException as exc:
        error = _map_exception(api, exc)
    except requests.RequestException as exc:
        # The exception text holds the URL, and with it the secret or the token: log the type only.
        logger.warning("WeChat %s unreachable: %s", api, type(exc).__name__)
        error = UpstreamError("WeChat cannot be reached right now.", code="wechat.unreachable",
                              details={"reason": "timeout" if isinstance(exc, requests.Timeout)
                                       else "connection"})
    if error is not None:
        # Raised outside the except block, so no chained exception carries a URL with secrets.
        raise error
    if not isinstance(result, dict):
        raise _malformed(api)
    return result


def _map_exception(api: str, exc: WeChatClientException) -> MallError:
    if exc.errcode is None:
        status = getattr(exc.response, "status_code", None)
        logger.warning("WeChat %s failed: HTTP %s", api, status)
        details: dict[str, Any] = {"status": status} if status else {}
        return UpstreamError("WeChat cannot be reached right now.", code="wechat.unreachable",
                             details=details)
    errcode = int(exc.errcode)
    logger.warning("WeChat %s answered errcode %s: %s", api, errcode, exc.errmsg)
    known = _ERRCODES.get(errcode)
    if known is not None:
        cls, code, message = known
        return cls(message, code=code, details={"errcode": errcode})
    return UpstreamError(f"WeChat refused the request (errcode {errcode}).", code="wechat.error",
                         details={"errcode": errcode})


def _malformed(api: str) -> UpstreamError:
    logger.warning("WeChat %s answered something that is not its documented JSON", api)
    return UpstreamError("WeChat gave an unexpected answer.", code="wechat.unreachable",
                         details={"reason": "malformed"})
