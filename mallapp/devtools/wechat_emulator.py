"""A WeChat API emulator: a real loopback HTTP server that speaks WeChat's wire protocol.

mallapp's client cannot tell it from ``api.weixin.qq.com``: the same paths, query parameters,
JSON bodies and error codes, and HTTP 200 even for an ``errcode`` answer, as WeChat does.

Tests in the same process drive it through :class:`WeChatEmulator`'s methods; other processes
(the demo run, gunicorn workers) use the same functions over HTTP under ``/__emulator/``::

    POST /__emulator/login            {"openid"?, "unionid"?}                -> {"code", "openid"}
    POST /__emulator/phone-code       {"openid", "phone"?, "country_code"?}  -> {"code"}
    POST /__emulator/subscriptions    {"openid", "template_id", "count"?}    -> {"remaining"}
    POST /__emulator/request-subscribe-message  {"openid", "results": {"<template id>": "accept" | "reject"}}
                                      -> {"errMsg", "<template id>": ...}: the user's answer to
                                         wx.requestSubscribeMessage, one quota per accept, as WeChat grants
                                         it on the client; the mini-program then posts the answer to
                                         POST /api/v1/me/subscriptions
    POST /__emulator/templates        {"template_id"}                        -> {"template_id"}
    POST /__emulator/script           {"path", "response"? | "status"?, "times"?, "delay_seconds"?}
    POST /__emulator/invalidate-tokens
    POST /__emulator/reset
    GET  /__emulator/messages         -> {"messages": [...]}
    GET  /__emulator/requests         -> {"requests": [...]}

WeChat Pay API v3 (``/v3/...``) and its hooks (``/__emulator/wechatpay/...``) are
:mod:`mallapp.devtools.wechatpay_emulator`'s, reached through :attr:`WeChatEmulator.pay` once
:meth:`WeChatEmulator.configure_pay` gave it the keys.

Run standalone: ``python -m mallapp.devtools.wechat_emulator --port 8011 --appid X --secret Y``
(add ``--wechatpay-keys DIR`` for WeChat Pay with the dev keys kept in DIR).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mallapp.devtools import wechatpay_keys
from mallapp.devtools.loopback import LoopbackServer, Reply
from mallapp.devtools.wechatpay_emulator import WeChatPayEmulator

CODE_TTL_SECONDS = 300  # wx.login and phone codes live five minutes, per WeChat's documentation
DEFAULT_TOKEN_TTL_SECONDS = 7200
DEFAULT_TEMPLATES = ("demo-points-changed", "demo-points-expiring", "demo-gift-ready", "demo-deal-announced")
CONTROL_PREFIX = "/__emulator/"

Answer = dict[str, Any]


def _error(errcode: int, errmsg: str) -> Answer:
    return {"errcode": errcode, "errmsg": errmsg}


@dataclass
class _User:
    openid: str
    unionid: str | None = None
    session_key: str = ""


@dataclass
class _LoginCode:
    openid: str
    session_key: str
    issued_at: float
    used: bool = False


@dataclass
class _PhoneCode:
    openid: str
    phone: str
    country_code: str
    issued_at: float
    used: bool = False


@dataclass
class _Scripted:
    remaining: int
    status: int
    answer: Answer | None
    delay_seconds: float = 0.0


@dataclass
class _State:
    users: dict[str, _User] = field(default_factory=dict)
    login_codes: dict[str, _LoginCode] = field(default_factory=dict)
    phone_codes: dict[str, _PhoneCode] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expires at
    stable_token: str | None = None
    templates: set[str] = field(default_factory=lambda: set(DEFAULT_TEMPLATES))
    quota: dict[tuple[str, str], int] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    scripts: dict[str, deque[_Scripted]] = field(default_factory=dict)
    next_msgid: int = 2_000_000_001


class _UnknownControl(Exception):
    """No control endpoint by that method and name."""


def _normalize_path(path: str) -> str:
    return "/" + path.lstrip("/")


class WeChatEmulator(LoopbackServer):
    """Emulate the WeChat server APIs mallapp uses, over real HTTP on loopback."""

    thread_name = "wechat-emulator"
    server_version = "WeChatEmulator/1.0"

    def __init__(self, appid: str, secret: str, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, token_ttl: int = DEFAULT_TOKEN_TTL_SECONDS):
        super().__init__(host, port)
        self.appid = appid
        self.secret = secret
        self.clock = clock
        self.token_ttl = token_ttl
        self._lock = threading.RLock()
        self._state = _State()
        # WeChat Pay (API v3): its own state and handlers, for the merchant configure_pay names.
        self.pay = WeChatPayEmulator(appid, clock)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path.startswith("/v3/"):
            return self.pay.respond(method, path, headers, body)
        return super()._respond(method, path, headers, body)

    def _encode(self, status: int, answer: Answer | None) -> tuple[bytes, str]:
        if answer is None:  # an HTTP-level refusal, as WeChat's front end gives it: the status phrase
            return HTTPStatus(status).phrase.encode(), "text/plain"
        return json.dumps(answer, ensure_ascii=False).encode("utf-8"), "application/json; encoding=utf-8"

    # -- control API (the same functions are served under /__emulator/) ----------------------

    def login(self, openid: str | None = None, unionid: str | None = None) -> str:
        """Simulate wx.login for a user and return the one-time login code."""
        return self._login(openid, unionid)[0]

    def _login(self, openid: str | None, unionid: str | None) -> tuple[str, str]:
        with self._lock:
            user = self._user(openid or "o" + secrets.token_urlsafe(20)[:27])
            if unionid is not None:
                user.unionid = unionid
            # WeChat may rotate session_key on every wx.login; rotating always is the strict case.
            # Like WeChat's, it is base64 of 16 bytes, so it works as an AES-128 key for encryptedData.
            user.session_key = base64.b64encode(secrets.token_bytes(16)).decode()
            code = secrets.token_hex(16)
            self._state.login_codes[code] = _LoginCode(user.openid, user.session_key, self.clock())
            return code, user.openid

    def phone_code(self, openid: str, phone: str = "13800138000", country_code: str = "86") -> str:
        """Simulate a getPhoneNumber button tap and return the one-time phone code."""
        with self._lock:
            self._user(openid)
            code = secrets.token_hex(32)
            self._state.phone_codes[code] = _PhoneCode(openid, phone, country_code, self.clock())
            return code

    def grant_subscription(self, openid: str, template_id: str, count: int = 1) -> int:
        """Record ``count`` accepted wx.requestSubscribeMessage opt-ins; return the remaining quota."""
        with self._lock:
            self._user(openid)
            key = (openid, template_id)
            self._state.quota[key] = self._state.quota.get(key, 0) + count
            return self._state.quota[key]

    def request_subscribe_message(self, openid: str, results: dict[str, str]) -> dict[str, str]:
        """The user answering wx.requestSubscribeMessage: WeChat grants one quota per accepted template on the
        client's side; return what the call's success callback gets (``results`` and ``errMsg``)."""
        for template_id, result in results.items():
            if result == "accept":
                self.grant_subscription(openid, template_id)
        return {"errMsg": "requestSubscribeMessage:ok", **results}

    def register_template(self, template_id: str) -> None:
        """Make a subscribe-message template id known, as if added in the WeChat console."""
        with self._lock:
            self._state.templates.add(template_id)

    def script(self, path: str, response: Answer, times: int = 1, delay_seconds: float = 0.0) -> None:
        """Answer the next ``times`` calls to ``path`` with ``response`` (HTTP 200)."""
        self._enqueue(path, _Scripted(times, HTTPStatus.OK, dict(response), delay_seconds))

    def script_status(self, path: str, http_status: int, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``path`` with a bare HTTP ``http_status``."""
        self._enqueue(path, _Scripted(times, http_status, None))

    def _enqueue(self, path: str, scripted: _Scripted) -> None:
        if scripted.remaining < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._state.scripts.setdefault(_normalize_path(path), deque()).append(scripted)

    def invalidate_tokens(self) -> None:
        """Forget every issued access token, so the next use answers 40001."""
        with self._lock:
            self._state.tokens.clear()
            self._state.stable_token = None

    def reset(self) -> None:
        """Drop all users, codes, tokens, quotas, scripts and records, and WeChat Pay's orders and refunds."""
        with self._lock:
            self._state = _State()
        self.pay.reset()

    # -- WeChat Pay (the same hooks as self.pay's; docs/wechatpay.md) -----------------------------

    def configure_pay(self, keys: Any) -> None:
        """Give WeChat Pay the merchant's public key, the platform's private key and the APIv3 key
        (a :class:`~mallapp.devtools.wechatpay_keys.DevKeys`)."""
        self.pay.configure(keys)

    def pay_order(self, out_trade_no: str, *, deliver: bool = True, openid: str | None = None,
                  success_time: Any = None) -> tuple[dict[str, str], bytes]:
        """The payer paid the order: see :meth:`WeChatPayEmulator.pay_order`."""
        return self.pay.pay_order(out_trade_no, deliver=deliver, openid=openid, success_time=success_time)

    def fail_next(self, path: str, status: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        """Fault the next WeChat Pay calls under ``path``: see :meth:`WeChatPayEmulator.fail_next`."""
        self.pay.fail_next(path, status, code, **kwargs)

    def orders(self) -> list[Answer]:
        """WeChat Pay's orders, as a query answers them."""
        return self.pay.orders()

    def notifications(self) -> list[Answer]:
        """WeChat Pay's notifications, oldest first."""
        return self.pay.notifications()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Return the subscribe messages WeChat accepted, oldest first."""
        with self._lock:
            return [dict(m) for m in self._state.messages]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Return every WeChat API request received (control calls excluded), oldest first."""
        with self._lock:
            return [dict(r) for r in self._state.requests]

    def request_count(self, path: str) -> int:
        """Return how many requests reached ``path``."""
        path = _normalize_path(path)
        with self._lock:
            return sum(1 for r in self._state.requests if r["path"] == path)

    def _user(self, openid: str) -> _User:
        if not openid:
            raise ValueError("openid must not be empty")
        return self._state.users.setdefault(openid, _User(openid))

    # -- HTTP dispatch ---------------------------------------------------------------------

    def _dispatch(self, method: str, target: str, body: bytes) -> tuple[int, Answer | None, float]:
        """Answer one HTTP request: (status, JSON answer or None for a bare status, delay)."""
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith(CONTROL_PREFIX):
            try:
                return (HTTPStatus.OK, self._control(method, path[len(CONTROL_PREFIX):], body), 0.0)
            except _UnknownControl:
                return HTTPStatus.NOT_FOUND, {"error": "unknown control endpoint"}, 0.0
            except (ValueError, TypeError, KeyError) as exc:
                return HTTPStatus.BAD_REQUEST, {"error": f"{type(exc).__name__}: {exc}"}, 0.0
        with self._lock:
            self._state.requests.append({"method": method, "path": path, "params": query,
                                         "body": body.decode("utf-8", "replace"), "at": self.clock()})
            queue = self._state.scripts.get(path)
            if queue:
                scripted = queue[0]
                scripted.remaining -= 1
                if scripted.remaining == 0:
                    queue.popleft()
                return scripted.status, scripted.answer, scripted.delay_seconds
            route = _ROUTES.get(path)
            if route is None:
                return HTTPStatus.NOT_FOUND, None, 0.0
            wanted, func = route
            if method != wanted:
                return HTTPStatus.OK, _error(43002 if wanted == "POST" else 43001,
                                             f"require {wanted} method"), 0.0
            data: Any = {}
            if method == "POST":
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    return HTTPStatus.OK, _error(47001, "data format error"), 0.0
                if not isinstance(data, dict):
                    return HTTPStatus.OK, _error(47001, "data format error"), 0.0
            return HTTPStatus.OK, func(self, query, data), 0.0

    def _control(self, method: str, name: str, body: bytes) -> Answer:
        data = json.loads(body or b"{}") if method == "POST" else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if name.startswith("wechatpay/"):
            return self.pay.control(method, name[len("wechatpay/"):], data)
        match method, name:
            case "POST", "login":
                code, openid = self._login(data.get("openid"), data.get("unionid"))
                return {"code": code, "openid": openid}
            case "POST", "phone-code":
                extra = {k: str(data[k]) for k in ("phone", "country_code") if k in data}
                return {"code": self.phone_code(str(data["openid"]), **extra)}
            case "POST", "subscriptions":
                remaining = self.grant_subscription(str(data["openid"]), str(data["template_id"]),
                                                    int(data.get("count", 1)))
                return {"openid": data["openid"], "template_id": data["template_id"], "remaining": remaining}
            case "POST", "request-subscribe-message":
                results = data.get("results")
                if not isinstance(results, dict):
                    raise ValueError("give 'results': {template id: accept or reject}")
                return self.request_subscribe_message(str(data["openid"]), {str(k): str(v) for k, v in
                                                                             results.items()})
            case "POST", "templates":
                self.register_template(str(data["template_id"]))
                return {"template_id": data["template_id"]}
            case "POST", "script":
                times = int(data.get("times", 1))
                if "status" in data:
                    self.script_status(str(data["path"]), int(data["status"]), times)
                elif isinstance(data.get("response"), dict):
                    self.script(str(data["path"]), data["response"], times,
                                float(data.get("delay_seconds", 0.0)))
                else:
                    raise ValueError("give a 'response' object or a 'status'")
                return {"ok": True}
            case "POST", "invalidate-tokens":
                self.invalidate_tokens()
                return {"ok": True}
            case "POST", "reset":
                self.reset()
                return {"ok": True}
            case "GET", "messages":
                return {"messages": self.messages}
            case "GET", "requests":
                return {"requests": self.requests}
        raise _UnknownControl(name)

    # -- WeChat endpoints (called with the lock held) ----------------------------------------

    def _check_app(self, appid: str | None, secret: str | None) -> Answer | None:
        if not appid:
            return _error(41002, "appid missing")
        if appid != self.appid:
            return _error(40013, "invalid appid")
        if not secret:
            return _error(41004, "appsecret missing")
        if secret != self.secret:
            return _error(40125, "invalid appsecret")
        return None

    def _issue_token(self) -> Answer:
        token = secrets.token_urlsafe(96)
        self._state.tokens[token] = self.clock() + self.token_ttl
        return {"access_token": token, "expires_in": self.token_ttl}

    def _check_token(self, query: dict[str, str]) -> Answer | None:
        token = query.get("access_token")
        if not token:
            return _error(41001, "access_token missing")
        expires_at = self._state.tokens.get(token)
        if expires_at is None:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if self.clock() >= expires_at:
            return _error(42001, "access_token expired")
        return None

    def _token(self, query: dict[str, str], _body: Answer) -> Answer:
        if query.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        return self._check_app(query.get("appid"), query.get("secret")) or self._issue_token()

    def _stable_token(self, _query: dict[str, str], body: Answer) -> Answer:
        if body.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        failure = self._check_app(body.get("appid"), body.get("secret"))
        if failure:
            return failure
        # Normal mode hands every caller the same token while it is valid; force_refresh replaces it.
        current = self._state.stable_token
        expires_at = self._state.tokens.get(current or "")
        if current and expires_at and expires_at > self.clock() and not body.get("force_refresh"):
            return {"access_token": current, "expires_in": int(expires_at - self.clock())}
        answer = self._issue_token()
        self._state.stable_token = answer["access_token"]
        return answer

    def _code2session(self, query: dict[str, str], _body: Answer) -> Answer:
        failure = self._check_app(query.get("appid"), query.get("secret"))
        if failure:
            return failure
        if query.get("grant_type") != "authorization_code":
            return _error(40002, "invalid grant_type")
        code = query.get("js_code")
        if not code:
            return _error(41008, "missing code")
        login = self._state.login_codes.get(code)
        if login is None or self.clock() - login.issued_at >= CODE_TTL_SECONDS:
            return _error(40029, "invalid code")
        if login.used:
            return _error(40163, "code been used")
        login.used = True
        answer: Answer = {"session_key": login.session_key, "openid": login.openid}
        unionid = self._state.users[login.openid].unionid
        if unionid:
            answer["unionid"] = unionid
        return answer

    def _phone_number(self, query: dict[str, str], body: Answer) -> Answer:
        failure = self._check_token(query)
        if failure:
            return failure
        phone = self._state.phone_codes.get(str(body.get("code") or ""))
        # WeChat answers a reused or stale phone code exactly like an unknown one.
        if phone is None or phone.used or self.clock() - phone.issued_at >= CODE_TTL_SECONDS:
            return _error(40029, "invalid code")
        phone.used = True
        full = phone.phone if phone.country_code == "86" else f"+{phone.country_code}{phone.phone}"
        return {"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": full, "purePhoneNumber": phone.phone, "countryCode": phone.country_code,
            "watermark": {"timestamp": int(phone.issued_at), "appid": self.appid}}}

    def _subscribe_send(self, query: dict[str, str], body: Answer) -> Answer:
        failure = self._check_token(query)
        if failure:
            return failure
        openid = body.get("touser")
        if not isinstance(openid, str) or openid not in self._state.users:
            return _error(40003, "invalid openid")
        template_id = body.get("template_id")
        if template_id not in self._state.templates:
            return _error(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not data:
            return _error(47003, "argument invalid! data is empty")
        for key, item in data.items():
            if not isinstance(item, dict) or not isinstance(item.get("value"), str | int | float):
                return _error(47003, f"argument invalid! data.{key}.value invalid")
        page = body.get("page")
        if page is not None and not isinstance(page, str):
            return _error(41030, "invalid page")
        quota_key = (openid, template_id)
        if self._state.quota.get(quota_key, 0) < 1:
            return _error(43101, "user refuse to accept the msg")
        self._state.quota[quota_key] -= 1
        msgid = self._state.next_msgid
        self._state.next_msgid += 1
        self._state.messages.append({
            "msgid": msgid, "touser": openid, "template_id": template_id, "page": page,
            "data": data, "miniprogram_state": body.get("miniprogram_state", "formal"),
            "lang": body.get("lang", "zh_CN"), "at": self.clock()})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


_ROUTES: dict[str, tuple[str, Callable[[WeChatEmulator, dict[str, str], Answer], Answer]]] = {
    "/cgi-bin/token": ("GET", WeChatEmulator._token),
    "/cgi-bin/stable_token": ("POST", WeChatEmulator._stable_token),
    "/sns/jscode2session": ("GET", WeChatEmulator._code2session),
    "/wxa/business/getuserphonenumber": ("POST", WeChatEmulator._phone_number),
    "/cgi-bin/message/subscribe/send": ("POST", WeChatEmulator._subscribe_send),
}


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m mallapp.devtools.wechat_emulator",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--appid", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL_SECONDS)
    parser.add_argument("--wechatpay-keys", metavar="DIR",
                        help="serve WeChat Pay v3 with the dev keys kept in DIR (made there the first time)")
    args = parser.parse_args(argv)
    emulator = WeChatEmulator(args.appid, args.secret, host=args.host, port=args.port, token_ttl=args.token_ttl)
    if args.wechatpay_keys:
        emulator.configure_pay(wechatpay_keys.load_or_make(Path(args.wechatpay_keys)))
    emulator.serve_until_interrupted(f"WeChat emulator for {args.appid}")


if __name__ == "__main__":
    main()
