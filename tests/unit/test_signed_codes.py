"""The signed codes: the member card code and the coupon QR code are one kind of thing, kept apart."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from mallapp.domain import auth, coupons, signed_codes
from mallapp.errors import InvalidInput

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
SECRET = b"k"


def _mac(text: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(SECRET, text.encode(), hashlib.sha256).digest()[:15]).decode()


def test_both_wire_formats_are_as_they_were():
    # Codes already on members' screens and printed coupons must keep opening.
    code, expires = auth.card_code(SECRET, 42, NOW, 180)
    assert code == f"MC1.42.{expires}.{_mac(f'card:42:{expires}')}"
    coupon = SimpleNamespace(id=7, code="ABCD2345")
    assert coupons.qr_payload(SECRET, coupon) == f"CP1.7.ABCD2345.{_mac('coupon:7:ABCD2345')}"
    assert coupons.code_from_qr(SECRET, f"CP1.7.ABCD2345.{_mac('coupon:7:ABCD2345')}") == "ABCD2345"


def test_a_card_code_is_not_a_coupon_qr_nor_the_other_way_round():
    card, _ = auth.card_code(SECRET, 7, NOW, 10**9)
    qr = coupons.qr_payload(SECRET, SimpleNamespace(id=7, code="9999"))
    with pytest.raises(InvalidInput) as exc:
        coupons.code_from_qr(SECRET, card)
    assert exc.value.code == "coupon.invalid_qr"
    with pytest.raises(InvalidInput) as exc:
        auth.member_for_card(SECRET, qr, NOW)
    assert exc.value.code == "card.invalid"
    # Re-prefixed, each is well-formed for the other kind, but its signature was made as its own kind.
    with pytest.raises(InvalidInput, match="not genuine"):
        coupons.code_from_qr(SECRET, card.replace("MC1", "CP1", 1))
    with pytest.raises(InvalidInput, match="not genuine"):
        auth.member_for_card(SECRET, qr.replace("CP1", "MC1", 1), NOW)


def test_a_kind_opens_its_own_codes_and_refuses_the_rest():
    kind = signed_codes.Kind("XX1", "thing", (int, str), expires=True)
    code = kind.sign(SECRET, 5, "abc", expires=100)
    assert code.startswith("XX1.5.abc.100.")
    assert kind.open(SECRET, code, datetime.fromtimestamp(100, UTC)) == (5, "abc")
    for bad, reason in ((code.replace("XX1", "XX2"), "malformed"), ("XX1.five.abc.100.sig", "malformed"),
                        (code + ".more", "malformed"), (code.replace(".5.", ".6."), "forged")):
        with pytest.raises(signed_codes.Refused) as exc:
            kind.open(SECRET, bad, datetime.fromtimestamp(100, UTC))
        assert exc.value.reason == reason, bad
    with pytest.raises(signed_codes.Refused) as exc:
        kind.open(SECRET, code, datetime.fromtimestamp(101, UTC))
    assert exc.value.reason == "expired"
    with pytest.raises(signed_codes.Refused):
        kind.open(b"other", code, datetime.fromtimestamp(100, UTC))
    with pytest.raises(ValueError):
        kind.sign(SECRET, 5, "a.b", expires=100)
    with pytest.raises(ValueError):
        kind.sign(SECRET, 5, "abc")  # an expiring kind needs its expiry
