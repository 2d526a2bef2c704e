"""WeChat Pay v3's signatures and notification encryption (mallapp.adapters.wechatpay_crypto), on fixed vectors.

The RSA vector was computed once with ``openssl dgst -sha256 -sign`` on tests/data/wechatpay's test key
(a key made for this test, good for nothing else); the tests also re-check our signatures with openssl when
it is installed. The AES-GCM vector was computed once and is re-checked through cryptography's low-level
Cipher API, a different route from the AESGCM class the module uses.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mallapp.adapters import wechatpay_crypto as crypto
from mallapp.adapters.wechatpay_v3 import parse_time, rfc3339

DATA = Path(__file__).resolve().parent.parent / "data" / "wechatpay"
KEY = crypto.load_private_key((DATA / "vector_merchant_key.pem").read_text())
PUBLIC = crypto.load_public_key((DATA / "vector_merchant_public.pem").read_text())

BODY = ('{"appid":"wxtest00000000001","mchid":"1900000109","description":"停车费","out_trade_no":"P20260310000001",'
        '"amount":{"total":500,"currency":"CNY"}}')
TIMESTAMP, NONCE = "1773108000", "593BEC0C930BF1AFEB40B4A08C8FB242"
# openssl dgst -sha256 -sign vector_merchant_key.pem over request_message("POST", ..., BODY), base64.
SIGNATURE = ("kg6zLQLlOAg5mxO7qyE1Bj9imzuzz+yoe+1JvQ9qewvvOfeltNvExU7el8XzZGGU6O7QU3nJXWMqJAlAYD0IwZE1Qzy8fnDcrF/tay7E"
             "flEoPDCWf0D/XmqN4dpZQ4muHeeq+jec3NM+nCL4eNdyXiybkMBmC4T4ftXj1JkZTUZ/KcpiWFHdCP8fuFAsVCdNtqN/s6BkzYq+bI1z"
             "TkLZxVnTm+cLRgtD00CXn32V50ddNohd+l4zMv9sIm29YLqYamsEz+Gs+g8alhPciML46zz9CqcSvrUpQ5XgSMiVIbmOaVv9d35EaPo5"
             "C86uDvaEOQhAKAyl7USqwhdiJ0i/Jw==")

APIV3_KEY = "0123456789abcdefghijklmnopqrstuv"
GCM_NONCE = "a1b2c3d4e5f6"
PLAIN = b'{"out_trade_no":"P20260310000001","trade_state":"SUCCESS"}'
CIPHERTEXT = "lvRhbeTGWQUmTzHKEWjtbFr7k53kenDT1/3pGoc83qpOcA2VSiX6JCGgH/w45KwUr8XQzPZPTqm757gzldW2NX+ukH2txyFBGok="

# .ci/run installs openssl; a developer's machine without it skips only these two cross-checks.
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed (.ci/run installs it)")


def test_request_message_is_method_path_timestamp_nonce_body_each_ending_in_a_newline() -> None:
    assert crypto.request_message("get", "/v3/pay/transactions/out-trade-no/P1?mchid=19", "1", "n", "") == \
        "GET\n/v3/pay/transactions/out-trade-no/P1?mchid=19\n1\nn\n\n"


def test_request_signature_matches_the_openssl_vector() -> None:
    message = crypto.request_message("POST", "/v3/pay/transactions/jsapi", TIMESTAMP, NONCE, BODY)
    assert crypto.sign(KEY, message) == SIGNATURE
    assert crypto.verify(PUBLIC, message, SIGNATURE)


def test_a_signature_over_another_body_or_garbage_does_not_verify() -> None:
    message = crypto.request_message("POST", "/v3/pay/transactions/jsapi", TIMESTAMP, NONCE, BODY.replace("500", "5"))
    assert not crypto.verify(PUBLIC, message, SIGNATURE)
    assert not crypto.verify(PUBLIC, message, "not base64 at all!")


def test_authorization_header_carries_the_five_parameters_and_parses_back() -> None:
    header = crypto.authorization(KEY, mchid="1900000109", serial_no="5157F09EFDC096DE15EBE81A47057A72",
                                  method="POST", path_query="/v3/pay/transactions/jsapi", body=BODY,
                                  timestamp=TIMESTAMP, nonce=NONCE)
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\",nonce_str=")
    assert crypto.parse_authorization(header) == {
        "mchid": "1900000109", "nonce_str": NONCE, "signature": SIGNATURE, "timestamp": TIMESTAMP,
        "serial_no": "5157F09EFDC096DE15EBE81A47057A72"}
    assert crypto.parse_authorization("Bearer abc") is None


@needs_openssl
def test_openssl_verifies_our_pay_sign(tmp_path: Path) -> None:
    message = crypto.pay_sign_message("wxtest00000000001", TIMESTAMP, NONCE, "prepay_id=wx201410272009395522657a690389285100")
    assert message == f"wxtest00000000001\n{TIMESTAMP}\n{NONCE}\nprepay_id=wx201410272009395522657a690389285100\n"
    (tmp_path / "msg").write_bytes(message.encode())
    (tmp_path / "sig").write_bytes(base64.b64decode(crypto.sign(KEY, message)))
    result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(DATA / "vector_merchant_public.pem"),
                             "-signature", str(tmp_path / "sig"), str(tmp_path / "msg")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr


@needs_openssl
def test_openssl_signature_verifies_with_our_code(tmp_path: Path) -> None:
    message = crypto.answer_message(TIMESTAMP, NONCE, '{"prepay_id":"wx1"}')
    (tmp_path / "msg").write_bytes(message.encode())
    signed = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(DATA / "vector_merchant_key.pem"),
                             str(tmp_path / "msg")], capture_output=True, check=True).stdout
    assert crypto.verify(PUBLIC, message, base64.b64encode(signed).decode())


def test_notification_resource_decrypts_the_fixed_vector() -> None:
    assert crypto.encrypt(APIV3_KEY, GCM_NONCE, PLAIN, "transaction") == CIPHERTEXT
    assert crypto.decrypt(APIV3_KEY, GCM_NONCE, CIPHERTEXT, "transaction") == PLAIN


def test_the_vector_agrees_with_the_low_level_gcm_route() -> None:
    raw = base64.b64decode(CIPHERTEXT)
    body, tag = raw[:-16], raw[-16:]
    decryptor = Cipher(algorithms.AES(APIV3_KEY.encode()), modes.GCM(GCM_NONCE.encode(), tag)).decryptor()
    decryptor.authenticate_additional_data(b"transaction")
    assert decryptor.update(body) + decryptor.finalize() == PLAIN
    assert json.loads(PLAIN)["trade_state"] == "SUCCESS"


@pytest.mark.parametrize("change", ["associated_data", "nonce", "apiv3_key", "ciphertext"])
def test_any_change_to_the_encrypted_resource_fails_to_decrypt(change: str) -> None:
    args = {"apiv3_key": APIV3_KEY, "nonce": GCM_NONCE, "ciphertext": CIPHERTEXT, "associated_data": "transaction"}
    if change == "ciphertext":
        raw = bytearray(base64.b64decode(CIPHERTEXT))
        raw[3] ^= 1
        args["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    else:
        args[change] = {"associated_data": "refund", "nonce": "a1b2c3d4e5f7",
                        "apiv3_key": "0123456789abcdefghijklmnopqrstuw"}[change]
    with pytest.raises(ValueError):
        crypto.decrypt(**args)


def test_apiv3_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        crypto.encrypt("short", GCM_NONCE, PLAIN, "transaction")


def test_times_are_written_in_china_time_and_read_back_as_utc() -> None:
    instant = datetime(2026, 3, 10, 2, 15, tzinfo=UTC)
    assert rfc3339(instant) == "2026-03-10T10:15:00+08:00"
    assert parse_time("2026-03-10T10:15:00+08:00") == instant
    assert parse_time("2026-03-10T10:15:00") is None and parse_time("") is None
