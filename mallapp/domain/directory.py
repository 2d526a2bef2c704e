"""The store directory: 业态 categories, pinyin search keys, opening hours, and where a store is.

What members read of the stores (``GET /api/v1/stores``) and the ``store`` location that deals, coupons,
queue tickets, reservations and ledger entries carry. The stores themselves are venue rows
(:class:`mallapp.domain.venue.Store`); ops edit them through :mod:`mallapp.domain.venue_admin`, which calls
:func:`store_fields` here so every write is validated and its pinyin recomputed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from pypinyin import lazy_pinyin
from sqlalchemy import Integer, case, func, literal, or_, select
from sqlalchemy.orm import Session

from mallapp.db import get_or_404
from mallapp.domain.coupons import Coupon
from mallapp.domain.purchases import Purchase
from mallapp.domain.venue import Store, floor_name
from mallapp.errors import InvalidInput

# The 业态 codes, in the order the directory lists them; labels are directory.category.<code> in the catalogues.
CATEGORIES = ("dining", "cafe", "fast_food", "supermarket", "fashion", "shoes_bags", "sports", "kids", "beauty",
              "jewellery", "books", "electronics", "home", "cinema", "entertainment", "services", "other")
# Words a store's old free-text category may have used, and the code each becomes (migration 0027 keeps a copy).
LEGACY_CATEGORIES = {
    "restaurant": "dining", "restaurants": "dining", "food": "dining", "dining": "dining", "餐饮": "dining",
    "cafe": "cafe", "café": "cafe", "coffee": "cafe", "tea": "cafe", "咖啡": "cafe",
    "fast food": "fast_food", "fast_food": "fast_food", "快餐": "fast_food",
    "supermarket": "supermarket", "grocery": "supermarket", "超市": "supermarket",
    "fashion": "fashion", "clothing": "fashion", "apparel": "fashion", "服饰": "fashion",
    "shoes": "shoes_bags", "bags": "shoes_bags", "shoes_bags": "shoes_bags",
    "sports": "sports", "sport": "sports", "outdoor": "sports", "运动": "sports",
    "kids": "kids", "children": "kids", "toys": "kids", "儿童": "kids",
    "beauty": "beauty", "cosmetics": "beauty", "美妆": "beauty",
    "jewellery": "jewellery", "jewelry": "jewellery", "watches": "jewellery",
    "books": "books", "bookstore": "books", "stationery": "books", "图书": "books",
    "electronics": "electronics", "digital": "electronics", "数码": "electronics",
    "home": "home", "homeware": "home", "furniture": "home",
    "cinema": "cinema", "movies": "cinema", "影院": "cinema",
    "entertainment": "entertainment", "games": "entertainment", "ktv": "entertainment",
    "services": "services", "service": "services", "服务": "services",
}

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
MAX_PERIODS = 4  # opening periods in one day (a lunch break makes two)
MAX_TAGS, MAX_TAG_LENGTH = 10, 20
_HHMM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
_URL = re.compile(r"^(?:https://[^\s\x00]+|/[^\s\x00]*)$")


def category_code(text: str | None) -> str:
    """The 业态 code of an old free-text category: a code stays itself, a known word maps, the rest is "other"."""
    word = (text or "").strip().lower()
    return word if word in CATEGORIES else LEGACY_CATEGORIES.get(word, "other")


# --- pinyin ----------------------------------------------------------------------------------------

def pinyin_keys(name: str) -> tuple[str, str]:
    """The name's (initials, full pinyin), lower-case letters and digits only: 星巴克 gives ("xbk", "xingbake").

    pypinyin reads whole words, so a polyphone takes the reading of its phrase (重庆 chongqing, 银行 yinhang).
    A Latin or digit run is kept whole in both (H&M旗舰店: "hmqjd", "hmqijiandian"), as shoppers type it.
    """
    initials, full = [], []
    # A run of characters that are not Chinese comes back marked (its own text after _OTHER); each Chinese
    # character comes back as its syllable.
    for syllable in lazy_pinyin(name, errors=lambda run: [_OTHER + run]):
        latin = syllable.startswith(_OTHER)
        for word in re.findall(r"[0-9a-z]+", syllable.lower()):
            full.append(word)
            # A Chinese character gives its first letter; a Latin word or a number stays whole ("ZARA", "7").
            initials.append(word if latin else word[0])
    return "".join(initials)[:80], "".join(full)[:400]


_OTHER = "\x00"


def search_key(text: str) -> str:
    """What a query is compared to the pinyin with: lower-case letters and digits only ("Xing Ba Ke" → "xingbake")."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


# --- opening hours ---------------------------------------------------------------------------------

def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def check_hours(hours: Any) -> dict[str, list[list[str]]] | None:
    """Opening hours in their stored shape, or InvalidInput ``store.invalid_hours``.

    Accepted: ``{"default": [["10:00", "22:00"]]}`` (every day), per weekday ``{"mon": [...], ..., "sun": [...]}``,
    or a default with some days overridden. A period is ``[open, close]`` in the mall's local time, "HH:MM"
    (close may be "24:00"); a close at or before the open runs past midnight (["18:00", "02:00"]). An empty
    list is a closed day. The answer names all seven days. None stays None (hours not published).
    """
    if hours is None:
        return None
    if not isinstance(hours, Mapping) or not hours:
        raise InvalidInput('hours is an object: {"default": [["10:00", "22:00"]]} or one list per weekday',
                           code="store.invalid_hours")
    unknown = sorted(set(hours) - {"default", *WEEKDAYS})
    if unknown:
        raise InvalidInput(f"hours: unknown day {unknown[0]!r}; use default, {', '.join(WEEKDAYS)}",
                           code="store.invalid_hours", details={"day": str(unknown[0])[:20]})
    missing = [d for d in WEEKDAYS if d not in hours]
    if missing and "default" not in hours:
        raise InvalidInput(f"hours: {missing[0]} is missing; give every weekday or a default",
                           code="store.invalid_hours", details={"day": missing[0]})
    checked = {day: _periods(day, periods) for day, periods in hours.items()}
    return {day: checked.get(day, checked.get("default", [])) for day in WEEKDAYS}


def _periods(day: str, periods: Any) -> list[list[str]]:
    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"hours.{day}: {why}", code="store.invalid_hours", details={"day": day})

    if not isinstance(periods, list) or len(periods) > MAX_PERIODS:
        raise bad(f"a list of at most {MAX_PERIODS} [open, close] periods")
    out = []
    for period in periods:
        if not (isinstance(period, list) and len(period) == 2 and all(isinstance(t, str) for t in period)):
            raise bad('a period is ["HH:MM", "HH:MM"]')
        opens, closes = period
        if not (_HHMM.match(opens) and _HHMM.match(closes)) or opens == "24:00":
            raise bad(f'times are "HH:MM" from 00:00 to 24:00, not {opens!r}, {closes!r}'[:120])
        if opens == closes:
            raise bad("a period opens and closes at the same time")
        out.append([opens, closes])
    out.sort(key=lambda p: _minutes(p[0]))
    # Periods of one day must not overlap (a period past midnight ends the next day, after every other).
    for first, second in zip(out, out[1:], strict=False):
        ends = _minutes(first[1]) if _minutes(first[1]) > _minutes(first[0]) else 24 * 60 + _minutes(first[1])
        if ends > _minutes(second[0]):
            raise bad(f"the periods {first} and {second} overlap")
    return out


def open_now(hours: Mapping[str, Sequence[Sequence[str]]] | None, now: datetime, tz: tzinfo) -> bool | None:
    """Whether a store with these hours is open at the instant ``now``, read in the mall's time zone ``tz``;
    None when it published no hours. Yesterday's period past midnight counts until it closes."""
    if hours is None:
        return None
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    today, yesterday = WEEKDAYS[local.weekday()], WEEKDAYS[(local.weekday() - 1) % 7]
    for opens, closes in hours.get(today, ()):
        start, end = _minutes(opens), _minutes(closes)
        if start <= minute < end or (end <= start and minute >= start):
            return True
    for opens, closes in hours.get(yesterday, ()):
        start, end = _minutes(opens), _minutes(closes)
        if end <= start and minute < end:
            return True
    return False


# --- the fields ops write --------------------------------------------------------------------------

def check_tags(tags: Any) -> list[str]:
    """Short labels ("Wi-Fi", "外卖"): at most MAX_TAGS of at most MAX_TAG_LENGTH characters, no duplicates."""
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise InvalidInput(f"tags: a list of at most {MAX_TAGS} short texts", code="store.invalid_tags")
    out: list[str] = []
    for tag in tags:
        text = tag.strip() if isinstance(tag, str) else ""
        if not text or len(text) > MAX_TAG_LENGTH:
            raise InvalidInput(f"tags: each tag is 1 to {MAX_TAG_LENGTH} characters", code="store.invalid_tags")
        if text not in out:
            out.append(text)
    return out


def store_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The directory fields among a store write, validated, with the pinyin recomputed when the name is given."""
    out = dict(values)
    if "category" in out and out["category"] not in CATEGORIES:
        raise InvalidInput(f"category: one of {', '.join(CATEGORIES)}", code="store.unknown_category",
                           details={"category": str(out["category"])[:40]})
    if "hours" in out:
        out["hours"] = check_hours(out["hours"])
    if "tags" in out:
        out["tags"] = check_tags(out["tags"])
    if "logo_url" in out and out["logo_url"] and not _URL.match(out["logo_url"]):
        raise InvalidInput("logo_url: an https:// address or a path on this server (/static/...)",
                           code="store.invalid_logo_url")
    if "name" in out:
        out["pinyin_initials"], out["pinyin_full"] = pinyin_keys(out["name"])
    return out


# --- where a store is ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Location:
    """Where a store is, as the member-facing answers name it."""

    id: int
    name: str
    name_en: str
    floor: int
    floor_name: str
    unit: str


def locations(session: Session, store_ids: Iterable[int | None]) -> dict[int, Location]:
    """The locations of these stores by id, active or not (a past coupon's store still has a place), one query."""
    ids = {i for i in store_ids if i is not None}
    if not ids:
        return {}
    rows = session.execute(select(Store.id, Store.name, Store.name_en, Store.floor, Store.unit)
                           .where(Store.id.in_(ids)))
    return {r.id: Location(r.id, r.name, r.name_en, r.floor, floor_name(r.floor), r.unit) for r in rows}


# --- the directory ---------------------------------------------------------------------------------

def get_active(session: Session, store_id: int) -> Store:
    """An active store; NotFound ``store.not_found`` otherwise (an inactive one is not in the directory)."""
    return get_or_404(session, Store, store_id, code="store.not_found", what="store", accept=lambda s: s.active)


@dataclass(frozen=True)
class Page:
    stores: list[Store]
    next_offset: int | None


def search(session: Session, *, q: str | None = None, floor: int | None = None, category: str | None = None,
           limit: int = 50, offset: int = 0) -> Page:
    """Active stores on ``floor`` of ``category`` matching ``q``, one query.

    ``q`` matches the Chinese name and the English name (anywhere, case ignored), the unit, and the start of
    the pinyin initials or the full pinyin (``xbk``, ``xingbake``). Without ``q`` the order is floor, unit; with
    it, exact matches first, then prefixes, then the rest, each by floor and unit.
    """
    if category is not None and category not in CATEGORIES:
        raise InvalidInput(f"category: one of {', '.join(CATEGORIES)}", code="store.unknown_category",
                           details={"category": category[:40]})
    query = select(Store).where(Store.active)
    if floor is not None:
        query = query.where(Store.floor == floor)
    if category is not None:
        query = query.where(Store.category == category)
    order: list[Any] = []
    text = (q or "").strip()
    if text:
        lowered, key = text.lower(), search_key(text)
        name_en, unit = func.lower(Store.name_en), func.lower(Store.unit)
        matches = [Store.name.contains(text, autoescape=True), name_en.contains(lowered, autoescape=True),
                   unit.contains(lowered, autoescape=True)]
        exact = [Store.name == text, name_en == lowered, unit == lowered]
        prefix = [Store.name.startswith(text, autoescape=True), name_en.startswith(lowered, autoescape=True),
                  unit.startswith(lowered, autoescape=True)]
        if key:
            matches += [Store.pinyin_initials.startswith(key, autoescape=True),
                        Store.pinyin_full.startswith(key, autoescape=True)]
            exact += [Store.pinyin_initials == key, Store.pinyin_full == key]
            prefix += matches[-2:]
        query = query.where(or_(*matches))
        order.append(case((or_(*exact), literal(0)), (or_(*prefix), literal(1)), else_=literal(2)).cast(Integer))
    order += [Store.floor, Store.unit, Store.id]
    found = list(session.scalars(query.order_by(*order).limit(limit + 1).offset(offset)))
    more = len(found) > limit
    return Page(found[:limit], offset + limit if more else None)


def category_counts(session: Session) -> dict[str, int]:
    """Active stores per 业态 code, every code named (0 for none)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for code, count in session.execute(select(Store.category, func.count()).where(Store.active)
                                       .group_by(Store.category)):
        counts[code if code in counts else "other"] += count
    return counts


# --- ledger entries: the store an entry concerns ---------------------------------------------------

_REF = re.compile(r"^(purchase|coupon):(\d{1,18})$")


def entry_stores(session: Session, source_refs: Iterable[str]) -> dict[str, int]:
    """The store each ledger source concerns, by source_ref, in at most two queries for any number of entries.

    A coupon's bonus points concern the store that redeemed it; a purchase (and its refund, which shares
    the purchase's source_ref) the store of its merchant, when the merchant runs exactly one active store
    (a purchase names its merchant, not its till's store). Other sources (check-in, gifts, birthdays,
    adjustments) concern no store.
    """
    wanted: dict[str, set[int]] = {"purchase": set(), "coupon": set()}
    for ref in source_refs:
        match = _REF.match(ref or "")
        if match:
            wanted[match.group(1)].add(int(match.group(2)))
    out: dict[str, int] = {}
    if wanted["coupon"]:
        for coupon_id, store_id in session.execute(select(Coupon.id, Coupon.redeemed_at_store)
                                                   .where(Coupon.id.in_(wanted["coupon"]))):
            if store_id is not None:
                out[f"coupon:{coupon_id}"] = store_id
    if wanted["purchase"]:
        only = (select(Store.merchant_id, func.min(Store.id).label("store_id"))
                .where(Store.active, Store.merchant_id.is_not(None))
                .group_by(Store.merchant_id).having(func.count() == 1).subquery())
        rows = session.execute(select(Purchase.id, only.c.store_id)
                               .join(only, only.c.merchant_id == Purchase.merchant_id)
                               .where(Purchase.id.in_(wanted["purchase"])))
        out |= {f"purchase:{purchase_id}": store_id for purchase_id, store_id in rows}
    return out
