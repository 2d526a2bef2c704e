"""The car-park request signature: sorted fields, empty values and sign left out, HMAC-SHA256."""

from __future__ import annotations

import pytest

from mallapp.adapters.carpark import Item
from mallapp.adapters.carpark_open import canonical, sign, verify
from mallapp.devtools.carpark_emulator import fee
from mallapp.errors import InvalidInput

FIELDS = {
    "timestamp": 1764950400000, "plateNo": "沪A12345", "payAmount": 500, "nonce": "n1", "appId": "park-app",
    "items": [{"value": 7200, "type": "time", "name": "金卡免费", "code": "tier"}],
    "remark": "", "coupon": None, "sign": "ignored",
}
# Written by hand from the rule; the digest from `openssl dgst -sha256 -hmac secret-1`.
CANONICAL = ('appId=park-app&items=[{"code":"tier","name":"金卡免费","type":"time","value":7200}]'
             '&nonce=n1&payAmount=500&plateNo=沪A12345&timestamp=1764950400000')
DIGEST = "43a7290100dd5b0904484222b88c3e5af38b95361936ba835e7340da3fba6374"


def test_canonical_sorts_fields_and_drops_sign_and_empty_values() -> None:
    assert canonical(FIELDS) == CANONICAL


def test_sign_matches_a_known_vector() -> None:
    assert sign(FIELDS, "secret-1") == DIGEST


def test_verify_refuses_a_changed_field_and_a_stale_timestamp() -> None:
    signed = {**FIELDS, "sign": DIGEST}
    assert verify(signed, "secret-1", now=1764950400.0) == 0
    assert verify({**signed, "payAmount": 1}, "secret-1", now=1764950400.0) == 1001
    assert verify(signed, "another-secret", now=1764950400.0) == 1001
    assert verify(signed, "secret-1", now=1764950400.0 + 301) == 1002


def test_item_is_money_or_time_never_both() -> None:
    with pytest.raises(InvalidInput):
        Item(code="x", name="x", fen=100, seconds=60)
    with pytest.raises(InvalidInput):
        Item(code="x", name="x")


def test_emulator_tariff_free_minutes_hours_started_and_daily_cap() -> None:
    assert fee(15 * 60) == 0
    assert fee(15 * 60 + 1) == 500
    assert fee(2 * 3600 + 1) == 1500
    assert fee(23 * 3600) == 6000
    assert fee(86400 + 3600) == 6500
