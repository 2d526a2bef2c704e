"""The public store directory: listing, filters, search (names, unit, pinyin), paging, languages, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from factories import api_error, reads_english

from mallapp.domain import venue_admin

EVERY_DAY = {"default": [["10:00", "22:00"]]}


@pytest.fixture
def mall(rt) -> dict[str, int]:
    """Six stores over three floors, one inactive; the clock reads 10:00 on a Tuesday in Shanghai."""
    rows = [
        dict(name="星巴克", name_en="Starbucks", unit="L2-05", category="cafe", floor=2, hours=EVERY_DAY,
             tags=["Wi-Fi", "外带"]),
        dict(name="星空影城", name_en="Starry Cinema", unit="L3-01", category="cinema", floor=3,
             hours={"default": [["11:00", "02:00"]]}),
        dict(name="童趣乐园", name_en="Kids Fun", unit="L3-02", category="kids", floor=3),
        dict(name="川味小馆", name_en="Sichuan Bistro", unit="L3-03", category="dining", floor=3, hours=EVERY_DAY),
        dict(name="巴克书店", name_en="Bark Books", unit="L1-05", category="books", floor=1, hours=EVERY_DAY),
        dict(name="星光旧店", name_en="Old Star", unit="L1-09", category="other", floor=1),
    ]
    ids = {}
    with rt.sessions.begin() as s:
        for row in rows:
            store = venue_admin.create_store(s, x=10.0, y=10.0, now=rt.now(), **row)
            ids[row["name_en"]] = store.id
    with rt.sessions.begin() as s:
        venue_admin.update_store(s, ids["Old Star"], {"active": False})
    return ids


def _names(body: dict[str, Any]) -> list[str]:
    return [s["name_en"] for s in body["stores"]]


def test_the_directory_needs_no_token_and_lists_active_stores_by_floor_then_unit(client, mall):
    response = client.get("/api/v1/stores")
    assert response.status_code == 200
    assert _names(response.get_json()) == ["Bark Books", "Starbucks", "Starry Cinema", "Kids Fun", "Sichuan Bistro"]


def test_an_item_carries_names_category_floor_hours_open_now_and_tags(client, mall):
    item = client.get("/api/v1/stores", query_string={"q": "xbk"}).get_json()["stores"][0]
    assert item == {"id": mall["Starbucks"], "name": "星巴克", "name_en": "Starbucks",
                    "category": {"code": "cafe", "label": "咖啡茶饮"}, "floor": 2, "floor_name": "L2",
                    "unit": "L2-05", "logo_url": "", "hours": {d: [["10:00", "22:00"]] for d in
                                                              ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                    "open_now": True, "tags": ["Wi-Fi", "外带"]}


def test_filters_by_floor_and_category(client, mall):
    assert _names(client.get("/api/v1/stores?floor=3").get_json()) == ["Starry Cinema", "Kids Fun", "Sichuan Bistro"]
    assert _names(client.get("/api/v1/stores?floor=3&category=kids").get_json()) == ["Kids Fun"]
    assert _names(client.get("/api/v1/stores?category=fashion").get_json()) == []


@pytest.mark.parametrize(("q", "first"), [
    ("xbk", "Starbucks"),          # pinyin initials
    ("XBK", "Starbucks"),          # case ignored
    ("xingbake", "Starbucks"),     # full pinyin
    ("xing ba ke", "Starbucks"),   # spaces ignored
    ("星巴克", "Starbucks"),        # the Chinese name
    ("starb", "Starbucks"),        # the English name's start, case ignored
    ("cinema", "Starry Cinema"),   # inside the English name
    ("l3-02", "Kids Fun"),         # the unit
    ("tqly", "Kids Fun"),          # 童趣乐园: 乐 read as le in 乐园
])
def test_search_finds_a_store_by_any_of_its_names(client, mall, q, first):
    found = _names(client.get("/api/v1/stores", query_string={"q": q}).get_json())
    assert found[0] == first


def test_search_puts_exact_and_prefix_matches_before_the_rest(client, mall):
    # 巴克 is the start of 巴克书店 and only inside 星巴克.
    assert _names(client.get("/api/v1/stores", query_string={"q": "巴克"}).get_json()) == ["Bark Books", "Starbucks"]
    # "xk" is the initials of 星空影城's start; nothing else starts so.
    assert _names(client.get("/api/v1/stores", query_string={"q": "xk"}).get_json()) == ["Starry Cinema"]


def test_search_does_not_find_an_inactive_store_or_treat_wildcards_as_such(client, mall):
    assert _names(client.get("/api/v1/stores", query_string={"q": "Old Star"}).get_json()) == []
    assert _names(client.get("/api/v1/stores", query_string={"q": "%"}).get_json()) == []


def test_pages_follow_next_offset_to_the_end(client, mall):
    first = client.get("/api/v1/stores?limit=2").get_json()
    second = client.get(f"/api/v1/stores?limit=2&offset={first['next_offset']}").get_json()
    third = client.get(f"/api/v1/stores?limit=2&offset={second['next_offset']}").get_json()
    assert _names(first) + _names(second) + _names(third) == \
        ["Bark Books", "Starbucks", "Starry Cinema", "Kids Fun", "Sichuan Bistro"]
    assert third["next_offset"] is None


def test_open_now_follows_the_clock_in_the_mall_time_zone(client, mall, clock):
    cinema = f"/api/v1/stores/{mall['Starry Cinema']}"
    assert client.get(cinema).get_json()["open_now"] is False  # 10:00 in Shanghai: opens at 11:00
    clock.advance(hours=1)  # 11:00
    assert client.get(cinema).get_json()["open_now"] is True
    clock.advance(hours=14, minutes=30)  # 01:30 on Wednesday: Tuesday's late show is still on
    assert client.get(cinema).get_json()["open_now"] is True
    clock.advance(hours=1)  # 02:30: closed
    assert client.get(cinema).get_json()["open_now"] is False
    assert client.get(f"/api/v1/stores/{mall['Kids Fun']}").get_json()["open_now"] is None  # no hours published


def test_labels_follow_lang_then_accept_language_and_default_to_chinese(client, mall):
    url = f"/api/v1/stores/{mall['Starbucks']}"
    assert client.get(url).get_json()["category"]["label"] == "咖啡茶饮"
    assert client.get(url, headers={"Accept-Language": "en-GB,en;q=0.8"}).get_json()["category"]["label"] == \
        "Cafés & tea"
    assert client.get(url + "?lang=en").get_json()["category"]["label"] == "Cafés & tea"
    assert client.get(url + "?lang=zh-CN", headers={"Accept-Language": "en"}).get_json()["category"]["label"] == \
        "咖啡茶饮"


def test_a_member_token_gives_the_member_language(client, rt, mall, member):
    url = f"/api/v1/stores/{mall['Starbucks']}"
    reads_english(rt, member["member"]["id"])
    body = client.get(url, headers=member["headers"]).get_json()
    assert body["category"]["label"] == "Cafés & tea"
    # Asked for in so many words, the language asked for wins; the amenities answer the same way.
    assert client.get(url + "?lang=zh-CN", headers=member["headers"]).get_json()["category"]["label"] == "咖啡茶饮"
    assert client.get("/api/v1/amenities", headers=member["headers"]).status_code == 200
    # A stale token on a public page reads like no token.
    assert client.get(url, headers={"Authorization": "Bearer mt_gone"}).status_code == 200


def test_categories_list_every_code_with_counts_of_active_stores(client, mall):
    body = client.get("/api/v1/stores/categories?lang=en").get_json()
    counts = {c["code"]: c["stores"] for c in body["categories"]}
    assert counts["cinema"] == 1 and counts["cafe"] == 1 and counts["other"] == 0  # the inactive one not counted
    assert body["categories"][0] == {"code": "dining", "label": "Dining", "stores": 1}


def test_an_inactive_or_missing_store_is_not_found(client, mall):
    api_error(client.get(f"/api/v1/stores/{mall['Old Star']}"), "store.not_found")
    api_error(client.get("/api/v1/stores/999999"), "store.not_found")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "floor=abc", "lang=fr", "colour=red",
                                   "q=" + "x" * 41])
def test_bad_queries_are_a_clear_400(client, mall, query):
    error = api_error(client.get(f"/api/v1/stores?{query}"), "request.invalid_query")
    assert error["message"].startswith("invalid query")


def test_an_unknown_category_is_named_in_the_error(client, mall):
    error = api_error(client.get("/api/v1/stores?category=restaurant"), "store.unknown_category")
    assert "dining" in error["message"]
