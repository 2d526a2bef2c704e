"""WeChat Pay API v3 in the WeChat emulator: the pay state and its handlers (docs/wechatpay.md, "The emulator").

:class:`~mallapp.devtools.wechat_emulator.WeChatEmulator` routes ``/v3/`` and ``/__emulator/wechatpay/`` here.
It checks each request's ``Authorization`` with the merchant's public key (401 SIGN_ERROR), signs every
answer with the platform's private key, keeps orders (idempotent by out_trade_no: the same parameters
answer the same prepay_id, other parameters 400 INVALID_REQUEST) and refunds (idempotent by out_refund_no),
and sends signed, encrypted notifications to the order's notify_url when a test says the member paid::

    POST /__emulator/wechatpay/pay            {"out_trade_no", "deliver"?, "openid"?}  -> {"headers", "body"}
    POST /__emulator/wechatpay/refund-notify  {"out_refund_no", "deliver"?}            -> {"headers", "body"}
    POST /__emulator/wechatpay/fail           {"path", "status"?, "code"?, "delay_seconds"?, "times"?, "bad_signature"?}
    GET  /__emulator/wechatpay/orders         -> {"orders": [...]}   (as a query answers them)
    GET  /__emulator/wechatpay/refunds        -> {"refunds": [...]}
    GET  /__emulator/wechatpay/notifications  -> {"notifications": [...]}  (each: url, headers, body, delivered)

Order expiry (time_expire) is stored, not enforced: tests move mallapp's clock, not this one.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests

from mallapp.adapters import wechatpay_crypto as crypto
from mallapp.adapters.wechatpay_v3 import rfc3339
from mallapp.devtools.loopback import Reply

Answer = dict[str, Any]
WINDOW_SECONDS = 300
# The HTTP status WeChat Pay answers each error code with.
STATUS = {"PARAM_ERROR": 400, "INVALID_REQUEST": 400, "ORDER_CLOSED": 400, "APPID_MCHID_NOT_MATCH": 400,
          "MCH_NOT_EXISTS": 400, "SIGN_ERROR": 401, "ORDERPAID": 403, "NOT_ENOUGH": 403, "NOAUTH": 403,
          "ORDER_NOT_EXIST": 404, "RESOURCE_NOT_EXISTS": 404, "FREQUENCY_LIMITED": 429, "SYSTEM_ERROR": 500}
_ORDER_PATH = re.compile(r"^/v3/pay/transactions/out-trade-no/([^/]+)(/close)?$")
_REFUND_PATH = re.compile(r"^/v3/refund/domestic/refunds/([^/]+)$")


class _Refusal(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class PayKeys:
    """What the emulator holds: our public key, its own private key, the shared APIv3 key."""

    mchid: str
    merchant_public_pem: str
    merchant_serial: str
    platform_private_pem: str
    platform_serial: str
    apiv3_key: str


@dataclass
class _Order:
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
        return (self.trade_type, self.appid, self.description, self.total, self.currency, self.openid)


@dataclass
class _Refund:
    out_refund_no: str
    out_trade_no: str
    refund: int
    total: int
    refund_id: str
    notify_url: str
    create_time: str
    status: str = "SUCCESS"


@dataclass
class _Fault:
    remaining: int
    status: int | None
    code: str | None
    delay_seconds: float
    bad_signature: bool


@dataclass
class _PayState:
    orders: dict[str, _Order] = field(default_factory=dict)
    refunds: dict[str, _Refund] = field(default_factory=dict)
    notifications: list[Answer] = field(default_factory=list)
    requests: list[Answer] = field(default_factory=list)
    faults: dict[str, deque[_Fault]] = field(default_factory=dict)


def _rfc3339(epoch: float) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, UTC))


class WeChatPayEmulator:
    """WeChat Pay's side: orders, payments, refunds and notifications, for one merchant account."""

    def __init__(self, appid: str, clock: Callable[[], float] = time.time):
        self.appid = appid
        self.clock = clock
        # Post a REFUND.SUCCESS notification to the refund's notify_url as each refund succeeds.
        self.notify_refunds = False
        self.keys: PayKeys | None = None
        self._lock = threading.RLock()
        self._state = _PayState()

    def configure(self, keys: Any) -> None:
        """Take the keys (a :class:`~mallapp.devtools.wechatpay_keys.DevKeys` or :class:`PayKeys`)."""
        self.keys = PayKeys(keys.mchid, keys.merchant_public_pem, keys.merchant_serial, keys.platform_private_pem,
                            keys.platform_serial, keys.apiv3_key)
        self._merchant_key = crypto.load_public_key(self.keys.merchant_public_pem)
        self._platform_key = crypto.load_private_key(self.keys.platform_private_pem)

    def reset(self) -> None:
        """Forget orders, refunds, notifications, requests and faults (the keys stay)."""
        with self._lock:
            self._state = _PayState()
            self.notify_refunds = False

    # -- test hooks -----------------------------------------------------------------------------

    def pay_order(self, out_trade_no: str, *, deliver: bool = True, openid: str | None = None,
                  success_time: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """The payer paid: the order becomes SUCCESS; its signed notification is POSTed to the order's
        notify_url (unless ``deliver`` is False) and returned as (headers, body) either way."""
        with self._lock:
            order = self._state.orders.get(out_trade_no)
            if order is None:
                raise KeyError(f"no order {out_trade_no}")
            if order.trade_state not in ("NOTPAY", "SUCCESS"):
                raise ValueError(f"order {out_trade_no} is {order.trade_state}")
            if order.trade_state == "NOTPAY":
                order.trade_state = "SUCCESS"
                order.transaction_id = "4200" + datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%d") + \
                    f"{secrets.randbelow(10**18):018d}"
                order.success_time = rfc3339(success_time) if success_time else _rfc3339(self.clock())
                order.openid = order.openid or openid or "o-native-payer-" + secrets.token_hex(4)
            resource = self._transaction(order)
            url = order.notify_url
        return self._notify(url, "TRANSACTION.SUCCESS", "支付成功", "transaction", resource, deliver,
                            out_trade_no=out_trade_no)

    def refund_notification(self, out_refund_no: str, *, deliver: bool = True) -> tuple[dict[str, str], bytes]:
        """The REFUND.SUCCESS notification of a refund, POSTed to its notify_url unless ``deliver`` is False."""
        with self._lock:
            refund = self._state.refunds[out_refund_no]
            order = self._state.orders[refund.out_trade_no]
            resource = {"mchid": self.keys.mchid if self.keys else "", "out_trade_no": order.out_trade_no,
                        "transaction_id": order.transaction_id, "out_refund_no": refund.out_refund_no,
                        "refund_id": refund.refund_id, "refund_status": refund.status,
                        "success_time": refund.create_time, "user_received_account": "支付用户零钱",
                        "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                                   "payer_refund": refund.refund}}
        return self._notify(refund.notify_url, "REFUND.SUCCESS", "退款成功", "refund", resource, deliver,
                            out_trade_no=refund.out_trade_no, out_refund_no=out_refund_no)

    def fail_next(self, path: str, status: int | None = None, code: str | None = None, *,
                  delay_seconds: float = 0.0, times: int = 1, bad_signature: bool = False) -> None:
        """Fault the next ``times`` calls whose path starts with ``path``: an error ``code`` (signed JSON, its
        usual status unless ``status`` is given), a bare ``status`` (unsigned, as a gateway answers), a delay
        (the call is still carried out: the answer is late), or a correct answer with a broken signature."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is None and code is None and not delay_seconds and not bad_signature:
            raise ValueError("give a status, a code, a delay or bad_signature")
        with self._lock:
            self._state.faults.setdefault(path, deque()).append(
                _Fault(times, status, code, float(delay_seconds), bad_signature))

    def orders(self) -> list[Answer]:
        """Every order, as a query answers it."""
        with self._lock:
            return [self._transaction(o) for o in self._state.orders.values()]

    def refunds(self) -> list[Answer]:
        with self._lock:
            return [self._refund_answer(r) for r in self._state.refunds.values()]

    def notifications(self) -> list[Answer]:
        """Every notification made, oldest first: event_type, url, headers, body, delivered (HTTP status or None)."""
        with self._lock:
            return [dict(n) for n in self._state.notifications]

    def requests(self) -> list[Answer]:
        """Every /v3/ request received: method, path, body, signed (whether its Authorization verified)."""
        with self._lock:
            return [dict(r) for r in self._state.requests]

    # -- HTTP -----------------------------------------------------------------------------------

    def control(self, method: str, name: str, data: Answer) -> Answer:
        """The ``/__emulator/wechatpay/<name>`` hooks."""
        match method, name:
            case "POST", "pay":
                headers, body = self.pay_order(str(data["out_trade_no"]), deliver=bool(data.get("deliver", True)),
                                               openid=data.get("openid"))
                return {"headers": headers, "body": body.decode()}
            case "POST", "refund-notify":
                headers, body = self.refund_notification(str(data["out_refund_no"]),
                                                         deliver=bool(data.get("deliver", True)))
                return {"headers": headers, "body": body.decode()}
            case "POST", "fail":
                self.fail_next(str(data["path"]), int(data["status"]) if "status" in data else None,
                               data.get("code"), delay_seconds=float(data.get("delay_seconds", 0.0)),
                               times=int(data.get("times", 1)), bad_signature=bool(data.get("bad_signature")))
                return {"ok": True}
            case "GET", "orders":
                return {"orders": self.orders()}
            case "GET", "refunds":
                return {"refunds": self.refunds()}
            case "GET", "notifications":
                return {"notifications": self.notifications()}
        raise KeyError(f"no WeChat Pay control {method} {name}")

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one /v3/ request as WeChat Pay does."""
        if self.keys is None:
            return self._reply(500, {"code": "SYSTEM_ERROR", "message": "the emulator has no WeChat Pay keys "
                                                                      "(WeChatEmulator.configure_pay)"})
        path = urlsplit(target).path
        text = body.decode("utf-8", "replace")
        signed = self._signed_by_merchant(method, target, headers, text)
        with self._lock:
            self._state.requests.append({"method": method, "path": path, "body": text, "signed": signed,
                                         "at": self.clock()})
            fault = self._take_fault(path)
        if fault and fault.code is None and fault.status is not None:
            return Reply(fault.status, HTTPStatus(fault.status).phrase.encode(), "text/plain", fault.delay_seconds)
        if fault and fault.code is not None:
            answer: tuple[int, Answer | None] = (fault.status or STATUS.get(fault.code, 400),
                                                 {"code": fault.code, "message": "模拟的错误 / emulated fault"})
        elif not signed:
            answer = (401, {"code": "SIGN_ERROR", "message": "签名错误"})
        else:
            try:
                with self._lock:
                    answer = self._route(method, target, path, text)
            except _Refusal as refusal:
                answer = (STATUS.get(refusal.code, 400), {"code": refusal.code, "message": refusal.message})
        reply = self._reply(*answer)
        if fault and fault.bad_signature:
            reply = self._reply(*answer, payload_for_signature=reply.payload + b" ")
        return Reply(reply.status, reply.payload, reply.content_type, fault.delay_seconds if fault else 0.0,
                     reply.headers)

    def _take_fault(self, path: str) -> _Fault | None:
        for prefix, queue in self._state.faults.items():
            if queue and path.startswith(prefix):
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining == 0:
                    queue.popleft()
                return fault
        return None

    def _signed_by_merchant(self, method: str, target: str, headers: dict[str, str], body: str) -> bool:
        keys = self.keys
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        params = crypto.parse_authorization(auth) if auth else None
        if keys is None or not params or params.get("mchid") != keys.mchid \
                or params.get("serial_no") != keys.merchant_serial or not params.get("nonce_str"):
            return False
        try:
            if abs(self.clock() - int(params.get("timestamp", ""))) > WINDOW_SECONDS:
                return False
        except ValueError:
            return False
        message = crypto.request_message(method, target, params["timestamp"], params["nonce_str"], body)
        return crypto.verify(self._merchant_key, message, params.get("signature", ""))

    def _reply(self, status: int, answer: Answer | None, payload_for_signature: bytes | None = None) -> Reply:
        payload = json.dumps(answer, ensure_ascii=False).encode() if answer is not None else b""
        if self.keys is None:
            return Reply(status, payload)
        return Reply(status, payload, headers=tuple(self._signature_headers(payload_for_signature or payload).items()))

    def _signature_headers(self, payload: bytes) -> dict[str, str]:
        assert self.keys is not None
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
        signature = crypto.sign(self._platform_key, crypto.answer_message(timestamp, nonce, payload.decode()))
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
                "Wechatpay-Serial": self.keys.platform_serial, "Wechatpay-Signature-Type": crypto.SCHEME,
                "Request-ID": uuid.uuid4().hex}

    # -- WeChat Pay's endpoints (the lock held) -------------------------------------------------

    def _route(self, method: str, target: str, path: str, text: str) -> tuple[int, Answer | None]:
        query = dict(parse_qsl(urlsplit(target).query))
        data: Answer = {}
        if method == "POST":
            try:
                data = json.loads(text or "{}")
            except ValueError:
                raise _Refusal("PARAM_ERROR", "请求体不是有效的JSON") from None
            if not isinstance(data, dict):
                raise _Refusal("PARAM_ERROR", "请求体不是JSON对象")
        if method == "POST" and path in ("/v3/pay/transactions/jsapi", "/v3/pay/transactions/native"):
            return 200, self._create("JSAPI" if path.endswith("jsapi") else "NATIVE", data)
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return 200, self._refund(data)
        match = _ORDER_PATH.match(path)
        if match:
            order = self._state.orders.get(unquote(match.group(1)))
            mchid = data.get("mchid") if method == "POST" else query.get("mchid")
            if mchid != self.keys.mchid:  # type: ignore[union-attr]
                raise _Refusal("PARAM_ERROR", "mchid 与请求的商户号不一致")
            if order is None:
                raise _Refusal("ORDER_NOT_EXIST", "订单不存在")
            if method == "GET" and not match.group(2):
                return 200, self._transaction(order)
            if method == "POST" and match.group(2):
                if order.trade_state in ("SUCCESS", "REFUND"):
                    raise _Refusal("ORDERPAID", "订单已支付")
                order.trade_state = "CLOSED"
                return 204, None
        match = _REFUND_PATH.match(path)
        if match and method == "GET":
            refund = self._state.refunds.get(unquote(match.group(1)))
            if refund is None:
                raise _Refusal("RESOURCE_NOT_EXISTS", "退款单不存在")
            return 200, self._refund_answer(refund)
        raise _Refusal("PARAM_ERROR", f"不支持的请求 {method} {path}")

    def _create(self, trade_type: str, data: Answer) -> Answer:
        keys = self.keys
        assert keys is not None
        for name in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"):
            if not data.get(name):
                raise _Refusal("PARAM_ERROR", f"缺少参数 {name}")
        amount, payer = data["amount"], data.get("payer") or {}
        if not isinstance(amount, dict) or not isinstance(amount.get("total"), int) or amount["total"] < 1:
            raise _Refusal("PARAM_ERROR", "amount.total 必须是大于0的整数")
        if amount.get("currency", "CNY") != "CNY":
            raise _Refusal("PARAM_ERROR", "currency 只支持 CNY")
        if trade_type == "JSAPI" and not (isinstance(payer, dict) and payer.get("openid")):
            raise _Refusal("PARAM_ERROR", "缺少参数 payer.openid")
        if data["mchid"] != keys.mchid:
            raise _Refusal("MCH_NOT_EXISTS", "商户号不存在")
        if data["appid"] != self.appid:
            raise _Refusal("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        if not re.match(r"^[A-Za-z0-9_\-|*]{6,32}$", str(data["out_trade_no"])):
            raise _Refusal("PARAM_ERROR", "out_trade_no 格式错误")
        if data.get("time_expire") is not None:
            try:
                datetime.fromisoformat(str(data["time_expire"]))
            except ValueError:
                raise _Refusal("PARAM_ERROR", "time_expire 格式错误") from None
        order = _Order(out_trade_no=data["out_trade_no"], trade_type=trade_type, appid=data["appid"],
                       description=str(data["description"]), total=amount["total"], currency="CNY",
                       notify_url=str(data["notify_url"]), time_expire=str(data.get("time_expire") or ""),
                       openid=payer.get("openid") if trade_type == "JSAPI" else None,
                       prepay_id="wx" + datetime.fromtimestamp(self.clock(), UTC).strftime("%d%H%M%S")
                       + secrets.token_hex(12),
                       code_url=f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}" if trade_type == "NATIVE"
                       else None)
        existing = self._state.orders.get(order.out_trade_no)
        if existing is not None:
            if existing.fingerprint() != order.fingerprint():
                raise _Refusal("INVALID_REQUEST", "商户订单号重复，请求参数与原订单不一致")
            if existing.trade_state in ("SUCCESS", "REFUND"):
                raise _Refusal("ORDERPAID", "订单已支付")
            if existing.trade_state == "CLOSED":
                raise _Refusal("ORDER_CLOSED", "订单已关闭")
            order = existing
        self._state.orders[order.out_trade_no] = order
        return {"prepay_id": order.prepay_id} if trade_type == "JSAPI" else {"code_url": order.code_url}

    def _refund(self, data: Answer) -> Answer:
        for name in ("out_trade_no", "out_refund_no", "amount"):
            if not data.get(name):
                raise _Refusal("PARAM_ERROR", f"缺少参数 {name}")
        amount = data["amount"]
        if not isinstance(amount, dict) or not all(isinstance(amount.get(k), int) and amount[k] > 0
                                                   for k in ("refund", "total")):
            raise _Refusal("PARAM_ERROR", "amount.refund 和 amount.total 必须是大于0的整数")
        order = self._state.orders.get(str(data["out_trade_no"]))
        if order is None:
            raise _Refusal("RESOURCE_NOT_EXISTS", "订单不存在")
        existing = self._state.refunds.get(str(data["out_refund_no"]))
        if existing is not None:
            if (existing.out_trade_no, existing.refund, existing.total) != (order.out_trade_no, amount["refund"],
                                                                           amount["total"]):
                raise _Refusal("INVALID_REQUEST", "退款单号重复，请求参数与原退款不一致")
            return self._refund_answer(existing)
        if order.trade_state not in ("SUCCESS", "REFUND"):
            raise _Refusal("INVALID_REQUEST", "订单未支付，不能退款")
        if amount["total"] != order.total:
            raise _Refusal("PARAM_ERROR", "订单金额与原订单不一致")
        if amount["refund"] > order.total - order.refunded:
            raise _Refusal("INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = _Refund(out_refund_no=str(data["out_refund_no"]), out_trade_no=order.out_trade_no,
                         refund=amount["refund"], total=order.total, refund_id="5030" + f"{secrets.randbelow(10**24):024d}",
                         notify_url=str(data.get("notify_url") or order.notify_url), create_time=_rfc3339(self.clock()))
        self._state.refunds[refund.out_refund_no] = refund
        order.refunded += refund.refund
        order.trade_state = "REFUND"
        if self.notify_refunds:
            threading.Thread(target=self.refund_notification, args=(refund.out_refund_no,), daemon=True).start()
        return self._refund_answer(refund)

    def _transaction(self, order: _Order) -> Answer:
        answer: Answer = {"appid": order.appid, "mchid": self.keys.mchid if self.keys else "",
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

    def _refund_answer(self, refund: _Refund) -> Answer:
        order = self._state.orders[refund.out_trade_no]
        return {"refund_id": refund.refund_id, "out_refund_no": refund.out_refund_no,
                "transaction_id": order.transaction_id, "out_trade_no": refund.out_trade_no, "channel": "ORIGINAL",
                "user_received_account": "支付用户零钱", "success_time": refund.create_time,
                "create_time": refund.create_time, "status": refund.status, "funds_account": "AVAILABLE",
                "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                           "payer_refund": refund.refund, "settlement_refund": refund.refund,
                           "settlement_total": refund.total, "discount_refund": 0, "currency": "CNY"}}

    def _notify(self, url: str, event_type: str, summary: str, original_type: str, resource: Answer,
                deliver: bool, **about: str) -> tuple[dict[str, str], bytes]:
        keys = self.keys
        assert keys is not None, "configure the emulator's WeChat Pay keys first"
        nonce = secrets.token_urlsafe(9)[:12]
        ciphertext = crypto.encrypt(keys.apiv3_key, nonce, json.dumps(resource, ensure_ascii=False).encode(),
                                    original_type)
        envelope = {"id": str(uuid.uuid4()), "create_time": _rfc3339(self.clock()), "resource_type": "encrypt-resource",
                    "event_type": event_type, "summary": summary,
                    "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                                 "ciphertext": ciphertext, "associated_data": original_type, "nonce": nonce}}
        body = json.dumps(envelope, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **self._signature_headers(body)}
        headers.pop("Request-ID")
        record: Answer = {"event_type": event_type, "url": url, "headers": headers, "body": body.decode(),
                          "delivered": None, "answer": None, **about}
        if deliver:
            try:
                response = requests.post(url, data=body, headers=headers, timeout=5)
                record.update(delivered=response.status_code, answer=response.text[:500])
            except requests.RequestException as exc:
                record["answer"] = type(exc).__name__
        with self._lock:
            self._state.notifications.append(record)
        return headers, body
