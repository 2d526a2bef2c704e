"""mallapp.adapters.wechatpay_v3 against the WeChat emulator's WeChat Pay, over real loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from factories import WECHATPAY_NOTIFY_URL

from mallapp.adapters import wechatpay_crypto as crypto
from mallapp.adapters.wechatpay import (
    PayClient,
    WeChatPayOrderNotFound,
    WeChatPayRefused,
    WeChatPaySignatureInvalid,
    WeChatPayUnavailable,
)
from mallapp.adapters.wechatpay_v3 import WeChatPayV3
from mallapp.devtools import wechatpay_keys
from mallapp.devtools.wechat_emulator import WeChatEmulator
from mallapp.runtime import Runtime

APPID = "wxtest00000000001"  # the appid tests/conftest.py gives the emulator and [wechat]
ORDER = "P20260310000001"
OPENID = "o-ada"
JSAPI = "/v3/pay/transactions/jsapi"


def make_client(emulator: WeChatEmulator, keys: wechatpay_keys.DevKeys, *, notify_url: str = WECHATPAY_NOTIFY_URL,
                **kwargs: Any) -> WeChatPayV3:
    options: dict[str, Any] = {"timeout": 2.0, "retries": 0, **kwargs}
    return WeChatPayV3(api_base=emulator.base_url, appid=APPID, mchid=keys.mchid, merchant_serial=keys.merchant_serial,
                       private_key=options.pop("private_key", None) or crypto.load_private_key(keys.merchant_private_pem),
                       platform_public_key=crypto.load_public_key(keys.platform_public_pem),
                       platform_serial=keys.platform_serial, apiv3_key=keys.apiv3_key, notify_url=notify_url, **options)


@pytest.fixture
def pay(emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys) -> WeChatPayV3:
    return make_client(emulator, wechatpay_dev_keys)


def expires() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=15)


def jsapi(pay: WeChatPayV3, no: str = ORDER, total: int = 500, **kwargs: Any):
    return pay.create_jsapi_order(out_trade_no=no, description=kwargs.pop("description", "停车费 / Parking fee"),
                                  total_fen=total, openid=kwargs.pop("openid", OPENID),
                                  expires_at=kwargs.pop("expires_at", None) or expires())


def paid(pay: WeChatPayV3, emulator: WeChatEmulator, no: str = ORDER, total: int = 500) -> None:
    jsapi(pay, no, total)
    emulator.pay_order(no, deliver=False)


class Receiver:
    """Our notify endpoint's stand-in: records what WeChat Pay POSTs and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/parking/wechatpay/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


# -- orders ---------------------------------------------------------------------------------------

def test_the_client_is_a_pay_client(pay: WeChatPayV3) -> None:
    client: PayClient = pay
    assert callable(client.parse_notification)


def test_jsapi_order_answers_request_payment_fields_with_a_pay_sign_the_merchant_key_verifies(
        pay: WeChatPayV3, emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    prepay = jsapi(pay)
    fields = prepay.jsapi
    assert fields is not None and set(fields) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert fields["package"] == f"prepay_id={prepay.prepay_id}" and fields["signType"] == "RSA"
    message = crypto.pay_sign_message(APPID, fields["timeStamp"], fields["nonceStr"], fields["package"])
    merchant_public = crypto.load_public_key(wechatpay_dev_keys.merchant_public_pem)
    assert crypto.verify(merchant_public, message, fields["paySign"])
    sent = json.loads(emulator.pay.requests()[-1]["body"])
    assert sent["appid"] == APPID and sent["mchid"] == wechatpay_dev_keys.mchid
    assert sent["amount"] == {"total": 500, "currency": "CNY"} and sent["payer"] == {"openid": OPENID}
    assert sent["notify_url"] == WECHATPAY_NOTIFY_URL and sent["time_expire"].endswith("+08:00")


def test_native_order_answers_a_code_url(pay: WeChatPayV3) -> None:
    prepay = pay.create_native_order(out_trade_no="N20260310000001", description="停车费 / Parking fee",
                                     total_fen=800, expires_at=expires())
    assert prepay.code_url and prepay.code_url.startswith("weixin://wxpay/bizpayurl?pr=") and prepay.jsapi is None


def test_creating_the_same_order_again_answers_the_same_prepay_id(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    first, again = jsapi(pay), jsapi(pay)
    assert first.prepay_id == again.prepay_id
    assert len(emulator.orders()) == 1


def test_the_same_out_trade_no_with_another_amount_is_refused(pay: WeChatPayV3) -> None:
    jsapi(pay, total=500)
    with pytest.raises(WeChatPayRefused) as caught:
        jsapi(pay, total=600)
    assert caught.value.code == "wechatpay.refused"
    assert caught.value.details["wechatpay_code"] == "INVALID_REQUEST" and caught.value.details["status"] == 400


def test_creating_a_paid_order_again_is_refused_orderpaid(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    with pytest.raises(WeChatPayRefused) as caught:
        jsapi(pay)
    assert caught.value.details["wechatpay_code"] == "ORDERPAID"


def test_query_says_notpay_then_success_once_the_member_paid(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    jsapi(pay)
    assert pay.query_order(ORDER).trade_state == "NOTPAY"
    emulator.pay_order(ORDER, deliver=False)
    order = pay.query_order(ORDER)
    assert order.trade_state == "SUCCESS" and order.total_fen == 500 and order.payer_openid == OPENID
    assert order.transaction_id and order.success_time is not None and order.success_time.tzinfo == UTC


def test_query_of_an_unknown_order_is_order_not_found(pay: WeChatPayV3) -> None:
    with pytest.raises(WeChatPayOrderNotFound) as caught:
        pay.query_order("P-NEVER-CREATED")
    assert caught.value.code == "wechatpay.order_not_found" and caught.value.status == 404


def test_a_request_signed_with_another_merchant_key_is_refused_sign_error(
        emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    stranger = make_client(emulator, wechatpay_dev_keys,
                           private_key=crypto.load_private_key(wechatpay_keys.make().merchant_private_pem))
    with pytest.raises(WeChatPayRefused) as caught:
        jsapi(stranger)
    assert caught.value.details["wechatpay_code"] == "SIGN_ERROR" and caught.value.details["status"] == 401
    assert caught.value.details["signed"] is False  # WeChat Pay cannot sign for a merchant it did not recognise
    assert emulator.orders() == []


# -- notifications --------------------------------------------------------------------------------

def test_paying_posts_a_signed_encrypted_notification_that_parses(
        emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys, receiver: Receiver) -> None:
    pay = make_client(emulator, wechatpay_dev_keys, notify_url=receiver.url)
    jsapi(pay)
    headers, body = emulator.pay_order(ORDER)
    assert len(receiver.received) == 1 and receiver.received[0][1] == body
    delivered_headers = receiver.received[0][0]
    assert delivered_headers["Wechatpay-Signature"] == headers["Wechatpay-Signature"]
    assert delivered_headers["Wechatpay-Serial"] == wechatpay_dev_keys.platform_serial
    notice = pay.parse_notification(delivered_headers, body)
    assert notice.event_type == "TRANSACTION.SUCCESS" and notice.notification_id
    assert notice.order is not None and notice.order.out_trade_no == ORDER
    assert notice.order.trade_state == "SUCCESS" and notice.order.total_fen == 500
    envelope = json.loads(body)
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM" and ORDER not in body.decode()
    assert emulator.notifications()[-1]["delivered"] == 200


def test_an_undeliverable_notification_is_recorded_and_still_returned(pay: WeChatPayV3,
                                                                      emulator: WeChatEmulator) -> None:
    jsapi(pay)
    headers, body = emulator.pay_order(ORDER)  # nothing listens on WECHATPAY_NOTIFY_URL
    record = emulator.notifications()[-1]
    assert record["delivered"] is None and record["url"] == WECHATPAY_NOTIFY_URL
    assert pay.parse_notification(headers, body).order.out_trade_no == ORDER  # type: ignore[union-attr]


def _notice(pay: WeChatPayV3, emulator: WeChatEmulator) -> tuple[dict[str, str], bytes]:
    jsapi(pay)
    return emulator.pay_order(ORDER, deliver=False)


def test_a_notification_with_a_tampered_body_is_refused(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    headers, body = _notice(pay, emulator)
    with pytest.raises(WeChatPaySignatureInvalid) as caught:
        pay.parse_notification(headers, body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESS "))
    assert caught.value.code == "wechatpay.signature_invalid" and caught.value.status == 400


def test_a_notification_with_a_forged_signature_is_refused(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    headers, body = _notice(pay, emulator)
    forger = crypto.load_private_key(wechatpay_keys.make().platform_private_pem)
    forged = {**headers, "Wechatpay-Signature": crypto.sign(forger, crypto.answer_message(
        headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body.decode()))}
    with pytest.raises(WeChatPaySignatureInvalid):
        pay.parse_notification(forged, body)


def test_a_stale_notification_is_refused_even_with_a_good_signature(
        emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    pay = make_client(emulator, wechatpay_dev_keys)
    headers, body = _notice(pay, emulator)
    assert pay.parse_notification(headers, body).order is not None
    six_minutes_later = make_client(emulator, wechatpay_dev_keys, clock=lambda: time.time() + 360)
    with pytest.raises(WeChatPaySignatureInvalid):
        six_minutes_later.parse_notification(headers, body)


def test_a_notification_naming_another_serial_is_refused(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    headers, body = _notice(pay, emulator)
    with pytest.raises(WeChatPaySignatureInvalid):
        pay.parse_notification({**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000"}, body)


def test_a_signed_notification_whose_resource_does_not_decrypt_is_refused(
        emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    other = make_client(emulator, wechatpay_dev_keys)
    other._apiv3_key = "x" * 32  # another merchant's APIv3 key: the GCM tag cannot match
    headers, body = _notice(other, emulator)
    with pytest.raises(WeChatPaySignatureInvalid):
        other.parse_notification(headers, body)


def test_a_notification_for_another_app_is_refused(emulator: WeChatEmulator,
                                                  wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    headers, body = _notice(make_client(emulator, wechatpay_dev_keys), emulator)
    other_app = make_client(emulator, wechatpay_dev_keys)
    other_app.appid = "wx-another-mini-program"
    with pytest.raises(WeChatPaySignatureInvalid):
        other_app.parse_notification(headers, body)


def test_header_names_are_read_whatever_their_case(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    headers, body = _notice(pay, emulator)
    assert pay.parse_notification({k.lower(): v for k, v in headers.items()}, body).order is not None


# -- close ----------------------------------------------------------------------------------------

def test_close_makes_the_order_unpayable_and_closing_again_is_fine(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    jsapi(pay)
    pay.close_order(ORDER)
    pay.close_order(ORDER)
    assert pay.query_order(ORDER).trade_state == "CLOSED"
    with pytest.raises(ValueError):
        emulator.pay_order(ORDER, deliver=False)
    with pytest.raises(WeChatPayRefused) as caught:
        jsapi(pay)
    assert caught.value.details["wechatpay_code"] == "ORDER_CLOSED"


def test_closing_a_paid_order_is_refused_orderpaid(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    with pytest.raises(WeChatPayRefused) as caught:
        pay.close_order(ORDER)
    assert caught.value.details["wechatpay_code"] == "ORDERPAID"


def test_closing_an_unknown_order_is_order_not_found(pay: WeChatPayV3) -> None:
    with pytest.raises(WeChatPayOrderNotFound):
        pay.close_order("P-NEVER-CREATED")


# -- refunds --------------------------------------------------------------------------------------

def refund(pay: WeChatPayV3, no: str = "R20260310000001", fen: int = 200, total: int = 500):
    return pay.refund(out_trade_no=ORDER, out_refund_no=no, refund_fen=fen, total_fen=total, reason="车场拒绝 / refused")


def test_refund_succeeds_and_the_same_refund_again_answers_the_same(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    first = refund(pay)
    again = refund(pay)
    assert first.status == "SUCCESS" and first.refund_fen == 200 and first.out_trade_no == ORDER
    assert again.refund_id == first.refund_id
    assert pay.query_order(ORDER).trade_state == "REFUND"
    assert len(emulator.pay.refunds()) == 1


def test_refunding_more_than_is_left_is_refused(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    refund(pay, "R20260310000001", 400)
    with pytest.raises(WeChatPayRefused) as caught:
        refund(pay, "R20260310000002", 200)
    assert caught.value.details["wechatpay_code"] == "INVALID_REQUEST"
    assert refund(pay, "R20260310000003", 100).status == "SUCCESS"


def test_the_same_refund_number_with_another_amount_is_refused(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    refund(pay, fen=200)
    with pytest.raises(WeChatPayRefused) as caught:
        refund(pay, fen=300)
    assert caught.value.details["wechatpay_code"] == "INVALID_REQUEST"


def test_refunding_an_unpaid_or_unknown_order_is_refused(pay: WeChatPayV3) -> None:
    with pytest.raises(WeChatPayOrderNotFound):
        refund(pay)
    jsapi(pay)
    with pytest.raises(WeChatPayRefused):
        refund(pay)


def test_a_refund_notification_parses(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    done = refund(pay)
    notice = pay.parse_notification(*emulator.pay.refund_notification(done.out_refund_no, deliver=False))
    assert notice.event_type == "REFUND.SUCCESS" and notice.order is None
    assert notice.out_refund_no == done.out_refund_no and notice.refund_status == "SUCCESS"
    assert notice.refund is not None and notice.refund.refund_fen == 200 and notice.refund.out_trade_no == ORDER


def test_with_notify_refunds_each_refund_posts_its_notification(
        emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys, receiver: Receiver) -> None:
    pay = make_client(emulator, wechatpay_dev_keys, notify_url=receiver.url)
    paid(pay, emulator)
    emulator.pay.notify_refunds = True
    done = refund(pay)
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.02)
    notice = pay.parse_notification(*receiver.received[0])
    assert notice.event_type == "REFUND.SUCCESS" and notice.refund == done


# -- faults ---------------------------------------------------------------------------------------

def test_a_timeout_is_unavailable(emulator: WeChatEmulator, wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    pay = make_client(emulator, wechatpay_dev_keys, timeout=0.3)
    emulator.fail_next(JSAPI, delay_seconds=1.0)
    with pytest.raises(WeChatPayUnavailable) as caught:
        jsapi(pay)
    assert caught.value.code == "wechatpay.unavailable" and caught.value.status == 502


@pytest.mark.parametrize("fault", [{"status": 502}, {"status": 503}, {"code": "SYSTEM_ERROR"},
                                   {"code": "FREQUENCY_LIMITED"}, {"bad_signature": True}, {"status": 403},
                                   {"code": "ORDER_NOT_EXIST", "bad_signature": True}])
def test_server_errors_and_unverified_answers_are_unavailable(pay: WeChatPayV3, emulator: WeChatEmulator,
                                                              fault: dict[str, Any]) -> None:
    emulator.fail_next(JSAPI, **fault)
    with pytest.raises(WeChatPayUnavailable):
        jsapi(pay)


def test_a_refused_connection_is_unavailable(wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    with WeChatEmulator(APPID, "s") as gone:
        gone.configure_pay(wechatpay_dev_keys)
        pay = make_client(gone, wechatpay_dev_keys)
    with pytest.raises(WeChatPayUnavailable):
        pay.query_order(ORDER)


def test_one_retry_after_a_5xx_creates_the_order_once(emulator: WeChatEmulator,
                                                     wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    pay = make_client(emulator, wechatpay_dev_keys, retries=1)
    emulator.fail_next(JSAPI, 500)
    assert jsapi(pay).prepay_id
    assert [r["path"] for r in emulator.pay.requests()] == [JSAPI, JSAPI] and len(emulator.orders()) == 1


def test_a_late_answer_retried_gets_the_first_prepay_id(emulator: WeChatEmulator,
                                                       wechatpay_dev_keys: wechatpay_keys.DevKeys) -> None:
    pay = make_client(emulator, wechatpay_dev_keys, retries=1, timeout=0.3)
    emulator.fail_next(JSAPI, delay_seconds=1.0)  # the order is made, its answer comes too late
    prepay = jsapi(pay)
    assert [o["out_trade_no"] for o in emulator.orders()] == [ORDER]
    assert prepay.jsapi is not None and prepay.prepay_id


def test_a_business_refusal_carries_wechat_pays_code(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    paid(pay, emulator)
    emulator.fail_next("/v3/refund/domestic/refunds", code="NOT_ENOUGH")
    with pytest.raises(WeChatPayRefused) as caught:
        refund(pay)
    assert caught.value.details["wechatpay_code"] == "NOT_ENOUGH" and caught.value.details["status"] == 403


# -- the wiring -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_runtime_pays_through_the_emulator(rt: Runtime, emulator: WeChatEmulator) -> None:
    prepay = rt.wechatpay.create_jsapi_order(out_trade_no=ORDER, description="停车费 / Parking fee", total_fen=300,
                                             openid=OPENID, expires_at=rt.now() + timedelta(minutes=15))
    assert prepay.jsapi is not None
    headers, body = emulator.pay_order(ORDER, deliver=False, success_time=rt.now())
    notice = rt.wechatpay.parse_notification(headers, body)
    assert notice.order is not None and notice.order.success_time == rt.now()


def test_the_hooks_answer_over_http(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    jsapi(pay)
    base = f"{emulator.base_url}/__emulator/wechatpay"
    answer = requests.post(f"{base}/pay", json={"out_trade_no": ORDER, "deliver": False}, timeout=5).json()
    notice = pay.parse_notification(answer["headers"], answer["body"].encode())
    assert notice.order is not None and notice.order.trade_state == "SUCCESS"
    assert requests.get(f"{base}/orders", timeout=5).json()["orders"][0]["trade_state"] == "SUCCESS"
    assert len(requests.get(f"{base}/notifications", timeout=5).json()["notifications"]) == 1
    assert requests.post(f"{base}/fail", json={"path": JSAPI, "status": 502}, timeout=5).json() == {"ok": True}
    with pytest.raises(WeChatPayUnavailable):
        jsapi(pay, "P20260310000002")


def test_reset_forgets_the_orders(pay: WeChatPayV3, emulator: WeChatEmulator) -> None:
    jsapi(pay)
    emulator.reset()
    assert emulator.orders() == [] and emulator.notifications() == []
    with pytest.raises(WeChatPayOrderNotFound):
        pay.query_order(ORDER)


def test_the_demo_environment_configures_both_ends_from_keys_kept_on_disk(tmp_path: Path) -> None:
    from mallapp.adapters.wechatpay_v3 import build_client
    from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

    with WeChatEmulator(APPID, "s") as demo_emulator:
        env = wechatpay_keys.demo_environment(demo_emulator, tmp_path / "wechatpay-dev",
                                              notify_url="http://127.0.0.1:8000/api/v1/parking/wechatpay/notify")
        assert all((tmp_path / "wechatpay-dev" / name).stat().st_mode & 0o077 == 0
                   for name in ("merchant_key.pem", "platform_key.pem", "keys.json"))
        settings = load_settings(environ={**env, "MALL_WECHAT_APPID": APPID}, overlay=DEMO_SETTINGS_FILE)
        pay = build_client(settings)
        assert pay.create_native_order(out_trade_no=ORDER, description="停车费", total_fen=100,
                                       expires_at=expires()).code_url
        # A restart reads the same keys back, so what was issued before still verifies.
        again = wechatpay_keys.demo_environment(demo_emulator, tmp_path / "wechatpay-dev", notify_url="http://x/")
        assert again["MALL_WECHATPAY_MERCHANT_SERIAL"] == env["MALL_WECHATPAY_MERCHANT_SERIAL"]
        assert build_client(settings).query_order(ORDER).trade_state == "NOTPAY"
