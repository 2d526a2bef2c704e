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
from urllib.parse import urlsplit

import requests

from mallapp.adapters import wechatpay_crypto as crypto
from mallapp.adapters.wechatpay_v3 import rfc3339
from mallapp.devtools.loopback import Reply
from mallapp.devtools.wechatpay_ledger import STATUS, PayBooks, Refusal, rfc3339_at

Answer = dict[str, Any]
WINDOW_SECONDS = 300


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
class _Fault:
    remaining: int
    status: int | None
    code: str | None
    delay_seconds: float
    bad_signature: bool


@dataclass
class _PayState:
    notifications: list[Answer] = field(default_factory=list)
    requests: list[Answer] = field(default_factory=list)
    faults: dict[str, deque[_Fault]] = field(default_factory=dict)


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
        self._books = PayBooks(appid, "", clock)

    def configure(self, keys: Any) -> None:
        """Take the keys (a :class:`~mallapp.devtools.wechatpay_keys.DevKeys` or :class:`PayKeys`)."""
        self.keys = PayKeys(keys.mchid, keys.merchant_public_pem, keys.merchant_serial, keys.platform_private_pem,
                            keys.platform_serial, keys.apiv3_key)
        self._merchant_key = crypto.load_public_key(self.keys.merchant_public_pem)
        self._platform_key = crypto.load_private_key(self.keys.platform_private_pem)
        with self._lock:
            self._books.mchid = self.keys.mchid

    def reset(self) -> None:
        """Forget orders, refunds, notifications, requests and faults (the keys stay)."""
        with self._lock:
            self._state = _PayState()
            self._books = PayBooks(self.appid, self.keys.mchid if self.keys else "", self.clock)
            self.notify_refunds = False

    # -- test hooks -----------------------------------------------------------------------------

    def pay_order(self, out_trade_no: str, *, deliver: bool = True, openid: str | None = None,
                  success_time: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """The payer paid: the order becomes SUCCESS; its signed notification is POSTed to the order's
        notify_url (unless ``deliver`` is False) and returned as (headers, body) either way."""
        with self._lock:
            order = self._books.orders.get(out_trade_no)
            if order is None:
                raise KeyError(f"no order {out_trade_no}")
            if order.trade_state not in ("NOTPAY", "SUCCESS"):
                raise ValueError(f"order {out_trade_no} is {order.trade_state}")
            if order.trade_state == "NOTPAY":
                order.trade_state = "SUCCESS"
                order.transaction_id = "4200" + datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%d") + \
                    f"{secrets.randbelow(10**18):018d}"
                order.success_time = rfc3339(success_time) if success_time else rfc3339_at(self.clock())
                order.openid = order.openid or openid or "o-native-payer-" + secrets.token_hex(4)
            resource = self._books.transaction(order)
            url = order.notify_url
        return self._notify(url, "TRANSACTION.SUCCESS", "支付成功", "transaction", resource, deliver,
                            out_trade_no=out_trade_no)

    def refunds_processing(self, on: bool = True) -> None:
        """New refunds answer PROCESSING (the money on its way back) until :meth:`complete_refund`."""
        with self._lock:
            self._books.refund_status = "PROCESSING" if on else "SUCCESS"

    def complete_refund(self, out_refund_no: str, *, deliver: bool = True) -> tuple[dict[str, str], bytes]:
        """A PROCESSING refund reached the payer: it becomes SUCCESS, and its notification is sent (or returned)."""
        with self._lock:
            self._books.refunds[out_refund_no].status = "SUCCESS"
        return self.refund_notification(out_refund_no, deliver=deliver)

    def refund_notification(self, out_refund_no: str, *, deliver: bool = True) -> tuple[dict[str, str], bytes]:
        """The REFUND.SUCCESS notification of a refund, POSTed to its notify_url unless ``deliver`` is False."""
        with self._lock:
            refund = self._books.refunds[out_refund_no]
            order = self._books.orders[refund.out_trade_no]
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
            return [self._books.transaction(o) for o in self._books.orders.values()]

    def refunds(self) -> list[Answer]:
        with self._lock:
            return [self._books.refund_answer(r) for r in self._books.refunds.values()]

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
        made: list[str] = []
        with self._lock:
            self._state.requests.append({"method": method, "path": path, "body": text, "signed": signed,
                                         "at": self.clock()})
            fault = self._take_fault(path)
        if fault and fault.code is None and fault.status is not None:
            return Reply(fault.status, HTTPStatus(fault.status).phrase.encode(), "text/plain", fault.delay_seconds)
        if fault and fault.code is not None:
            answer: tuple[int, Answer | None] = (fault.status or STATUS.get(fault.code, 400),
                                                 {"code": fault.code, "message": "模拟的错误 / emulated fault"})
        elif not signed:  # WeChat Pay cannot sign for a merchant it could not authenticate: unsigned, as there
            return Reply(401, json.dumps({"code": "SIGN_ERROR", "message": "签名错误"}, ensure_ascii=False).encode())
        else:
            try:
                with self._lock:
                    answer = self._books.route(method, target, path, text)
                    made, self._books.new_refunds = self._books.new_refunds, []
            except Refusal as refusal:
                answer = (STATUS.get(refusal.code, 400), {"code": refusal.code, "message": refusal.message})
        if self.notify_refunds and answer[0] == 200:
            for out_refund_no in made:
                threading.Thread(target=self.refund_notification, args=(out_refund_no,), daemon=True).start()
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

    def _notify(self, url: str, event_type: str, summary: str, original_type: str, resource: Answer,
                deliver: bool, **about: str) -> tuple[dict[str, str], bytes]:
        keys = self.keys
        assert keys is not None, "configure the emulator's WeChat Pay keys first"
        nonce = secrets.token_urlsafe(9)[:12]
        ciphertext = crypto.encrypt(keys.apiv3_key, nonce, json.dumps(resource, ensure_ascii=False).encode(),
                                    original_type)
        envelope = {"id": str(uuid.uuid4()), "create_time": rfc3339_at(self.clock()), "resource_type": "encrypt-resource",
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
