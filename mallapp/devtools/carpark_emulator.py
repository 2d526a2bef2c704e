"""A car-park emulator: a real loopback HTTP server speaking the signed open API of
:mod:`mallapp.adapters.carpark_open`, so mallapp cannot tell it from a vendor's car park.

It checks the app id, the signature, the timestamp window and nonce replay (codes 1001-1004), keeps
the cars in the park (entry, bay, level), computes their bills with a simple built-in tariff
(:func:`fee`: 15 free minutes, then 5 yuan per hour started, 60 yuan per 24 hours at most), takes
idempotent payments keyed by our order id, and posts signed entry and exit notifications to a
webhook. Tests in the same process drive it through its methods; other processes use the same
hooks over HTTP under ``/__emulator/``::

    POST /__emulator/drive-in    {"plate", "bay"?, "minutes_ago"?}  -> {"orderNo"}
    POST /__emulator/drive-out   {"plate"}                          -> {"paid": bool}
    POST /__emulator/park        {"plate", "bay"}                   -> {}
    POST /__emulator/fail        {"service", "code"? | "status"? | "delay_seconds"?, "times"?}
    POST /__emulator/webhook     {"url"}
    POST /__emulator/take-payment {"order_id", "paid_fen", "discount_fen"?, "minutes_ago"?}
    POST /__emulator/reset
    GET  /__emulator/notifications  -> {"notifications": [...]}

Run standalone: ``python -m mallapp.devtools.carpark_emulator --port 8012 --app-id X --secret Y``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import requests

from mallapp.adapters.carpark_open import TIMESTAMP_WINDOW_SECONDS, canonical, sign, verify
from mallapp.devtools.loopback import LoopbackServer
from mallapp.domain.parking import plates
from mallapp.domain.parking import tariff as tariffs

Answer = dict[str, Any]
CONTROL_PREFIX = "/__emulator/"
API_PREFIX = "/api/"
FREE_SECONDS = 15 * 60
HOUR_FEN = 500
DAY_CAP_FEN = 6000
GRACE_SECONDS = 15 * 60   # after settling the bill, this long to reach the exit
DEFAULT_LEVELS = {"B1": 120, "B2": 80}


def fee(seconds: int) -> int:
    """Return the built-in tariff for a stay: 15 free minutes, 500 fen per hour started, 6000 per day."""
    if seconds <= FREE_SECONDS:
        return 0
    days, rest = divmod(seconds, 86400)
    return days * DAY_CAP_FEN + min(DAY_CAP_FEN, math.ceil(rest / 3600) * HOUR_FEN)


def _ok(data: Answer) -> Answer:
    return {"code": 0, "message": "ok", "data": data}


def _error(code: int, message: str) -> Answer:
    return {"code": code, "message": message}


@dataclass
class _Car:
    plate: str
    order_no: str
    entered_at: float
    bay: str | None = None
    seen_at: float | None = None
    free_seconds: int = 0
    discount_fen: int = 0
    paid_fen: int = 0
    settled_at: float | None = None


@dataclass
class _Scripted:
    remaining: int
    code: int | None = None
    status: int | None = None
    delay_seconds: float = 0.0


@dataclass
class _State:
    cars: dict[str, _Car] = field(default_factory=dict)
    orders: dict[str, tuple[str, Answer]] = field(default_factory=dict)  # our order id -> (fingerprint, answer)
    nonces: dict[str, float] = field(default_factory=dict)
    scripts: dict[str, deque[_Scripted]] = field(default_factory=dict)
    notifications: list[Answer] = field(default_factory=list)
    exits: list[Answer] = field(default_factory=list)
    next_no: int = 1


class CarParkEmulator(LoopbackServer):
    """Emulate a vendor's car-park system over real HTTP on loopback."""

    thread_name = "carpark-emulator"
    server_version = "CarParkEmulator/1.0"

    def __init__(self, app_id: str, secret: str, host: str = "127.0.0.1", port: int = 0, *,
                 park_code: str = "P001", levels: dict[str, int] | None = None,
                 webhook_url: str | None = None, clock: Callable[[], float] = time.time,
                 tariff: tariffs.Tariff | None = None, tz: tzinfo = UTC):
        super().__init__(host, port)
        # A mallapp tariff to bill with (the one our car_parks row declares, so our quotes and its bills
        # agree), in the mall's zone; None: the built-in tariff (:func:`fee`).
        self.tariff = tariff
        self.tz = tz
        self.app_id = app_id
        self.secret = secret
        self.park_code = park_code
        self.levels = dict(levels or DEFAULT_LEVELS)
        self.webhook_url = webhook_url
        self.clock = clock
        self._lock = threading.RLock()
        self._state = _State()

    # -- test hooks ---------------------------------------------------------------------------

    def drive_in(self, plate: str, *, bay: str | None = None, at: float | None = None) -> str:
        """A car passes the entry camera (at ``at``, default now); notify the webhook; return its order number."""
        with self._lock:
            if plate in self._state.cars:
                raise ValueError(f"{plate} is already in the car park")
            order_no = f"{self.park_code}-{self._state.next_no:08d}"
            self._state.next_no += 1
            car = _Car(plate, order_no, self.clock() if at is None else at)
            self._state.cars[plate] = car
            if bay:
                self.park(plate, bay)
        self._notify({"event": "entry", "plateNo": plate, "orderNo": order_no,
                      "entryTime": int(car.entered_at * 1000), "gate": "IN-1"})
        return order_no

    def drive_out(self, plate: str) -> bool:
        """A car passes the exit (paid or let through by staff); notify the webhook; return whether it had paid."""
        with self._lock:
            car = self._state.cars.pop(plate)
            bill = self._bill(car, self.clock())
            paid = bill["payableAmount"] == 0
            event = {"event": "exit", "plateNo": plate, "orderNo": car.order_no,
                     "entryTime": int(car.entered_at * 1000), "exitTime": int(self.clock() * 1000),
                     "totalAmount": bill["totalAmount"], "discountAmount": bill["discountAmount"],
                     "paidAmount": bill["paidAmount"], "payableAmount": bill["payableAmount"],
                     "openedBy": "camera" if paid else "staff", "gate": "OUT-1"}
            self._state.exits.append(event)
        self._notify(event)
        return paid

    def park(self, plate: str, bay: str) -> None:
        """A bay camera sees the plate in ``bay`` (a code like ``B2-C058``: level, dash, bay)."""
        with self._lock:
            car = self._state.cars[plate]
            car.bay, car.seen_at = bay, self.clock()

    def fail_next(self, service: str, *, code: int | None = None, status: int | None = None,
                  delay_seconds: float = 0.0, times: int = 1) -> None:
        """Make the next ``times`` calls of ``service`` (``bill/pay``…) answer ``code`` or HTTP ``status``
        without acting, or act and then answer ``delay_seconds`` late (a lost answer, for timeouts)."""
        with self._lock:
            self._state.scripts.setdefault(service, deque()).append(
                _Scripted(times, code=code, status=status, delay_seconds=delay_seconds))

    def reset(self) -> None:
        """Empty the car park and forget payments, nonces, scripts and notifications."""
        with self._lock:
            self._state = _State()

    def notifications(self) -> list[Answer]:
        """Return what was posted to the webhook and how it answered."""
        with self._lock:
            return list(self._state.notifications)

    def payments(self) -> list[Answer]:
        with self._lock:
            return [answer["data"] for _, answer in self._state.orders.values()]

    def take_payment(self, order_id: str, paid_fen: int, *, discount_fen: int = 0, at: float | None = None,
                     order_no: str = "") -> Answer:
        """Record a payment the car park took without a car in it now (another channel, an earlier day):
        bill/payments lists it at ``at`` (default now). Returns its record."""
        with self._lock:
            data = {"outTradeNo": order_id, "orderNo": order_no or f"{self.park_code}-X{len(self._state.orders) + 1}",
                    "tradeNo": f"T{len(self._state.orders) + 1:010d}", "payAmount": paid_fen,
                    "discountAmount": discount_fen, "payableAmount": 0,
                    "payTime": int((self.clock() if at is None else at) * 1000)}
            self._state.orders[order_id] = ("taken", _ok(data))
            return data

    # -- the API -------------------------------------------------------------------------------

    def _fee(self, car: _Car, seconds: float) -> int:
        """The fee of ``car``'s stay if it lasted ``seconds``."""
        if self.tariff is None:
            return fee(int(seconds))
        entered = datetime.fromtimestamp(car.entered_at, UTC)
        return tariffs.fee(self.tariff, plates.vehicle_type(car.plate), entered,
                           entered + timedelta(seconds=max(0.0, seconds)), tz=self.tz).gross_fen

    def _bill(self, car: _Car, now: float) -> Answer:
        # Within the grace period after settling, the bill stays as it was when settled.
        grace = GRACE_SECONDS if self.tariff is None else self.tariff.grace_minutes * 60
        if car.settled_at is not None and now - car.settled_at <= grace:
            now = car.settled_at
        stay = max(0.0, now - car.entered_at) if self.tariff is not None else max(0, int(now - car.entered_at))
        gross = self._fee(car, stay)
        discount = min(gross, gross - self._fee(car, max(0, stay - car.free_seconds)) + car.discount_fen)
        return {"plateNo": car.plate, "orderNo": car.order_no, "entryTime": int(car.entered_at * 1000),
                "totalAmount": gross, "discountAmount": discount, "paidAmount": car.paid_fen,
                "payableAmount": max(0, gross - discount - car.paid_fen), "parkCode": self.park_code}

    def _car(self, body: Answer) -> _Car | Answer:
        car = self._state.cars.get(str(body.get("plateNo") or ""))
        return car if car is not None else _error(2001, "car not in park")

    def _query(self, body: Answer) -> Answer:
        car = self._car(body)
        return car if isinstance(car, dict) else _ok(self._bill(car, self.clock()))

    def _pay(self, body: Answer) -> Answer:
        order_id = body.get("outTradeNo")
        items = body.get("items") or []
        amount = body.get("payAmount")
        if not isinstance(order_id, str) or not order_id or not isinstance(amount, int) or amount < 0 \
                or not isinstance(items, list):
            return _error(4000, "bad request")
        fingerprint = canonical({"plateNo": body.get("plateNo"), "orderNo": body.get("orderNo"),
                                 "payAmount": amount, "items": items})
        if order_id in self._state.orders:
            first, answer = self._state.orders[order_id]
            return answer if first == fingerprint else _error(2003, "outTradeNo already used")
        car = self._car(body)
        if isinstance(car, dict):
            return car
        if body.get("orderNo") != car.order_no:
            return _error(2004, "order number is not current")
        now = self.clock()
        before = self._bill(car, now)
        if before["payableAmount"] == 0:
            return _error(2002, "already paid")
        seconds = fen = 0
        for item in items:
            if not isinstance(item, dict) or item.get("type") not in ("time", "money") \
                    or not isinstance(item.get("value"), int) or item["value"] <= 0:
                return _error(4000, "bad item")
            if item["type"] == "time":
                seconds += item["value"]
            else:
                fen += item["value"]
        trial = _Car(car.plate, car.order_no, car.entered_at, free_seconds=car.free_seconds + seconds,
                     discount_fen=car.discount_fen + fen, paid_fen=car.paid_fen)
        after_items = self._bill(trial, now)
        if amount != after_items["payableAmount"]:
            return _error(2005, f"payAmount must be {after_items['payableAmount']}")
        car.free_seconds, car.discount_fen = trial.free_seconds, trial.discount_fen
        car.paid_fen += amount
        car.settled_at = now
        answer = _ok({"outTradeNo": order_id, "orderNo": car.order_no, "tradeNo": f"T{len(self._state.orders) + 1:010d}",
                      "payAmount": amount, "discountAmount": after_items["discountAmount"] - before["discountAmount"],
                      "payableAmount": 0, "payTime": int(now * 1000)})
        self._state.orders[order_id] = (fingerprint, answer)
        return answer

    def _payments(self, body: Answer) -> Answer:
        start, end = body.get("startTime"), body.get("endTime")
        page, size = body.get("pageNo", 1), body.get("pageSize", 100)
        if not all(isinstance(v, int) for v in (start, end, page, size)) or page < 1 or not 1 <= size <= 500:
            return _error(4000, "bad request")
        taken = sorted((answer["data"] for _, answer in self._state.orders.values()
                        if start <= answer["data"]["payTime"] < end), key=lambda d: (d["payTime"], d["tradeNo"]))
        rows = [{key: row[key] for key in ("outTradeNo", "orderNo", "tradeNo", "payAmount", "discountAmount", "payTime")}
                for row in taken[(page - 1) * size:page * size]]
        return _ok({"payments": rows, "total": len(taken), "pageNo": page})

    def _location(self, body: Answer) -> Answer:
        car = self._car(body)
        if isinstance(car, dict):
            return car
        if car.bay is None:
            return _ok({"plateNo": car.plate})
        return _ok({"plateNo": car.plate, "floor": car.bay.split("-")[0], "spaceNo": car.bay,
                    "seenTime": int((car.seen_at or 0) * 1000)})

    def _spaces(self, _body: Answer) -> Answer:
        taken: dict[str, int] = {}
        for car in self._state.cars.values():
            if car.bay:
                level = car.bay.split("-")[0]
                taken[level] = taken.get(level, 0) + 1
        return _ok({"floors": [{"floor": level, "total": total, "free": max(0, total - taken.get(level, 0))}
                               for level, total in self.levels.items()]})

    def _refusal(self, body: Answer) -> Answer | None:
        if body.get("appId") != self.app_id:
            return _error(1004, "unknown appId")
        code = verify(body, self.secret, self.clock())
        if code:
            return _error(code, "invalid sign" if code == 1001 else "timestamp out of window")
        nonce = str(body.get("nonce") or "")
        now = self.clock()
        # Forget nonces once their timestamps could no longer pass the window anyway.
        self._state.nonces = {n: at for n, at in self._state.nonces.items() if now - at <= 2 * TIMESTAMP_WINDOW_SECONDS}
        if not nonce or nonce in self._state.nonces:
            return _error(1003, "nonce replayed")
        self._state.nonces[nonce] = now
        return None

    def _dispatch(self, method: str, path: str, raw: bytes) -> tuple[int, Answer | None, float]:
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return 400, None, 0.0
        if path.startswith(CONTROL_PREFIX):
            try:
                return 200, self._control(method, path[len(CONTROL_PREFIX):], body), 0.0
            except (KeyError, ValueError, TypeError) as exc:   # no such car, a car already in, a missing field
                return 400, {"error": f"{type(exc).__name__}: {exc}"}, 0.0
        service = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else ""
        handler = _ROUTES.get(service)
        if method != "POST" or handler is None:
            return 404, None, 0.0
        with self._lock:
            delay = 0.0
            queue = self._state.scripts.get(service)
            if queue:
                scripted = queue[0]
                scripted.remaining -= 1
                if scripted.remaining == 0:
                    queue.popleft()
                if scripted.status is not None:
                    return scripted.status, None, 0.0
                if scripted.code is not None:
                    return 200, _error(scripted.code, "scripted failure"), 0.0
                delay = scripted.delay_seconds
            answer = self._refusal(body) or handler(self, body)
        return 200, answer, delay

    def _control(self, method: str, name: str, body: Answer) -> Answer:
        match method, name:
            case "POST", "drive-in":
                at = self.clock() - 60 * float(body.get("minutes_ago") or 0)
                return {"orderNo": self.drive_in(str(body["plate"]), bay=body.get("bay"), at=at)}
            case "POST", "drive-out":
                return {"paid": self.drive_out(str(body["plate"]))}
            case "POST", "park":
                self.park(str(body["plate"]), str(body["bay"]))
            case "POST", "fail":
                self.fail_next(str(body["service"]), code=body.get("code"), status=body.get("status"),
                               delay_seconds=float(body.get("delay_seconds") or 0), times=int(body.get("times") or 1))
            case "POST", "webhook":
                self.webhook_url = body.get("url")
            case "POST", "take-payment":
                at = self.clock() - 60 * float(body.get("minutes_ago") or 0)
                return self.take_payment(str(body["order_id"]), int(body["paid_fen"]),
                                         discount_fen=int(body.get("discount_fen") or 0), at=at)
            case "POST", "reset":
                self.reset()
            case "GET", "notifications":
                return {"notifications": self.notifications()}
            case _:
                return {"error": "unknown control"}
        return {}

    def _notify(self, event: Answer) -> None:
        url = self.webhook_url
        if not url:
            return
        fields = {**event, "appId": self.app_id, "parkCode": self.park_code,
                  "timestamp": int(self.clock() * 1000), "nonce": f"n{time.monotonic_ns():x}"}
        fields["sign"] = sign(fields, self.secret)
        record: Answer = {"url": url, "body": fields}
        try:
            record["status"] = requests.post(url, json=fields, timeout=5).status_code
        except requests.RequestException as exc:
            record["error"] = type(exc).__name__
        with self._lock:
            self._state.notifications.append(record)


_ROUTES: dict[str, Callable[[CarParkEmulator, Answer], Answer]] = {
    "bill/query": CarParkEmulator._query,
    "bill/pay": CarParkEmulator._pay,
    "car/location": CarParkEmulator._location,
    "space/free": CarParkEmulator._spaces,
    "bill/payments": CarParkEmulator._payments,
}


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m mallapp.devtools.carpark_emulator",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8012)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--webhook", default=None, help="URL the entry and exit notifications are posted to")
    args = parser.parse_args(argv)
    emulator = CarParkEmulator(args.app_id, args.secret, host=args.host, port=args.port, webhook_url=args.webhook)
    emulator.serve_until_interrupted(f"car-park emulator for {args.app_id}")


if __name__ == "__main__":
    main()
