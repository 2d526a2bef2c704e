"""Parking coupon benefit kinds: their own bounds, an error that lists every kind, and how they read."""

from __future__ import annotations

import pytest

from mallapp.domain.benefits import BENEFIT_KINDS, benefit_columns, describe_benefit
from mallapp.errors import InvalidInput


@pytest.mark.parametrize(("benefit", "value"), [({"kind": "parking_hours", "hours": 1}, 1),
                                                ({"kind": "parking_hours", "hours": 24}, 24),
                                                ({"kind": "parking_amount", "amount_fen": 100_000}, 100_000)])
def test_parking_benefits_within_their_bounds_are_columns(benefit, value):
    assert benefit_columns(benefit) == {"benefit_kind": benefit["kind"], "benefit_value": value, "benefit_gift": None}


@pytest.mark.parametrize("benefit", [{"kind": "parking_hours", "hours": 25}, {"kind": "parking_hours", "hours": 0},
                                     {"kind": "parking_hours", "hours": True}, {"kind": "parking_hours", "hours": 1.5},
                                     {"kind": "parking_amount", "amount_fen": 100_001},
                                     {"kind": "parking_amount", "hours": 2}, {"kind": "parking_minutes", "minutes": 30}])
def test_a_parking_benefit_out_of_bounds_is_refused_with_every_kind_named(benefit):
    with pytest.raises(InvalidInput) as refused:
        benefit_columns(benefit)
    assert refused.value.code == "deal.invalid_benefit"
    assert all(kind in refused.value.message for kind in BENEFIT_KINDS)
    assert "parking_hours with hours (1-24)" in refused.value.message


def test_benefits_read_in_chinese_by_default_and_in_english_for_an_english_reader():
    assert describe_benefit({"kind": "parking_hours", "hours": 2}) == "免费停车 2 小时"
    assert describe_benefit({"kind": "parking_amount", "amount_fen": 1050}) == "停车费减免 ¥10.50"
    assert describe_benefit({"kind": "amount_off", "amount_fen": 500}) == "立减 ¥5.00"
    assert describe_benefit({"kind": "parking_hours", "hours": 2}, "en") == "2 h free parking"
    assert describe_benefit({"kind": "parking_amount", "amount_fen": 1050}, "en") == "¥10.50 off parking"
    assert describe_benefit({"kind": "amount_off", "amount_fen": 500}, "en") == "¥5.00 off"
    assert describe_benefit({"kind": "percent_off", "percent": 20}, "en") == "20% off"
    assert describe_benefit({"kind": "bonus_points", "points": 50}) == "赠送 50 积分"
    assert describe_benefit({"kind": "gift", "gift": "帆布袋 tote bag"}, "en") == "帆布袋 tote bag"  # the merchant's words
