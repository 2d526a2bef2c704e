"""What a deal or coupon gives: its kinds, how one is checked, and how one reads to a member."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mallapp import i18n
from mallapp.errors import InvalidInput

BENEFIT_KINDS = ("amount_off", "percent_off", "gift", "bonus_points", "parking_hours", "parking_amount")
# The integer each benefit kind carries; a gift carries text instead.
BENEFIT_VALUE = {"amount_off": "amount_fen", "percent_off": "percent", "bonus_points": "points",
                 "parking_hours": "hours", "parking_amount": "amount_fen"}
# Parking coupons: used when paying for parking (mallapp.domain.parking), not at a till; funded from
# the merchant's parking quota (hours, or fen).
PARKING_KINDS = ("parking_hours", "parking_amount")


# Each integer benefit's bounds: a parking coupon gives at most a day's free parking, or 1,000 yuan off the bill.
BOUNDS = {"amount_off": (1, 100_000_000), "percent_off": (1, 99), "bonus_points": (1, 100_000_000),
          "parking_hours": (1, 24), "parking_amount": (1, 100_000)}
_KINDS_TEXT = ("amount_off with amount_fen (1-100000000), percent_off with percent (1-99), gift with gift text "
               "(1-80 characters), bonus_points with points (1-100000000), parking_hours with hours (1-24) or "
               "parking_amount with amount_fen (1-100000, fen off the parking bill)")


def benefit_columns(benefit: Mapping[str, Any]) -> dict[str, Any]:
    """The columns for a benefit such as ``{"kind": "percent_off", "percent": 20}``; integers only."""
    kind = benefit.get("kind")
    if kind == "gift":
        gift = benefit.get("gift")
        if set(benefit) == {"kind", "gift"} and isinstance(gift, str) and 0 < len(gift.strip()) <= 80:
            return {"benefit_kind": kind, "benefit_value": None, "benefit_gift": gift.strip()}
    elif kind in BENEFIT_VALUE:
        field = BENEFIT_VALUE[kind]
        value = benefit.get(field)
        low, top = BOUNDS[kind]
        if (set(benefit) == {"kind", field} and isinstance(value, int) and not isinstance(value, bool)
                and low <= value <= top):
            return {"benefit_kind": kind, "benefit_value": value, "benefit_gift": None}
    raise InvalidInput(f"a benefit is {_KINDS_TEXT}", code="deal.invalid_benefit")


def describe_benefit(benefit: Mapping[str, Any], locale: str | None = None) -> str:
    """The benefit as a member reads it in ``locale`` (zh-CN by default): "立减 ¥10.00" / "¥10.00 off",
    "赠送 50 积分" / "50 bonus points", "免费停车 2 小时" / "2 h free parking"; a gift is the merchant's own words."""
    kind = benefit["kind"]
    if kind == "gift":
        return str(benefit["gift"])
    params: dict[str, Any] = {name: benefit[name] for name in ("percent", "points", "hours") if name in benefit}
    if "amount_fen" in benefit:
        params["amount"] = i18n.fmt_yuan(benefit["amount_fen"], locale)
    return i18n.t(locale, f"member.benefit.{kind}", **params)
