"""The store directory (public: no token needed) and the ``store`` location object other member answers carry."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint, request
from pydantic import Field, StringConstraints

from mallapp import i18n
from mallapp.api.core import Out, Query, operation, runtime, transaction
from mallapp.domain import auth, directory, members
from mallapp.domain.directory import Location
from mallapp.domain.venue import Store, floor_name
from mallapp.errors import MallError

bp = Blueprint("directory", __name__, url_prefix="/api/v1/stores")


# --- shapes ----------------------------------------------------------------------------------------

class StoreLocationOut(Out):
    """Where a store is: what deals, coupons, queue tickets, reservations and ledger entries name."""

    id: int
    name: str = Field(description="the primary (Chinese) name")
    name_en: str = Field(description='the English name; "" when it has none')
    floor: int = Field(description="1 = ground floor, -1 = the first level below")
    floor_name: str = Field(description='"L1", "L2", "B1" ...')
    unit: str = Field(description='the unit number, e.g. "L2-07"')


def location_out(location: Location | None) -> StoreLocationOut | None:
    return None if location is None else StoreLocationOut(
        id=location.id, name=location.name, name_en=location.name_en, floor=location.floor,
        floor_name=location.floor_name, unit=location.unit)


Period = Annotated[list[str], Field(min_length=2, max_length=2)]


class CategoryOut(Out):
    code: str = Field(description="the 业态 code (GET /api/v1/stores/categories lists them)")
    label: str = Field(description="in the caller's language")


class DirectoryStoreOut(Out):
    id: int
    name: str = Field(description="the primary (Chinese) name")
    name_en: str
    category: CategoryOut
    floor: int
    floor_name: str = Field(description='"L1", "B2" ...')
    unit: str
    logo_url: str = Field(description='an https:// address or a path on this server; "" for none')
    hours: dict[str, list[Period]] | None = Field(
        description='opening periods per weekday in the mall\'s local time, {"mon": [["10:00", "22:00"]], ...}; '
                    "a close at or before the open runs past midnight; [] closed; null: not published")
    open_now: bool | None = Field(description="open at this moment (the mall's time zone); null without hours")
    tags: list[str]


class DirectoryOut(Out):
    stores: list[DirectoryStoreOut] = Field(description="by floor and unit; with q, exact and prefix matches first")
    next_offset: int | None = Field(description="the offset of the next page; null on the last")
    locale: str = Field(description="the language of the labels")


class DirectoryQuery(Query):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40,
                                        pattern=r"^[^\x00-\x1f\x7f]*$")] | None = Field(
        default=None, description="the Chinese or English name, the unit, or pinyin: initials (xbk) or full (xingbake)")
    floor: int | None = Field(default=None, ge=-20, le=200, description="1 is the ground floor, -1 the first level below")
    category: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="a 业态 code")
    limit: int = Field(default=50, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=100_000)
    lang: Literal["zh-CN", "en"] | None = Field(
        default=None, description="the language of the labels when no member token says it (else Accept-Language)")


class LangQuery(Query):
    lang: Literal["zh-CN", "en"] | None = None


class CategoryCountOut(Out):
    code: str
    label: str
    stores: int = Field(description="active stores of this 业态")


class CategoriesOut(Out):
    categories: list[CategoryCountOut]
    locale: str


# --- helpers ---------------------------------------------------------------------------------------

def caller_locale(lang: str | None) -> str:
    """A public answer's language: ``lang`` when asked for, else the member's own when a member token comes along,
    else Accept-Language, else zh-CN (the routes answer the same way)."""
    chosen = None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip().startswith(auth.TOKEN_PREFIX):
        try:
            member_id = auth.member_for_token(runtime().redis, token.strip())
            with transaction() as session:
                chosen = members.get(session, member_id).locale
        except MallError:
            chosen = None  # a public page: a stale token reads like no token
    return i18n.negotiate(lang, chosen, accept_language=request.headers.get("Accept-Language"))


def _store_out(store: Store, locale: str) -> DirectoryStoreOut:
    rt = runtime()
    return DirectoryStoreOut(
        id=store.id, name=store.name, name_en=store.name_en,
        category=CategoryOut(code=store.category, label=i18n.t(locale, f"directory.category.{store.category}")
                             if store.category in directory.CATEGORIES else store.category),
        floor=store.floor, floor_name=floor_name(store.floor), unit=store.unit, logo_url=store.logo_url,
        hours=store.hours, open_now=directory.open_now(store.hours, rt.now(), rt.settings.mall.tz),
        tags=list(store.tags or []))


# --- endpoints -------------------------------------------------------------------------------------

@operation(bp, "", "GET", summary="The store directory: active stores by floor and category, found by name, "
           "English name, unit or pinyin (xbk finds 星巴克); no token needed", query=DirectoryQuery,
           response=DirectoryOut, errors=("store.unknown_category",))
def list_stores(query: DirectoryQuery) -> DirectoryOut:
    locale = caller_locale(query.lang)
    with transaction() as session:
        page = directory.search(session, q=query.q, floor=query.floor, category=query.category,
                                limit=query.limit, offset=query.offset)
        return DirectoryOut(stores=[_store_out(s, locale) for s in page.stores], next_offset=page.next_offset,
                            locale=locale)


@operation(bp, "/categories", "GET", summary="The 业态 categories with their labels and active store counts",
           query=LangQuery, response=CategoriesOut)
def list_categories(query: LangQuery) -> CategoriesOut:
    locale = caller_locale(query.lang)
    with transaction() as session:
        counts = directory.category_counts(session)
    return CategoriesOut(categories=[CategoryCountOut(code=code, label=i18n.t(locale, f"directory.category.{code}"),
                                                      stores=count) for code, count in counts.items()],
                         locale=locale)


@operation(bp, "/<int:store_id>", "GET", summary="One store of the directory (active stores only)",
           query=LangQuery, response=DirectoryStoreOut, errors=("store.not_found",))
def get_store(store_id: int, query: LangQuery) -> DirectoryStoreOut:
    locale = caller_locale(query.lang)
    with transaction() as session:
        return _store_out(directory.get_active(session, store_id), locale)
