"""The desk's pure rules: the last four digits, the phone mask, what a search key looks like, the discount."""

from __future__ import annotations

import pytest

from mallapp.domain import coupons, desk, members
from mallapp.domain.deals import Deal


@pytest.mark.parametrize(("phone", "last4"), [("+8613800138000", "8000"), ("+85291234567", "4567"), ("+1234", "1234"),
                                              ("+123", None), (None, None)])
def test_last_four_digits_of_a_phone(phone, last4):
    assert members.last4(phone) == last4


def test_the_mask_shows_only_the_last_four_digits_behind_seven_stars():
    assert members.masked_phone("+8613800138000") == "*******8000"
    assert members.masked_phone("+85291234567") == "*******4567"


@pytest.mark.parametrize(("typed", "digits"), [("13800138000", "13800138000"), ("+86 138-0013-8000", "8613800138000"),
                                               ("8000", "8000"), ("Ada", None), ("12a4", None), ("", None)])
def test_what_the_desk_typed_is_a_number_or_not(typed, digits):
    assert desk._digits(typed) == digits


def _deal(kind: str, value: int | None) -> Deal:
    return Deal(benefit_kind=kind, benefit_value=value)


@pytest.mark.parametrize("spend", [1, 99, 100, 2_499, 2_500, 10_000, 99_999_999])
@pytest.mark.parametrize(("kind", "value"), [("amount_off", 2_000), ("amount_off", 1), ("percent_off", 10),
                                             ("percent_off", 99)])
def test_a_discount_never_exceeds_the_amount(kind, value, spend):
    taken = coupons.discount(_deal(kind, value), spend)
    assert 0 <= taken <= spend


def test_the_discount_of_each_benefit():
    assert coupons.discount(_deal("amount_off", 2_000), 10_000) == 2_000
    assert coupons.discount(_deal("amount_off", 3_000), 2_500) == 2_500
    assert coupons.discount(_deal("percent_off", 10), 999) == 99  # rounded down: never more than promised
    assert coupons.discount(_deal("bonus_points", 50), 10_000) is None
    assert coupons.discount(_deal("gift", None), 10_000) is None
    assert coupons.discount(_deal("amount_off", 2_000), None) is None
