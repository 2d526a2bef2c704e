"""WeChat Pay (API v3), as the rest of mallapp sees it: one interface, its values and its errors.

The implementation is :mod:`mallapp.adapters.wechatpay_v3` (signed HTTP to ``api.mch.weixin.qq.com``,
or to the WeChat emulator on loopback). Money is integer fen, instants aware UTC. ``out_trade_no``
is always our order id (``parking_payments.order_id``), so creating, querying, closing and refunding
are all safe to repeat.

Errors (:mod:`mallapp.errors` classes with stable codes, re-exported here)::

    UpstreamError  WeChatPayUnavailable       wechatpay.unavailable        timeout, refused connection, 5xx,
                                                                           429, unreadable or unverified answer
                   WeChatPayRefused           wechatpay.refused            WeChat Pay answered an error code
                                                                           (details: wechatpay_code, message, status)
    NotFound       WeChatPayOrderNotFound     wechatpay.order_not_found    no such out_trade_no (query, close, refund)
    InvalidInput   WeChatPaySignatureInvalid  wechatpay.signature_invalid  a notification whose signature, timestamp
                                                                           or encrypted resource does not verify

``details["wechatpay_code"]`` of a refusal is WeChat Pay's own code, for the callers that must tell them
apart: ORDERPAID (closing or creating an order already paid), ORDER_CLOSED, INVALID_REQUEST (the same
out_trade_no or out_refund_no with other parameters, a refund above what is left), PARAM_ERROR, SIGN_ERROR,
NOT_ENOUGH (the merchant balance cannot cover a refund), NOAUTH, APPID_MCHID_NOT_MATCH...
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from mallapp.errors import (
    WeChatPayOrderNotFound,
    WeChatPayRefused,
    WeChatPaySignatureInvalid,
    WeChatPayUnavailable,
)

__all__ = [
    "Notice", "Order", "PayClient", "Prepay", "Refund", "TradeState", "WeChatPayOrderNotFound",
    "WeChatPayRefused", "WeChatPaySignatureInvalid", "WeChatPayUnavailable",
]

# WeChat Pay's trade_state values (query and notification).
TradeState = Literal["SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED", "USERPAYING", "PAYERROR"]


@dataclass(frozen=True)
class Prepay:
    """A created order: what the payer's side needs to pay it."""

    out_trade_no: str
    # JSAPI (in the mini-program): the fields wx.requestPayment takes, signed with the merchant key:
    # {"timeStamp", "nonceStr", "package": "prepay_id=…", "signType": "RSA", "paySign"}.
    jsapi: dict[str, str] | None = None
    # Native (scan to pay, anyone with WeChat): the code_url to show as a QR code.
    code_url: str | None = None
    prepay_id: str | None = None  # JSAPI: the same for the same order sent again


@dataclass(frozen=True)
class Order:
    """WeChat Pay's record of one order (a query's answer)."""

    out_trade_no: str
    trade_state: TradeState
    total_fen: int
    transaction_id: str | None = None
    success_time: datetime | None = None
    payer_openid: str | None = None


@dataclass(frozen=True)
class Notice:
    """A verified, decrypted payment notification (``TRANSACTION.SUCCESS``) or refund notification."""

    event_type: str            # "TRANSACTION.SUCCESS", "REFUND.SUCCESS", ...
    order: Order | None        # for a transaction notification
    out_refund_no: str | None = None
    refund_status: str | None = None
    refund: Refund | None = None   # for a refund notification
    notification_id: str = ""     # WeChat Pay's id of the notification (the same on every redelivery)


@dataclass(frozen=True)
class Refund:
    out_refund_no: str
    out_trade_no: str
    refund_fen: int
    status: Literal["SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"]
    refund_id: str | None = None
    success_time: datetime | None = None


class PayClient(Protocol):
    """What mallapp asks of WeChat Pay."""

    def create_jsapi_order(self, *, out_trade_no: str, description: str, total_fen: int, openid: str,
                           expires_at: datetime) -> Prepay:
        """Create (or, sent again, return) a JSAPI order for a payer inside the mini-program."""
        ...

    def create_native_order(self, *, out_trade_no: str, description: str, total_fen: int,
                            expires_at: datetime) -> Prepay:
        """Create (or return) a Native order: a code_url anyone can scan and pay, without signing in."""
        ...

    def query_order(self, out_trade_no: str) -> Order:
        """Ask WeChat Pay for the order's state (raises NotFound ``wechatpay.order_not_found``)."""
        ...

    def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid (closing a closed order is fine)."""
        ...

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str) -> Refund:
        """Refund (part of) a paid order; retry-safe by ``out_refund_no``."""
        ...

    def parse_notification(self, headers: dict[str, str], body: bytes) -> Notice:
        """Verify a notification's signature and timestamp and decrypt its resource."""
        ...


def notify_answer(ok: bool, message: str = "") -> tuple[dict[str, Any], int]:
    """What our notify endpoint answers WeChat Pay: 200 with no body fields on success, else FAIL (it retries)."""
    return ({"code": "SUCCESS", "message": "成功"}, 200) if ok else ({"code": "FAIL", "message": message or "失败"}, 400)
