"""A car park's member benefit rules: what each benefit gives, its caps, and the order they stack in.

Stored per car park (``car_parks.rules``) as the JSON document below, validated by :func:`parse_rules`
before it is stored; ops edit it through the API. Hours are whole hours; money is fen.

```json
{"order": ["tier", "spend", "points", "coupon"],
 "tier": {"hours": {"vip": "all", "major": 3, "ordinary": 2}, "first_exit_only": true},
 "spend": {"fen_per_hour": 10000, "max_hours_per_visit": 3, "max_hours_per_day": 3},
 "points": {"points_per_hour": 600, "max_hours_per_visit": null, "max_hours_per_day": null},
 "coupon": {"max_per_visit": 2, "max_per_day": 4}}
```

``"all"`` for a tier: the whole stay is free. ``null`` caps: no cap (the MixC rule set: 600 points an
hour, no daily cap). A member's tier is ``members.tier`` (the segmentation's pyramid level by default).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mallapp.errors import InvalidInput

BenefitKind = Literal["tier", "spend", "points", "coupon"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierRule(_Rule):
    hours: dict[str, int | Literal["all"]] = Field(default_factory=lambda: {"vip": "all", "major": 3, "ordinary": 2})
    # Tier hours apply to the first exit of the member's (mall-local) day only, as at MixC.
    first_exit_only: bool = True

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, int | str]) -> dict[str, int | str]:
        for tier, hours in value.items():
            if not 1 <= len(tier) <= 16 or (hours != "all" and not (isinstance(hours, int) and 0 < hours <= 24)):
                raise ValueError(f"tier {tier!r}: hours are 1-24 or \"all\"")
        return value


class SpendRule(_Rule):
    # Purchases the member made today (net of refunds) earn an hour per this much (200 yuan -> 2 h).
    fen_per_hour: int = Field(default=10_000, gt=0, le=100_000_000)
    max_hours_per_visit: int | None = Field(default=3, gt=0, le=24)
    max_hours_per_day: int | None = Field(default=3, gt=0, le=24)


class PointsRule(_Rule):
    points_per_hour: int = Field(default=600, gt=0, le=1_000_000)
    max_hours_per_visit: int | None = Field(default=None, gt=0, le=24 * 30)
    max_hours_per_day: int | None = Field(default=None, gt=0, le=24 * 30)


class CouponRule(_Rule):
    max_per_visit: int = Field(default=2, ge=0, le=20)
    max_per_day: int = Field(default=4, ge=0, le=50)


class BenefitRules(_Rule):
    order: tuple[BenefitKind, ...] = ("tier", "spend", "points", "coupon")
    tier: TierRule = Field(default_factory=TierRule)
    spend: SpendRule = Field(default_factory=SpendRule)
    points: PointsRule = Field(default_factory=PointsRule)
    coupon: CouponRule = Field(default_factory=CouponRule)

    @field_validator("order")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each benefit appears at most once in the order")
        return value


def parse_rules(document: Any) -> BenefitRules:
    """Validate a rules document (a dict, as stored); raise ``parking.rules_invalid`` naming the field."""
    try:
        return BenefitRules.model_validate(document if document is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rules"
        raise InvalidInput(f"Benefit rules: {where}: {first['msg']}", code="parking.rules_invalid",
                           details={"field": where}) from None


def default_rules() -> dict[str, Any]:
    """The rules a new car park starts with, as stored."""
    return BenefitRules().model_dump(mode="json")
