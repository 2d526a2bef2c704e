"""Demo car traffic: cars come and go through the car-park emulator, and drivers pay by plate.

``mallapp demo`` runs :class:`CarTraffic` beside the web server. Every few seconds a car drives in (a
random plate, parked in a random bay of B1 or B2, where the bay camera sees it; its stay started up
to four hours ago, so bills are not all zero) or one that has stayed drives out. Before it leaves, a
driver whose stay costs something pays through mallapp's public pay-by-plate endpoint, as someone
scanning the car park's payment code would: a WeChat Pay Native order, paid at the WeChat emulator,
whose signed notification reaches mallapp, which tells the car park. One car in ten leaves through a
barrier the staff open instead (an unpaid exit, for ops). Every step goes through the same HTTP
paths a real car park, WeChat Pay and a driver would use; the emulators' notifications open and
close the sessions.

The demo member's car (``demo_parking.DEMO_PLATE``) is parked once at start (in ``B2-C058``, two
hours ago) and never driven out, so the README's tour can pay for it with points and find it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from typing import Any

import requests

from mallapp.devtools.carpark_emulator import CarParkEmulator
from mallapp.devtools.wechat_emulator import WeChatEmulator

log = logging.getLogger("mallapp.devtools.cars")

PROVINCES = "沪沪沪沪苏浙皖京"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def random_plate(rng: random.Random) -> str:
    """A valid plate: mostly ordinary, one in four new-energy (8 characters)."""
    head = rng.choice(PROVINCES) + rng.choice(LETTERS[:12])
    if rng.random() < 0.25:
        return head + rng.choice("DF") + "".join(rng.choice("0123456789") for _ in range(5))
    return head + "".join(rng.choice("0123456789" + LETTERS) for _ in range(5))


class CarTraffic(threading.Thread):
    """Drive demo cars in and out until :meth:`stop`; drivers pay through ``base_url``'s public endpoints."""

    member_bay = "B2-C058"  # where the demo member's car stays

    def __init__(self, carpark: CarParkEmulator, wechat: WeChatEmulator, base_url: str, *,
                 levels: dict[str, int], member_plate: str | None = None, interval_s: float = 8.0,
                 max_cars: int = 30, seed: int | None = None):
        super().__init__(name="demo-car-traffic", daemon=True)
        self.carpark = carpark
        self.wechat = wechat
        self.base_url = base_url.rstrip("/")
        self.levels = levels
        self.member_plate = member_plate
        self.interval_s = interval_s
        self.max_cars = max_cars
        self.rng = random.Random(seed)
        self.parked: list[str] = []
        self._stop = threading.Event()
        self._http = requests.Session()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if not self._wait_for_web():
            return
        if self.member_plate:
            self._arrive(self.member_plate, bay=self.member_bay, minutes_ago=120)
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # a demo helper: log, and keep the traffic going
                log.exception("demo car traffic step failed")

    def _wait_for_web(self, timeout_s: float = 120.0) -> bool:
        """Wait until the web server answers (its webhook must be up before the first car arrives)."""
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if self._http.get(f"{self.base_url}/healthz", timeout=2).ok:
                    return True
            except requests.RequestException:
                pass
            self._stop.wait(0.5)
        return False

    def step(self) -> None:
        """One car in, or one car out (about as many of each while the car park is half full)."""
        if self.parked and (len(self.parked) >= self.max_cars or self.rng.random() < 0.45):
            self._leave(self.parked.pop(self.rng.randrange(len(self.parked))))
        else:
            self._arrive(random_plate(self.rng), minutes_ago=self.rng.randint(5, 240))

    def _random_bay(self) -> str:
        level = self.rng.choice(sorted(self.levels))
        return f"{level}-C{self.rng.randint(1, self.levels[level]):03d}"

    def _arrive(self, plate: str, *, bay: str | None = None, minutes_ago: int) -> None:
        try:
            self.carpark.drive_in(plate, bay=bay or self._random_bay(), at=time.time() - minutes_ago * 60)
        except ValueError:  # already in
            return
        if plate != self.member_plate:
            self.parked.append(plate)

    def _leave(self, plate: str) -> None:
        if self.rng.random() >= 0.1:
            self._pay(plate)
        self.carpark.drive_out(plate)

    def _pay(self, plate: str) -> None:
        """Pay the plate's bill as a driver without an account: quote, Native order, paid in WeChat."""
        quote = self._post("/api/v1/parking/quote", {"plate": plate})
        if quote is None or quote["cash_fen"] == 0:
            return
        payment = self._post("/api/v1/parking/payments", {"plate": plate, "expected_cash_fen": quote["cash_fen"],
                                                          "idempotency_key": uuid.uuid4().hex})
        if payment is None or payment["status"] != "pending":
            return
        self.wechat.pay_order(payment["order_id"], openid=f"o-driver-{uuid.uuid4().hex[:12]}")
        for _ in range(20):  # the notification settles it with the car park within moments
            status = self._http.get(f"{self.base_url}/api/v1/parking/payments/{payment['order_id']}", timeout=5)
            if status.ok and status.json()["status"] != "pending" and status.json()["status"] != "paying":
                return
            time.sleep(0.25)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        answer = self._http.post(f"{self.base_url}{path}", json=body, timeout=10)
        if answer.ok:
            return answer.json()
        log.info("demo driver: %s %s answered %s %s", path, body.get("plate"), answer.status_code, answer.text[:200])
        return None
