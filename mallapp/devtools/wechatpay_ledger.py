"""WeChat Pay's books in the emulator: orders and refunds, and the rules WeChat Pay applies to them.

:class:`~mallapp.devtools.wechatpay_emulator.WeChatPayEmulator` checks signatures, faults and keys, then asks
:meth:`PayBooks.route` to answer a ``/v3/`` call (with its lock held); a refusal is :class:`Refusal`, which
it answers with WeChat Pay's status for the code and ``{"code", "message"}``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mallapp.adapters.wechatpay_v3 import rfc3339

Answer = dict[str, Any]
# The HTTP status WeChat Pay answers each error code with.
STATUS = {"PARAM_ERROR": 400, "INVALID_REQUEST": 400, "ORDER_CLOSED": 400, "APPID_MCHID_NOT_MATCH": 400,
          "MCH_NOT_EXISTS": 400, "SIGN_ERROR": 401, "ORDERPAID": 403, "NOT_ENOUGH": 403, "NOAUTH": 403,
          "ORDER_NOT_EXIST": 404, "RESOURCE_NOT_EXISTS": 404, "FREQUENCY_LIMITED": 429, "SYSTEM_ERROR": 500}
_ORDER_PATH = re.compile(r"^/v3/pay/transactions/out-trade-no/([^/]+)(/close)?$")
_REFUND_PATH = re.compile(r"^/v3/refund/domestic/refunds/([^/]+)$")


class Refusal(Exception):
    """WeChat Pay says no: its error code (STATUS gives the HTTP status) and message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Order:
    out_trade_no: str
    trade_type: str
    appid: str
    description: str
    total: int
    currency: str
    notify_url: str
    time_expire: str
    openid: str | None
    prepay_id: str
    code_url: str | None
    trade_state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: str | None = None
    refunded: int = 0

    def fingerprint(self) -> tuple[Any, ...]:
        """What must match for the same out_trade_no to answer the same order (time_expire and notify_url need not)."""
        return (self.trade_type, self.appid, self.description, self.total, self.currency, self.openid)


@dataclass
class RefundRecord:
    out_refund_no: str
    out_trade_no: str
    refund: int
    total: int
    refund_id: str
    notify_url: str
    create_time: str
    status: str = "SUCCESS"


def rfc3339_at(epoch: float) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, UTC))


@dataclass
class PayBooks:
    """One merchant account's orders and refunds (answers built as WeChat Pay builds them)."""

    appid: str
    mchid: str
    clock: Callable[[], float] = time.time
    orders: dict[str, Order] = field(default_factory=dict)
    refunds: dict[str, RefundRecord] = field(default_factory=dict)
    new_refunds: list[str] = field(default_factory=list)  # out_refund_no of refunds just made, for notifications
    # The status a new refund starts with: SUCCESS, or PROCESSING until the test completes it
    # (WeChat Pay answers PROCESSING while the money is on its way back).
    refund_status: str = "SUCCESS"


    def route(self, method: str, target: str, path: str, text: str) -> tuple[int, Answer | None]:
        query = dict(parse_qsl(urlsplit(target).query))
        data: Answer = {}
        if method == "POST":
            try:
                data = json.loads(text or "{}")
            except ValueError:
                raise Refusal("PARAM_ERROR", "请求体不是有效的JSON") from None
            if not isinstance(data, dict):
                raise Refusal("PARAM_ERROR", "请求体不是JSON对象")
        if method == "POST" and path in ("/v3/pay/transactions/jsapi", "/v3/pay/transactions/native"):
            return 200, self.create("JSAPI" if path.endswith("jsapi") else "NATIVE", data)
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return 200, self.refund(data)
        match = _ORDER_PATH.match(path)
        if match:
            order = self.orders.get(unquote(match.group(1)))
            mchid = data.get("mchid") if method == "POST" else query.get("mchid")
            if mchid != self.mchid:
                raise Refusal("PARAM_ERROR", "mchid 与请求的商户号不一致")
            if order is None:
                raise Refusal("ORDER_NOT_EXIST", "订单不存在")
            if method == "GET" and not match.group(2):
                return 200, self.transaction(order)
            if method == "POST" and match.group(2):
                if order.trade_state in ("SUCCESS", "REFUND"):
                    raise Refusal("ORDERPAID", "订单已支付")
                order.trade_state = "CLOSED"
                return 204, None
        match = _REFUND_PATH.match(path)
        if match and method == "GET":
            refund = self.refunds.get(unquote(match.group(1)))
            if refund is None:
                raise Refusal("RESOURCE_NOT_EXISTS", "退款单不存在")
            return 200, self.refund_answer(refund)
        raise Refusal("PARAM_ERROR", f"不支持的请求 {method} {path}")

    def create(self, trade_type: str, data: Answer) -> Answer:
        for name in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"):
            if not data.get(name):
                raise Refusal("PARAM_ERROR", f"缺少参数 {name}")
        amount, payer = data["amount"], data.get("payer") or {}
        if not isinstance(amount, dict) or not isinstance(amount.get("total"), int) or amount["total"] < 1:
            raise Refusal("PARAM_ERROR", "amount.total 必须是大于0的整数")
        if amount.get("currency", "CNY") != "CNY":
            raise Refusal("PARAM_ERROR", "currency 只支持 CNY")
        if trade_type == "JSAPI" and not (isinstance(payer, dict) and payer.get("openid")):
            raise Refusal("PARAM_ERROR", "缺少参数 payer.openid")
        if data["mchid"] != self.mchid:
            raise Refusal("MCH_NOT_EXISTS", "商户号不存在")
        if data["appid"] != self.appid:
            raise Refusal("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        if not re.match(r"^[A-Za-z0-9_\-|*]{6,32}$", str(data["out_trade_no"])):
            raise Refusal("PARAM_ERROR", "out_trade_no 格式错误")
        if data.get("time_expire") is not None:
            try:
                datetime.fromisoformat(str(data["time_expire"]))
            except ValueError:
                raise Refusal("PARAM_ERROR", "time_expire 格式错误") from None
        order = Order(out_trade_no=data["out_trade_no"], trade_type=trade_type, appid=data["appid"],
                       description=str(data["description"]), total=amount["total"], currency="CNY",
                       notify_url=str(data["notify_url"]), time_expire=str(data.get("time_expire") or ""),
                       openid=payer.get("openid") if trade_type == "JSAPI" else None,
                       prepay_id="wx" + datetime.fromtimestamp(self.clock(), UTC).strftime("%d%H%M%S")
                       + secrets.token_hex(12),
                       code_url=f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}" if trade_type == "NATIVE"
                       else None)
        existing = self.orders.get(order.out_trade_no)
        if existing is not None:
            if existing.fingerprint() != order.fingerprint():
                raise Refusal("INVALID_REQUEST", "商户订单号重复，请求参数与原订单不一致")
            if existing.trade_state in ("SUCCESS", "REFUND"):
                raise Refusal("ORDERPAID", "订单已支付")
            if existing.trade_state == "CLOSED":
                raise Refusal("ORDER_CLOSED", "订单已关闭")
            order = existing
        self.orders[order.out_trade_no] = order
        return {"prepay_id": order.prepay_id} if trade_type == "JSAPI" else {"code_url": order.code_url}

    def refund(self, data: Answer) -> Answer:
        for name in ("out_trade_no", "out_refund_no", "amount"):
            if not data.get(name):
                raise Refusal("PARAM_ERROR", f"缺少参数 {name}")
        amount = data["amount"]
        if not isinstance(amount, dict) or not all(isinstance(amount.get(k), int) and amount[k] > 0
                                                   for k in ("refund", "total")):
            raise Refusal("PARAM_ERROR", "amount.refund 和 amount.total 必须是大于0的整数")
        order = self.orders.get(str(data["out_trade_no"]))
        if order is None:
            raise Refusal("RESOURCE_NOT_EXISTS", "订单不存在")
        existing = self.refunds.get(str(data["out_refund_no"]))
        if existing is not None:
            if (existing.out_trade_no, existing.refund, existing.total) != (order.out_trade_no, amount["refund"],
                                                                           amount["total"]):
                raise Refusal("INVALID_REQUEST", "退款单号重复，请求参数与原退款不一致")
            return self.refund_answer(existing)
        if order.trade_state not in ("SUCCESS", "REFUND"):
            raise Refusal("INVALID_REQUEST", "订单未支付，不能退款")
        if amount["total"] != order.total:
            raise Refusal("PARAM_ERROR", "订单金额与原订单不一致")
        if amount["refund"] > order.total - order.refunded:
            raise Refusal("INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = RefundRecord(out_refund_no=str(data["out_refund_no"]), out_trade_no=order.out_trade_no,
                         refund=amount["refund"], total=order.total, refund_id="5030" + f"{secrets.randbelow(10**24):024d}",
                         notify_url=str(data.get("notify_url") or order.notify_url), create_time=rfc3339_at(self.clock()),
                         status=self.refund_status)
        self.refunds[refund.out_refund_no] = refund
        order.refunded += refund.refund
        order.trade_state = "REFUND"
        self.new_refunds.append(refund.out_refund_no)
        return self.refund_answer(refund)

    def transaction(self, order: Order) -> Answer:
        answer: Answer = {"appid": order.appid, "mchid": self.mchid,
                          "out_trade_no": order.out_trade_no, "trade_type": order.trade_type,
                          "trade_state": order.trade_state,
                          "trade_state_desc": {"NOTPAY": "未支付", "SUCCESS": "支付成功", "CLOSED": "已关闭",
                                               "REFUND": "转入退款"}.get(order.trade_state, ""),
                          "attach": "", "amount": {"total": order.total, "currency": order.currency}}
        if order.transaction_id:
            answer.update(transaction_id=order.transaction_id, bank_type="OTHERS", success_time=order.success_time)
            answer["amount"].update(payer_total=order.total, payer_currency=order.currency)
        if order.openid:
            answer["payer"] = {"openid": order.openid}
        return answer

    def refund_answer(self, refund: RefundRecord) -> Answer:
        order = self.orders[refund.out_trade_no]
        return {"refund_id": refund.refund_id, "out_refund_no": refund.out_refund_no,
                "transaction_id": order.transaction_id, "out_trade_no": refund.out_trade_no, "channel": "ORIGINAL",
                "user_received_account": "支付用户零钱", "success_time": refund.create_time,
                "create_time": refund.create_time, "status": refund.status, "funds_account": "AVAILABLE",
                "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                           "payer_refund": refund.refund, "settlement_refund": refund.refund,
                           "settlement_total": refund.total, "discount_refund": 0, "currency": "CNY"}}
