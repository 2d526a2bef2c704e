"""Member benefits on a parking bill: what each gives, stacked in the car park's order, and the cash left.

A pure module (no database, no clock): :func:`breakdown` takes the stay, the car park's
:class:`~mallapp.domain.parking.rules.BenefitRules` and the member's facts, and returns the itemised
list the member sees before paying and the car park receives with the payment.

The rules, in order (docs/parking.md "Benefits" has a worked example):

1. Benefits are taken in ``rules.order`` (tier, spend, points, coupon by default); a kind missing
   from the order is never given.
2. **Tier**: the tier's hours (``"all"``: the whole stay), once a mall-local day, and only on the
   member's first exit of the day when ``first_exit_only``.
3. **Spend**: one hour per ``fen_per_hour`` of today's purchases (net of refunds), less the spend
   hours already used today, within the per-visit and per-day caps; never more hours than help.
4. **Points**: the hours the member asks for, cut to the caps, to what the balance buys
   (``points_per_hour`` each) and to the hours that still lower the fee.
5. **Coupons**: the merchant parking coupons the member chose (hours or an amount in fen), at most
   ``max_per_visit`` per visit and ``max_per_day`` per day; more is refused.
6. Time is valued the way the car park values it: the fee of the stay minus the fee of the stay
   shortened by the seconds, cumulatively in stacking order, so each item's ``value_fen`` is its
   marginal worth and the items add up. No item is worth more than what is left due; an item worth
   nothing is not used (the member keeps it). What is left is ``cash_fen``, paid with WeChat Pay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from mallapp import i18n
from mallapp.domain.parking.rules import BenefitRules
from mallapp.domain.parking.tariff import Tariff, fee
from mallapp.errors import RuleViolation

__all__ = ["Breakdown", "Coupon", "Facts", "Item", "Stay", "Used", "breakdown"]

HOUR = 3600
# "all" gives the whole stay plus this margin, so the seconds the car park's clock moves between the
# quote and the payment cannot leave a started step unpaid.
ALL_MARGIN_SECONDS = 5 * 60
# The pyramid tiers as members know their cards (catalogue member.parking.tier.<tier>).
TIER_NAMES = ("vip", "major", "ordinary", "small")


@dataclass(frozen=True)
class Stay:
    """The stay being paid, and how its fee is computed."""

    tariff: Tariff
    vehicle_type: str
    entered_at: datetime
    now: datetime
    tz: tzinfo
    # Earlier payments of this stay (mall-computed fees): the fee continues after them.
    paid: tuple[tuple[datetime, int], ...] = ()
    # Free time earlier payments of this stay gave: the car park keeps counting it off the stay's end.
    seconds_before: int = 0
    # What the car park says is due now (fee_source "carpark"); None: our tariff's due.
    bill_due_fen: int | None = None

    def fee_shortened(self, seconds: int) -> int:
        """The fee still to pay if the stay ended ``seconds`` (plus the earlier free time) sooner."""
        end = self.now - timedelta(seconds=self.seconds_before + seconds)
        if end <= self.entered_at:
            return 0
        if self.bill_due_fen is not None:  # the car park's bill: it takes free time off the gross fee
            return fee(self.tariff, self.vehicle_type, self.entered_at, end, tz=self.tz).gross_fen
        if self.paid and end < max(at for at, _ in self.paid):
            return 0
        return fee(self.tariff, self.vehicle_type, self.entered_at, end, tz=self.tz, paid=self.paid).due_fen

    @property
    def due_fen(self) -> int:
        return self.bill_due_fen if self.bill_due_fen is not None else self.fee_shortened(0)

    @property
    def seconds(self) -> int:
        return max(0, int((self.now - self.entered_at).total_seconds()) + 1)


@dataclass(frozen=True)
class Used:
    """Benefits already used (unvoided ``parking_benefits`` rows): today, and on this visit."""

    tier_today: bool = False
    spend_seconds_today: int = 0
    spend_seconds_visit: int = 0
    points_seconds_today: int = 0
    points_seconds_visit: int = 0
    coupons_today: int = 0
    coupons_visit: int = 0


@dataclass(frozen=True)
class Coupon:
    """A merchant parking coupon the member chose: hours (``parking_hours``) or an amount (``parking_amount``)."""

    id: int
    title: str
    hours: int = 0
    amount_fen: int = 0


@dataclass(frozen=True)
class Facts:
    """What is known of the member when paying."""

    tier: str | None = None
    spend_fen_today: int = 0
    points_balance: int = 0
    first_exit_today: bool = True
    used: Used = field(default_factory=Used)
    points_hours: int = 0  # what the member asks to spend points on
    coupons: tuple[Coupon, ...] = ()


@dataclass(frozen=True)
class Item:
    """One line of the breakdown: a benefit given, its worth on the bill, and the points it costs."""

    code: str          # "tier", "spend", "points", "coupon:<id>"
    kind: str          # "tier", "spend", "points", "coupon"
    name: str          # zh-CN, then English ("银卡免费 2 小时 / Silver tier: 2 h free"): stored, and sent to the car park
    seconds: int       # free time given (0 for an amount)
    fen: int           # an amount given (0 for time)
    value_fen: int     # its worth on this bill (marginal, in stacking order)
    points: int = 0
    coupon_id: int | None = None
    label: tuple[str, tuple[tuple[str, object], ...]] = ("", ())  # the catalogue key and its values

    def name_in(self, locale: str | None) -> str:
        """The line as a member reading ``locale`` reads it (the stored name when it has no catalogue key)."""
        key, params = self.label
        return _label(locale, key, dict(params)) if key else self.name

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "kind": self.kind, "name": self.name, "seconds": self.seconds, "fen": self.fen,
                "value_fen": self.value_fen, "points": self.points, "coupon_id": self.coupon_id}


@dataclass(frozen=True)
class Breakdown:
    due_fen: int                 # before benefits
    items: tuple[Item, ...]
    discount_fen: int            # the items' worth: sum of value_fen
    cash_fen: int                # left for WeChat Pay: due - discount
    points: int                  # points the items cost

    def seconds(self, kind: str) -> int:
        return sum(item.seconds for item in self.items if item.kind == kind)


class _Stack:
    """The running valuation: time given so far, money given so far, what is left due."""

    def __init__(self, stay: Stay) -> None:
        self.stay = stay
        self.due = stay.due_fen
        self.left = self.due
        self.seconds = 0
        self._fee_at = {0: stay.fee_shortened(0)}

    def fee_at(self, seconds: int) -> int:
        if seconds not in self._fee_at:
            self._fee_at[seconds] = self.stay.fee_shortened(seconds)
        return self._fee_at[seconds]

    def time_value(self, seconds: int) -> int:
        """What ``seconds`` more free time is worth now, within what is left due."""
        return min(self.left, max(0, self.fee_at(self.seconds) - self.fee_at(self.seconds + seconds)))

    def fewest_hours(self, hours: int) -> int:
        """The fewest whole hours (at most ``hours``) worth as much as ``hours``."""
        best = self.time_value(hours * HOUR)
        low, high = 0, hours
        while low < high:  # the value grows with the hours (the fee never falls as the stay grows)
            mid = (low + high) // 2
            if self.time_value(mid * HOUR) >= best:
                high = mid
            else:
                low = mid + 1
        return low

    def take_time(self, seconds: int) -> int:
        value = self.time_value(seconds)
        self.seconds += seconds
        self.left -= value
        return value

    def take_money(self, fen: int) -> int:
        value = min(self.left, fen)
        self.left -= value
        return value


def _label(locale: str | None, key: str, params: dict[str, object]) -> str:
    tier = params.get("tier")
    if tier is not None:  # a tier's card name is itself in the catalogue
        params["tier"] = i18n.t(locale, f"member.parking.tier.{tier}") if tier in TIER_NAMES else tier
    return i18n.t(locale, key, **params)


def _named(key: str, **params: object) -> dict[str, object]:
    """An item's stored name (zh-CN / English) and its catalogue label."""
    return {"name": f"{_label('zh-CN', key, dict(params))} / {_label('en', key, dict(params))}",
            "label": (key, tuple(sorted(params.items())))}


def _cap(*limits: int | None) -> int:
    return max(0, min(limit for limit in limits if limit is not None)) if any(
        limit is not None for limit in limits) else 10**9


def _tier(rules: BenefitRules, facts: Facts, stack: _Stack) -> list[Item]:
    hours = rules.tier.hours.get(facts.tier or "")
    if hours is None or facts.used.tier_today or (rules.tier.first_exit_only and not facts.first_exit_today):
        return []
    tier = facts.tier or ""
    if hours == "all":
        seconds = stack.stay.seconds + ALL_MARGIN_SECONDS
        named = _named("member.parking.tier_all", tier=tier)
    else:
        seconds = hours * HOUR
        named = _named("member.parking.tier_hours", tier=tier, hours=hours)
    if stack.time_value(seconds) == 0:
        return []
    return [Item("tier", "tier", seconds=seconds, fen=0, value_fen=stack.take_time(seconds), **named)]


def _spend(rules: BenefitRules, facts: Facts, stack: _Stack) -> list[Item]:
    rule, used = rules.spend, facts.used
    earned = facts.spend_fen_today // rule.fen_per_hour - used.spend_seconds_today // HOUR
    hours = _cap(earned,
                 None if rule.max_hours_per_visit is None else rule.max_hours_per_visit - used.spend_seconds_visit // HOUR,
                 None if rule.max_hours_per_day is None else rule.max_hours_per_day - used.spend_seconds_today // HOUR)
    hours = stack.fewest_hours(hours) if hours else 0
    if hours == 0:
        return []
    named = _named("member.parking.spend", amount=i18n.fmt_yuan(facts.spend_fen_today), hours=hours)
    return [Item("spend", "spend", seconds=hours * HOUR, fen=0, value_fen=stack.take_time(hours * HOUR), **named)]


def _points(rules: BenefitRules, facts: Facts, stack: _Stack) -> list[Item]:
    rule, used = rules.points, facts.used
    hours = _cap(facts.points_hours, facts.points_balance // rule.points_per_hour,
                 None if rule.max_hours_per_visit is None else rule.max_hours_per_visit - used.points_seconds_visit // HOUR,
                 None if rule.max_hours_per_day is None else rule.max_hours_per_day - used.points_seconds_today // HOUR)
    hours = stack.fewest_hours(hours) if hours else 0
    if hours == 0:
        return []
    points = hours * rule.points_per_hour
    named = _named("member.parking.points", points=points, hours=hours)
    return [Item("points", "points", seconds=hours * HOUR, fen=0, value_fen=stack.take_time(hours * HOUR),
                 points=points, **named)]


def _coupons(rules: BenefitRules, facts: Facts, stack: _Stack) -> list[Item]:
    rule, used = rules.coupon, facts.used
    allowed = min(rule.max_per_visit - used.coupons_visit, rule.max_per_day - used.coupons_today)
    if len(facts.coupons) > max(0, allowed):
        raise RuleViolation(f"At most {max(0, allowed)} more parking coupon(s) on this visit today.",
                            code="parking.coupon_limit",
                            details={"allowed": max(0, allowed), "chosen": len(facts.coupons)})
    items = []
    for coupon in facts.coupons:
        code = f"coupon:{coupon.id}"
        if coupon.hours:
            seconds = coupon.hours * HOUR
            named = _named("member.parking.coupon_hours", title=coupon.title, hours=coupon.hours)
            if stack.time_value(seconds):
                items.append(Item(code, "coupon", seconds=seconds, fen=0, value_fen=stack.take_time(seconds),
                                  coupon_id=coupon.id, **named))
        else:
            value = stack.take_money(coupon.amount_fen)
            named = _named("member.parking.coupon_amount", title=coupon.title, amount=i18n.fmt_yuan(coupon.amount_fen))
            if value:  # the car park receives the amount it is worth here, never more than is due
                items.append(Item(code, "coupon", seconds=0, fen=value, value_fen=value, coupon_id=coupon.id, **named))
    return items


_KINDS = {"tier": _tier, "spend": _spend, "points": _points, "coupon": _coupons}


def breakdown(stay: Stay, rules: BenefitRules, facts: Facts | None = None) -> Breakdown:
    """The benefits a member gets on this stay, in the rules' order, and the cash left to pay.

    Without ``facts`` (a payer who has not signed in) there are no benefits: the whole due is cash.
    """
    stack = _Stack(stay)
    items: list[Item] = []
    if facts is not None:
        for kind in rules.order:
            items.extend(_KINDS[kind](rules, facts, stack))
    discount = sum(item.value_fen for item in items)
    return Breakdown(due_fen=stack.due, items=tuple(items), discount_fen=discount, cash_fen=stack.due - discount,
                     points=sum(item.points for item in items))
