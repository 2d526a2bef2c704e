"""WeChat Pay API v3 over signed HTTP: the :class:`~mallapp.adapters.wechatpay.PayClient` mallapp uses.

Every request is signed with the merchant key, every answer is verified with WeChat Pay's public key
(an answer that does not verify is ``wechatpay.unavailable``), notifications are verified and decrypted
by :meth:`WeChatPayV3.parse_notification`. docs/wechatpay.md has the wire shapes and a worked example.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from mallapp.adapters import wechatpay_crypto as crypto
from mallapp.adapters.wechatpay import Notice, Order, PayClient, Prepay, Refund
from mallapp.errors import (
    InvalidInput,
    Unconfigured,
    WeChatPayOrderNotFound,
    WeChatPayRefused,
    WeChatPaySignatureInvalid,
    WeChatPayUnavailable,
)
from mallapp.settings import Settings

__all__ = ["WeChatPayV3", "build_client", "parse_time", "rfc3339"]

logger = logging.getLogger(__name__)

# WeChat Pay writes its times in China Standard Time (2026-03-10T10:15:00+08:00).
CHINA = ZoneInfo("Asia/Shanghai")
OUT_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{6,64}$")
NOT_FOUND_CODES = {"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS"}
USER_AGENT = "mallapp-wechatpay/1.0"


def rfc3339(instant: datetime) -> str:
    """An aware instant as WeChat Pay writes it: ``2026-03-10T10:15:00+08:00``."""
    if instant.tzinfo is None:
        raise InvalidInput("WeChat Pay times must be aware.", code="wechatpay.time_invalid")
    return instant.astimezone(CHINA).isoformat(timespec="seconds")


def parse_time(text: Any) -> datetime | None:
    """WeChat Pay's RFC 3339 time as an aware UTC instant, or None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else None


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == wanted), "")


def _order(data: Mapping[str, Any]) -> Order:
    amount = data.get("amount") or {}
    payer = data.get("payer") or {}
    return Order(out_trade_no=str(data["out_trade_no"]), trade_state=data["trade_state"],
                 total_fen=int(amount["total"]), transaction_id=data.get("transaction_id") or None,
                 success_time=parse_time(data.get("success_time")), payer_openid=payer.get("openid") or None)


def _refund(data: Mapping[str, Any]) -> Refund:
    amount = data.get("amount") or {}
    return Refund(out_refund_no=str(data["out_refund_no"]), out_trade_no=str(data["out_trade_no"]),
                  refund_fen=int(amount["refund"]), status=data.get("status") or data["refund_status"],
                  refund_id=data.get("refund_id") or None, success_time=parse_time(data.get("success_time")))


class WeChatPayV3:
    """A :class:`~mallapp.adapters.wechatpay.PayClient` over WeChat Pay's signed JSON API at ``api_base``."""

    def __init__(self, *, api_base: str, appid: str, mchid: str, merchant_serial: str,
                 private_key: rsa.RSAPrivateKey, platform_public_key: rsa.RSAPublicKey, platform_serial: str = "",
                 apiv3_key: str, notify_url: str, timeout: float = 5.0, retries: int = 1, window_s: int = 300,
                 clock: Callable[[], float] = time.time, http: requests.Session | None = None):
        self.api_base = api_base.rstrip("/")
        self.appid = appid
        self.mchid = mchid
        self.merchant_serial = merchant_serial
        self._key = private_key
        self._platform_key = platform_public_key
        self.platform_serial = platform_serial
        self._apiv3_key = apiv3_key
        self.notify_url = notify_url
        self.timeout = timeout
        self.retries = retries
        self.window_s = window_s
        self.clock = clock
        self._http = http or requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings) -> WeChatPayV3:
        """The client ``[wechatpay]`` (and ``[wechat] appid``) describe; 503 ``wechatpay.unconfigured`` if incomplete."""
        cfg = settings.wechatpay

        def pem(text: str, path: str, what: str) -> str:
            if text:
                return text
            if path:
                try:
                    return Path(path).read_text(encoding="ascii")
                except (OSError, UnicodeDecodeError) as exc:
                    raise Unconfigured(f"WeChat Pay's {what} cannot be read from {path}: {exc}",
                                             code="wechatpay.unconfigured") from None
            raise Unconfigured(f"WeChat Pay is not configured: no {what} ([wechatpay]).",
                                     code="wechatpay.unconfigured")

        missing = [name for name, value in (("merchant_serial", cfg.merchant_serial), ("notify_url", cfg.notify_url),
                                            ("apiv3_key (MALL_WECHATPAY_APIV3_KEY)", cfg.apiv3_key)) if not value]
        if missing:
            raise Unconfigured(f"WeChat Pay is not configured: [wechatpay] {', '.join(missing)} missing.",
                                     code="wechatpay.unconfigured")
        if len(cfg.apiv3_key.encode()) != 32:
            raise Unconfigured("The WeChat Pay APIv3 key must be 32 characters.", code="wechatpay.unconfigured")
        try:
            private_key = crypto.load_private_key(pem(cfg.private_key, cfg.private_key_path, "merchant private key"))
            public_key = crypto.load_public_key(pem(cfg.platform_public_key, cfg.platform_public_key_path,
                                                    "platform public key"))
        except ValueError as exc:
            raise Unconfigured(f"WeChat Pay's keys cannot be read: {exc}", code="wechatpay.unconfigured") from None
        return cls(api_base=cfg.api_base, appid=settings.wechat.appid, mchid=cfg.mchid,
                   merchant_serial=cfg.merchant_serial, private_key=private_key, platform_public_key=public_key,
                   platform_serial=cfg.platform_serial, apiv3_key=cfg.apiv3_key, notify_url=cfg.notify_url,
                   timeout=cfg.timeout_s, retries=cfg.retries, window_s=cfg.window_s)

    # -- the wire ------------------------------------------------------------------------------

    def call(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
             body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one signed request (again after a timeout or a 5xx) and return the verified JSON answer."""
        path_query = path + (f"?{urlencode(query)}" if query else "")
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
            headers = {
                "Authorization": crypto.authorization(self._key, mchid=self.mchid, serial_no=self.merchant_serial,
                                                      method=method, path_query=path_query, body=text,
                                                      timestamp=timestamp, nonce=nonce),
                "Accept": "application/json", "User-Agent": USER_AGENT}
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._http.request(method, self.api_base + path_query, data=text.encode("utf-8"),
                                              headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure = WeChatPayUnavailable("WeChat Pay did not answer in time.",
                                               details={"path": path, "reason": type(exc).__name__})
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return self._answer(path, response)
                failure = WeChatPayUnavailable("WeChat Pay is unavailable; try again shortly.",
                                               details={"path": path, "status": response.status_code})
            logger.warning("wechatpay %s %s: %s (attempt %d of %d)", method, path, failure.details, attempt, attempts)
            if attempt == attempts:
                raise failure
        raise AssertionError("unreachable")

    def _answer(self, path: str, response: requests.Response) -> dict[str, Any]:
        text = response.content.decode("utf-8", "replace")
        # A success must be signed. WeChat Pay leaves some refusals unsigned (SIGN_ERROR: it could not check
        # ours), so an unsigned 4xx is read as a refusal, never as "no such order"; a bad signature never passes.
        unsigned_refusal = response.status_code >= 400 and not _header(response.headers, "Wechatpay-Signature")
        if not unsigned_refusal and not self._signed(response.headers, text):
            raise WeChatPayUnavailable("WeChat Pay's answer did not verify.",
                                       details={"path": path, "status": response.status_code, "reason": "signature"})
        try:
            data = json.loads(text) if text else {}
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            raise WeChatPayUnavailable("WeChat Pay's answer was not understood.",
                                       details={"path": path, "status": response.status_code}) from None
        if response.status_code < 300:
            return data
        code, message = str(data.get("code") or ""), str(data.get("message") or "")
        details = {"path": path, "status": response.status_code, "wechatpay_code": code, "message": message,
                   "signed": not unsigned_refusal}
        if not unsigned_refusal and (response.status_code == 404 or code in NOT_FOUND_CODES):
            raise WeChatPayOrderNotFound("WeChat Pay has no such order.", details=details)
        raise WeChatPayRefused(f"WeChat Pay refused the request: {code or response.status_code} {message}".strip(),
                               details=details)

    def _signed(self, headers: Mapping[str, str], body: str) -> bool:
        """Whether WeChat Pay's signature headers hold for ``body``, with its serial and within the window."""
        timestamp, nonce = _header(headers, "Wechatpay-Timestamp"), _header(headers, "Wechatpay-Nonce")
        signature, serial = _header(headers, "Wechatpay-Signature"), _header(headers, "Wechatpay-Serial")
        if not (timestamp and nonce and signature):
            return False
        if self.platform_serial and serial != self.platform_serial:
            return False
        try:
            if abs(self.clock() - int(timestamp)) > self.window_s:
                return False
        except ValueError:
            return False
        return crypto.verify(self._platform_key, crypto.answer_message(timestamp, nonce, body), signature)

    # -- PayClient ------------------------------------------------------------------------------

    def _order_body(self, out_trade_no: str, description: str, total_fen: int, expires_at: datetime) -> dict[str, Any]:
        if not OUT_NO.match(out_trade_no or "") or len(out_trade_no) > 32:
            raise InvalidInput("out_trade_no must be 6 to 32 letters, digits or _-|*@.", code="wechatpay.order_invalid")
        if not isinstance(total_fen, int) or total_fen < 1:
            raise InvalidInput("A WeChat Pay order is at least 1 fen.", code="wechatpay.order_invalid")
        if not description or len(description.encode()) > 127:
            raise InvalidInput("A WeChat Pay order needs a description of at most 127 bytes.",
                               code="wechatpay.order_invalid")
        return {"appid": self.appid, "mchid": self.mchid, "description": description, "out_trade_no": out_trade_no,
                "time_expire": rfc3339(expires_at), "notify_url": self.notify_url,
                "amount": {"total": total_fen, "currency": "CNY"}}

    def create_jsapi_order(self, *, out_trade_no: str, description: str, total_fen: int, openid: str,
                           expires_at: datetime) -> Prepay:
        if not openid:
            raise InvalidInput("A JSAPI order needs the payer's openid.", code="wechatpay.order_invalid")
        body = {**self._order_body(out_trade_no, description, total_fen, expires_at), "payer": {"openid": openid}}
        prepay_id = self._field(self.call("POST", "/v3/pay/transactions/jsapi", body=body), "prepay_id")
        return Prepay(out_trade_no=out_trade_no, jsapi=self.jsapi_fields(prepay_id), prepay_id=prepay_id)

    def jsapi_fields(self, prepay_id: str) -> dict[str, str]:
        """wx.requestPayment's fields for a prepay id, paySign signed with the merchant key."""
        timestamp, nonce, package = str(int(self.clock())), secrets.token_hex(16), f"prepay_id={prepay_id}"
        pay_sign = crypto.sign(self._key, crypto.pay_sign_message(self.appid, timestamp, nonce, package))
        return {"timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA", "paySign": pay_sign}

    def create_native_order(self, *, out_trade_no: str, description: str, total_fen: int,
                            expires_at: datetime) -> Prepay:
        body = self._order_body(out_trade_no, description, total_fen, expires_at)
        code_url = self._field(self.call("POST", "/v3/pay/transactions/native", body=body), "code_url")
        return Prepay(out_trade_no=out_trade_no, code_url=code_url)

    def query_order(self, out_trade_no: str) -> Order:
        data = self.call("GET", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}",
                         query={"mchid": self.mchid})
        try:
            return _order(data)
        except (KeyError, TypeError, ValueError):
            raise WeChatPayUnavailable("WeChat Pay's order was not understood.",
                                       details={"out_trade_no": out_trade_no}) from None

    def close_order(self, out_trade_no: str) -> None:
        try:
            self.call("POST", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
                      body={"mchid": self.mchid})
        except WeChatPayRefused as exc:
            if exc.details.get("wechatpay_code") != "ORDER_CLOSED":  # closed already: what we wanted
                raise

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str) -> Refund:
        if not OUT_NO.match(out_refund_no or ""):
            raise InvalidInput("out_refund_no must be 6 to 64 letters, digits or _-|*@.",
                               code="wechatpay.refund_invalid")
        if not (isinstance(refund_fen, int) and isinstance(total_fen, int) and 1 <= refund_fen <= total_fen):
            raise InvalidInput("A refund is 1 fen or more and at most the order's total.",
                               code="wechatpay.refund_invalid")
        body: dict[str, Any] = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                                "notify_url": self.notify_url,
                                "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"}}
        if reason:
            body["reason"] = reason[:80]
        data = self.call("POST", "/v3/refund/domestic/refunds", body=body)
        try:
            return _refund(data)
        except (KeyError, TypeError, ValueError):
            raise WeChatPayUnavailable("WeChat Pay's refund was not understood.",
                                       details={"out_refund_no": out_refund_no}) from None

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        text = body.decode("utf-8", "replace")
        if not self._signed(headers, text):
            raise WeChatPaySignatureInvalid("The notification's signature, serial or timestamp does not verify.")
        try:
            envelope = json.loads(text)
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise ValueError("unknown algorithm")
            plain = crypto.decrypt(self._apiv3_key, str(resource["nonce"]), str(resource["ciphertext"]),
                                   str(resource.get("associated_data") or ""))
            data = json.loads(plain)
            event_type = str(envelope["event_type"])
            if data.get("mchid") not in (None, self.mchid) or data.get("appid") not in (None, self.appid):
                raise ValueError("another merchant's or app's notification")
            if event_type.startswith("REFUND."):
                refund = _refund(data)
                return Notice(event_type=event_type, order=None, out_refund_no=refund.out_refund_no,
                              refund_status=refund.status, refund=refund, notification_id=str(envelope.get("id", "")))
            return Notice(event_type=event_type, order=_order(data), notification_id=str(envelope.get("id", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WeChatPaySignatureInvalid("The notification's resource cannot be read.",
                                            details={"reason": str(exc)[:120]}) from None

    @staticmethod
    def _field(data: Mapping[str, Any], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise WeChatPayUnavailable(f"WeChat Pay's answer has no {name}.", details={"field": name})
        return value


def build_client(settings: Settings) -> PayClient:
    """The client for ``[wechatpay]``; refuses when no merchant account is configured."""
    cfg = settings.wechatpay
    if not cfg.mchid:
        raise Unconfigured("WeChat Pay is not configured ([wechatpay] mchid).", code="wechatpay.unconfigured")
    return WeChatPayV3.from_settings(settings)
