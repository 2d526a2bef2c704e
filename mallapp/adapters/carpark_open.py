"""The car-park open API in its common shape (signed JSON over HTTP), implementing :class:`CarPark`.

Every request is a JSON object POSTed to ``<base>/api/<service>`` carrying the business fields and
``appId``, ``timestamp`` (Unix milliseconds), ``nonce`` (a fresh request id) and ``sign``
(:func:`sign`). Every answer is ``{"code": 0, "message": "ok", "data": {...}}``, or a non-zero
``code`` (see :data:`ERRORS`), with HTTP 200 either way. Entry and exit notifications come the
other way, signed the same way (:func:`verify`).

Retries: reads retry after a timeout or a refused connection; ``pay`` too, because the car park
keys it by our order id, so a retry of a payment whose answer was lost returns the first result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from mallapp.adapters.carpark import (
    AlreadyPaid,
    AmountMismatch,
    Bay,
    Bill,
    BillChanged,
    CarParkUnavailable,
    Item,
    LevelSpaces,
    OrderReused,
    Payment,
    PaymentRecord,
    PlateNotFound,
    SignatureRefused,
)
from mallapp.errors import InvalidInput, MallError, Unconfigured
from mallapp.settings import Settings

__all__ = ["ERRORS", "TIMESTAMP_WINDOW_SECONDS", "OpenApiCarPark", "canonical", "sign", "verify"]

logger = logging.getLogger(__name__)

PAGE_SIZE = 200  # payments per page of bill/payments
MAX_PAGES = 1000  # a day of a very busy car park is far fewer: a car park that pages forever stops here
TIMESTAMP_WINDOW_SECONDS = 300  # a request or notification older or newer than this is refused

# The vendor's codes, and what each becomes here.
ERRORS: dict[int, tuple[type[MallError], str]] = {
    1001: (SignatureRefused, "The car park refused the request's signature."),
    1002: (SignatureRefused, "The car park refused the request's timestamp (clocks apart?)."),
    1003: (SignatureRefused, "The car park refused a replayed request id."),
    1004: (SignatureRefused, "The car park does not know this app id."),
    2001: (PlateNotFound, "That plate is not in the car park."),
    2002: (AlreadyPaid, "Nothing is due on this parking bill."),
    2003: (OrderReused, "This order id was already used for a different payment."),
    2004: (BillChanged, "The parking bill has changed; query it again."),
    2005: (AmountMismatch, "The payment and its items do not settle the bill."),
    5000: (CarParkUnavailable, "The car park is busy; try again shortly."),
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return str(value)


def canonical(fields: Mapping[str, Any]) -> str:
    """Return ``k1=v1&k2=v2…`` over the fields sorted by name, without ``sign`` and empty values."""
    return "&".join(f"{key}={_text(value)}" for key, value in sorted(fields.items())
                    if key != "sign" and value is not None and value != "")


def sign(fields: Mapping[str, Any], secret: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of :func:`canonical` under ``secret``."""
    return hmac.new(secret.encode(), canonical(fields).encode(), hashlib.sha256).hexdigest()


def verify(fields: Mapping[str, Any], secret: str, now: float,
           window: int = TIMESTAMP_WINDOW_SECONDS) -> int:
    """Return 0 when signature and timestamp hold, else the vendor's code (1001, 1002).

    Nonce replay needs memory the caller owns (the emulator's set, our webhook's Redis key).
    """
    given = fields.get("sign")
    if not isinstance(given, str) or not hmac.compare_digest(given, sign(fields, secret)):
        return 1001
    try:
        stamp = int(fields["timestamp"]) / 1000
    except (KeyError, TypeError, ValueError):
        return 1002
    return 0 if abs(now - stamp) <= window else 1002


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class OpenApiCarPark:
    """A :class:`~mallapp.adapters.carpark.CarPark` over the signed open API at ``base_url``."""

    def __init__(self, base_url: str, app_id: str, secret: str, *, park_code: str = "",
                 timeout: float = 5.0, retries: int = 2, clock: Callable[[], float] = time.time,
                 http: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._secret = secret
        self.park_code = park_code
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self._http = http or requests.Session()

    def signed(self, fields: Mapping[str, Any], *, timestamp_ms: int | None = None,
               nonce: str | None = None) -> dict[str, Any]:
        """Return ``fields`` with appId, timestamp, nonce and sign added."""
        body = {**fields, "appId": self.app_id,
                "timestamp": int(self.clock() * 1000) if timestamp_ms is None else timestamp_ms,
                "nonce": nonce or secrets.token_hex(16)}
        if self.park_code:
            body.setdefault("parkCode", self.park_code)
        body["sign"] = sign(body, self._secret)
        return body

    def call(self, service: str, fields: Mapping[str, Any], *, retry: bool = True) -> dict[str, Any]:
        """POST a signed request (a fresh nonce per attempt) and return its ``data``, or raise."""
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.post(f"{self.base_url}/api/{service}", json=self.signed(fields),
                                           timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                logger.warning("car park %s: %s (attempt %d of %d)", service, type(exc).__name__,
                               attempt, attempts)
                if attempt == attempts:
                    raise CarParkUnavailable("The car park did not answer in time.",
                                             details={"service": service}) from None
                continue
            return self._data(service, response)
        raise AssertionError("unreachable")

    def _data(self, service: str, response: requests.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise CarParkUnavailable("The car park answered with an error.",
                                     details={"service": service, "status": response.status_code})
        try:
            answer = response.json()
            code = int(answer["code"])
        except (ValueError, KeyError, TypeError):
            raise CarParkUnavailable("The car park's answer was not understood.",
                                     details={"service": service}) from None
        if code == 0:
            data = answer.get("data")
            return data if isinstance(data, dict) else {}
        error, message = ERRORS.get(code, (CarParkUnavailable, "The car park refused the request."))
        raise error(message, details={"service": service, "vendor_code": code})

    # -- CarPark ------------------------------------------------------------------------------

    def query_bill(self, plate: str) -> Bill:
        data = self.call("bill/query", {"plateNo": plate})
        return Bill(plate=data["plateNo"], order_no=data["orderNo"], entered_at=_instant(data["entryTime"]),
                    gross_fen=int(data["totalAmount"]), discount_fen=int(data["discountAmount"]),
                    paid_fen=int(data["paidAmount"]), due_fen=int(data["payableAmount"]))

    def pay(self, *, plate: str, order_no: str, order_id: str, paid_fen: int,
            items: Sequence[Item] = ()) -> Payment:
        if paid_fen < 0 or not order_id:
            raise InvalidInput("A payment needs our order id and an amount of 0 or more fen.",
                               code="carpark.payment_invalid")
        wire = [{"type": "time" if item.seconds else "money", "value": item.seconds or item.fen,
                 "code": item.code, "name": item.name} for item in items]
        data = self.call("bill/pay", {"plateNo": plate, "orderNo": order_no, "outTradeNo": order_id,
                                      "payAmount": paid_fen, "items": wire})
        return Payment(order_id=data["outTradeNo"], order_no=data["orderNo"], trade_no=data["tradeNo"],
                       paid_fen=int(data["payAmount"]), discount_fen=int(data["discountAmount"]),
                       due_fen=int(data["payableAmount"]), paid_at=_instant(data["payTime"]))

    def locate(self, plate: str) -> Bay | None:
        data = self.call("car/location", {"plateNo": plate})
        if not data.get("spaceNo"):
            return None
        return Bay(plate=plate, level=data["floor"], bay=data["spaceNo"], seen_at=_instant(data["seenTime"]))

    def free_spaces(self) -> list[LevelSpaces]:
        data = self.call("space/free", {})
        return [LevelSpaces(level=row["floor"], total=int(row["total"]), free=int(row["free"]))
                for row in data.get("floors", [])]

    def payments(self, start: datetime, end: datetime) -> list[PaymentRecord]:
        found: list[PaymentRecord] = []
        page = 1
        while True:
            data = self.call("bill/payments", {"startTime": int(start.timestamp() * 1000),
                                               "endTime": int(end.timestamp() * 1000),
                                               "pageNo": page, "pageSize": PAGE_SIZE})
            rows = data.get("payments") or []
            found += [PaymentRecord(order_id=row["outTradeNo"], order_no=row["orderNo"], trade_no=row["tradeNo"],
                                    paid_fen=int(row["payAmount"]), discount_fen=int(row["discountAmount"]),
                                    paid_at=_instant(row["payTime"])) for row in rows]
            if len(rows) < PAGE_SIZE:
                return found
            if page == MAX_PAGES:
                raise CarParkUnavailable("The car park's list of payments does not end.",
                                         details={"service": "bill/payments"})
            page += 1


def build(settings: Settings, park_code: str) -> OpenApiCarPark:
    """The adapter for one car park of the mall's car-park system (``[carpark]``)."""
    cfg = settings.carpark
    if not cfg.api_base or not cfg.app_id or not cfg.secret:
        raise Unconfigured("No car-park system is configured ([carpark] api_base, app_id, MALL_CARPARK_SECRET).",
                                 code="parking.unconfigured")
    return OpenApiCarPark(cfg.api_base, cfg.app_id, cfg.secret, park_code=park_code, timeout=cfg.timeout_s,
                          retries=cfg.retries)
