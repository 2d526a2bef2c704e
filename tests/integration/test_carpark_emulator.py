"""mallapp.adapters.carpark_open against the car-park emulator, over real loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from mallapp.adapters.carpark import (
    AlreadyPaid,
    AmountMismatch,
    BillChanged,
    CarPark,
    CarParkUnavailable,
    Item,
    OrderReused,
    PlateNotFound,
    SignatureRefused,
)
from mallapp.adapters.carpark_open import OpenApiCarPark, verify
from mallapp.devtools.carpark_emulator import CarParkEmulator

APP_ID = "park-app-test"
SECRET = "carpark-secret-never-shown"
PLATE = "沪A12345"
NEW_ENERGY = "粤BD12345"


@pytest.fixture(scope="module")
def server() -> Iterator[CarParkEmulator]:
    with CarParkEmulator(APP_ID, SECRET) as emulator:
        yield emulator


@pytest.fixture
def park(server: CarParkEmulator) -> CarParkEmulator:
    server.reset()
    server.webhook_url = None
    return server


@pytest.fixture
def client(park: CarParkEmulator) -> OpenApiCarPark:
    return OpenApiCarPark(park.base_url, APP_ID, SECRET, timeout=0.5, retries=2)


def raw_post(park: CarParkEmulator, service: str, body: dict[str, Any]) -> dict[str, Any]:
    return requests.post(f"{park.base_url}/api/{service}", json=body, timeout=5).json()


def test_the_vendor_module_is_a_carpark(client: OpenApiCarPark) -> None:
    adapter: CarPark = client  # the type checker proves the Protocol; this proves the import
    assert callable(adapter.query_bill)


def test_query_returns_the_bill_in_fen(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    order_no = park.drive_in(PLATE, at=time.time() - 2 * 3600 - 60)
    bill = client.query_bill(PLATE)
    assert (bill.order_no, bill.gross_fen, bill.discount_fen, bill.paid_fen, bill.due_fen) == (order_no, 1500, 0, 0, 1500)
    assert bill.entered_at.tzinfo is not None


def test_query_of_an_unknown_plate_is_plate_not_found(client: OpenApiCarPark) -> None:
    with pytest.raises(PlateNotFound) as caught:
        client.query_bill(PLATE)
    assert caught.value.code == "carpark.plate_not_found" and caught.value.status == 404


def test_pay_with_items_settles_the_bill(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(NEW_ENERGY, at=time.time() - 3 * 3600 - 60)   # 4 hours started: 2000 fen
    bill = client.query_bill(NEW_ENERGY)
    items = [Item(code="tier", name="金卡 2 小时", seconds=2 * 3600), Item(code="coupon:7", name="商户停车券", fen=300)]
    payment = client.pay(plate=NEW_ENERGY, order_no=bill.order_no, order_id="ord-1", paid_fen=700, items=items)
    assert (payment.paid_fen, payment.discount_fen, payment.due_fen) == (700, 1300, 0)
    after = client.query_bill(NEW_ENERGY)
    assert (after.gross_fen, after.discount_fen, after.paid_fen, after.due_fen) == (2000, 1300, 700, 0)


def test_pay_retried_with_the_same_order_id_returns_the_first_result(park: CarParkEmulator,
                                                                     client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    bill = client.query_bill(PLATE)
    first = client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-2", paid_fen=bill.due_fen)
    again = client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-2", paid_fen=bill.due_fen)
    assert again == first
    assert len(park.payments()) == 1


def test_the_same_order_id_with_another_amount_is_refused(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    bill = client.query_bill(PLATE)
    client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-3", paid_fen=bill.due_fen)
    with pytest.raises(OrderReused):
        client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-3", paid_fen=bill.due_fen,
                   items=[Item(code="points", name="积分抵扣", fen=100)])


def test_a_second_payment_of_a_settled_bill_is_already_paid(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    bill = client.query_bill(PLATE)
    client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-4", paid_fen=bill.due_fen)
    with pytest.raises(AlreadyPaid) as caught:
        client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-5", paid_fen=bill.due_fen)
    assert caught.value.code == "carpark.already_paid"
    assert client.query_bill(PLATE).paid_fen == bill.due_fen


def test_an_amount_that_does_not_settle_the_bill_is_refused(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    bill = client.query_bill(PLATE)
    with pytest.raises(AmountMismatch):
        client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-6", paid_fen=bill.due_fen - 1)
    assert client.query_bill(PLATE).paid_fen == 0


def test_a_stale_order_number_is_bill_changed(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    old = client.query_bill(PLATE)
    park.drive_out(PLATE)
    park.drive_in(PLATE, at=time.time() - 3600)
    with pytest.raises(BillChanged):
        client.pay(plate=PLATE, order_no=old.order_no, order_id="ord-7", paid_fen=old.due_fen)


def test_a_forged_signature_is_refused(park: CarParkEmulator) -> None:
    park.drive_in(PLATE)
    forger = OpenApiCarPark(park.base_url, APP_ID, "not-the-secret")
    with pytest.raises(SignatureRefused) as caught:
        forger.query_bill(PLATE)
    assert caught.value.details["vendor_code"] == 1001 and SECRET not in str(caught.value.to_dict())


def test_a_stale_timestamp_is_refused(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE)
    body = client.signed({"plateNo": PLATE}, timestamp_ms=int((time.time() - 301) * 1000))
    assert raw_post(park, "bill/query", body)["code"] == 1002
    late = OpenApiCarPark(park.base_url, APP_ID, SECRET, clock=lambda: time.time() - 600)
    with pytest.raises(SignatureRefused):
        late.query_bill(PLATE)


def test_a_replayed_nonce_is_refused(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE)
    body = client.signed({"plateNo": PLATE}, nonce="nonce-once")
    assert raw_post(park, "bill/query", body)["code"] == 0
    assert raw_post(park, "bill/query", body)["code"] == 1003


def test_an_unknown_app_id_is_refused(park: CarParkEmulator) -> None:
    stranger = OpenApiCarPark(park.base_url, "someone-else", SECRET)
    with pytest.raises(SignatureRefused):
        stranger.free_spaces()


def test_a_pay_whose_answer_timed_out_is_retried_and_charged_once(park: CarParkEmulator,
                                                                  client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    bill = client.query_bill(PLATE)
    park.fail_next("bill/pay", delay_seconds=1.0)   # the car park takes the payment; the answer is lost
    payment = client.pay(plate=PLATE, order_no=bill.order_no, order_id="ord-8", paid_fen=bill.due_fen)
    assert payment.paid_fen == bill.due_fen
    assert len(park.payments()) == 1
    assert client.query_bill(PLATE).paid_fen == bill.due_fen


def test_a_car_park_that_keeps_timing_out_is_unavailable(park: CarParkEmulator) -> None:
    park.drive_in(PLATE)
    park.fail_next("bill/query", delay_seconds=0.6, times=3)
    impatient = OpenApiCarPark(park.base_url, APP_ID, SECRET, timeout=0.3, retries=2)
    with pytest.raises(CarParkUnavailable) as caught:
        impatient.query_bill(PLATE)
    assert caught.value.code == "carpark.unavailable" and caught.value.status == 502


def test_busy_and_server_errors_are_unavailable(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE)
    park.fail_next("bill/query", code=5000)
    with pytest.raises(CarParkUnavailable):
        client.query_bill(PLATE)
    park.fail_next("bill/query", status=503)
    with pytest.raises(CarParkUnavailable):
        client.query_bill(PLATE)
    assert client.query_bill(PLATE).plate == PLATE


def test_a_stopped_car_park_is_unavailable() -> None:
    emulator = CarParkEmulator(APP_ID, SECRET).start()
    url = emulator.base_url
    emulator.stop()
    with pytest.raises(CarParkUnavailable):
        OpenApiCarPark(url, APP_ID, SECRET, timeout=0.5, retries=1).free_spaces()


def test_bay_and_free_spaces_per_level(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, bay="B2-C058")
    park.drive_in(NEW_ENERGY)
    assert client.locate(NEW_ENERGY) is None
    bay = client.locate(PLATE)
    assert bay is not None and (bay.level, bay.bay) == ("B2", "B2-C058")
    spaces = {row.level: (row.free, row.total) for row in client.free_spaces()}
    assert spaces == {"B1": (120, 120), "B2": (79, 80)}
    with pytest.raises(PlateNotFound):
        client.locate("京N00000")


class _Receiver:
    """A loopback webhook that records what it is posted."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/carpark"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_entry_and_exit_are_posted_signed_to_the_webhook(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    receiver = _Receiver()
    try:
        park.webhook_url = receiver.url
        order_no = park.drive_in(PLATE, at=time.time() - 3600)
        bill = client.query_bill(PLATE)
        client.pay(plate=PLATE, order_no=order_no, order_id="ord-9", paid_fen=bill.due_fen)
        assert park.drive_out(PLATE) is True
        park.drive_in(NEW_ENERGY, at=time.time() - 3600)
        assert park.drive_out(NEW_ENERGY) is False   # the barrier opened by staff
    finally:
        receiver.close()
    events = [(body["event"], body["plateNo"]) for body in receiver.bodies]
    assert events == [("entry", PLATE), ("exit", PLATE), ("entry", NEW_ENERGY), ("exit", NEW_ENERGY)]
    assert all(verify(body, SECRET, time.time()) == 0 for body in receiver.bodies)
    assert verify({**receiver.bodies[1], "paidAmount": 0}, SECRET, time.time()) == 1001
    assert receiver.bodies[1]["orderNo"] == order_no and receiver.bodies[1]["openedBy"] == "camera"
    assert receiver.bodies[3]["openedBy"] == "staff" and receiver.bodies[3]["payableAmount"] > 0
    assert len({body["nonce"] for body in receiver.bodies}) == 4
    assert all(record["status"] == 200 for record in park.notifications())


def test_control_hooks_over_http_drive_a_car_in(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    answer = requests.post(f"{park.base_url}/__emulator/drive-in",
                           json={"plate": PLATE, "bay": "B1-A001", "minutes_ago": 90}, timeout=5).json()
    bill = client.query_bill(PLATE)
    assert bill.order_no == answer["orderNo"] and bill.due_fen == 1000
    requests.post(f"{park.base_url}/__emulator/drive-out", json={"plate": PLATE}, timeout=5)
    with pytest.raises(PlateNotFound):
        client.query_bill(PLATE)


def test_a_bad_control_call_is_a_400_not_a_dropped_connection(park: CarParkEmulator) -> None:
    park.drive_in(PLATE)
    again = requests.post(f"{park.base_url}/__emulator/drive-in", json={"plate": PLATE}, timeout=5)
    gone = requests.post(f"{park.base_url}/__emulator/drive-out", json={"plate": NEW_ENERGY}, timeout=5)
    assert (again.status_code, gone.status_code) == (400, 400)


def test_concurrent_payments_of_one_bill_settle_it_once(park: CarParkEmulator, client: OpenApiCarPark) -> None:
    park.drive_in(PLATE, at=time.time() - 3600)
    bill = client.query_bill(PLATE)
    outcomes: list[str] = []

    def pay(order_id: str) -> None:
        try:
            client.pay(plate=PLATE, order_no=bill.order_no, order_id=order_id, paid_fen=bill.due_fen)
            outcomes.append("paid")
        except AlreadyPaid:
            outcomes.append("already_paid")

    threads = [threading.Thread(target=pay, args=(f"ord-race-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_paid"] * 5 + ["paid"]
    assert client.query_bill(PLATE).paid_fen == bill.due_fen


# --- the emulator billing with a mallapp tariff (parkpay) ----------------------------------------------

def test_the_emulator_bills_with_our_tariff_and_values_time_as_our_benefits_do() -> None:
    import random
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from factories import MIXC_TARIFF

    from mallapp.domain.parking.tariff import fee, parse_tariff

    tariff, tz = parse_tariff(MIXC_TARIFF), ZoneInfo("Asia/Shanghai")
    now = [datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()]
    rng = random.Random(15)
    with CarParkEmulator(APP_ID, SECRET, clock=lambda: now[0], tariff=tariff, tz=tz) as park:
        adapter = OpenApiCarPark(park.base_url, APP_ID, SECRET, timeout=2, retries=0, clock=lambda: now[0])
        for i in range(60):
            plate = NEW_ENERGY if i % 3 == 0 else PLATE
            park.reset()
            entered = now[0] - rng.randint(0, 3 * 86400)
            park.drive_in(plate, at=entered)
            bill = adapter.query_bill(plate)
            start, end = datetime.fromtimestamp(entered, UTC), datetime.fromtimestamp(now[0], UTC)
            kind = "new_energy" if plate == NEW_ENERGY else "small"
            assert bill.gross_fen == fee(tariff, kind, start, end, tz=tz).gross_fen
            seconds = rng.choice([3600, 2 * 3600, 5400])
            valued = bill.gross_fen - fee(tariff, kind, start, max(start, end - timedelta(seconds=seconds)), tz=tz).gross_fen
            if bill.due_fen == 0:
                continue
            payment = adapter.pay(plate=plate, order_no=bill.order_no, order_id=f"agree-{i}",
                                  paid_fen=bill.due_fen - valued, items=[Item(code="points", name="积分", seconds=seconds)])
            assert (payment.discount_fen, payment.due_fen) == (valued, 0)
