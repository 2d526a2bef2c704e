"""The demo mall's directory: every store named in Chinese and English, three floors, 星巴克 found by "xbk",
the demo merchants still linked to their stores, and a database seeded before the directory brought up to it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mallapp.devtools import demo, demo_consoles
from mallapp.domain import merchants
from mallapp.domain.venue import Store

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the seeding is the same on both


def _seed(rt) -> None:
    with rt.sessions.begin() as s:
        for name in demo.DEMO_MERCHANTS:
            merchants.create(s, name, rt.now())
    demo.seed_venue(rt)
    demo_consoles.seed_restaurant(rt)
    demo.seed_deals(rt)


def test_every_demo_store_is_in_the_directory_with_both_names_hours_and_a_category(client, rt):
    _seed(rt)
    stores = client.get("/api/v1/stores", query_string={"limit": 100}).get_json()["stores"]
    assert len(stores) == len(demo.load_plan()["stores"]) == 9
    assert {s["floor"] for s in stores} == {1, 2, 3}
    for store in stores:
        assert store["name"] and store["name_en"] and store["hours"] and store["category"]["code"] != "other", store
    assert [s["name_en"] for s in client.get("/api/v1/stores?floor=3").get_json()["stores"]] == \
        ["Starry Cinema", "Kids Fun", "Sichuan Bistro"]
    found = client.get("/api/v1/stores", query_string={"q": "xbk"}).get_json()["stores"]
    assert [(s["name"], s["unit"], s["floor_name"]) for s in found][0] == ("星巴克", "L2-05", "L2")


def test_the_demo_merchants_still_run_their_stores_and_seeding_again_adds_nothing(rt):
    _seed(rt)
    _seed_again = demo.seed_venue(rt)
    with rt.sessions.begin() as s:
        runs = dict(s.execute(select(Store.name, merchants.Merchant.name)
                              .join(merchants.Merchant, merchants.Merchant.id == Store.merchant_id)).all())
        assert s.scalar(select(Store.id).where(Store.name == rt.settings.new_member_pack.house_store)) is not None
        assert len(list(s.scalars(select(Store.id)))) == 9
    assert runs == {"星光咖啡": "Starlight Coffee", "港湾书店": "Harbour Books", "峰顶运动": "Summit Sports",
                    "客户服务中心": "Customer Service", "翠园酒家": "Jade Garden Restaurant"}
    assert _seed_again.zones  # the floor plan is still there


def test_a_demo_database_seeded_before_the_directory_is_renamed_in_place(rt):
    with rt.sessions.begin() as s:
        old = Store(name="Starlight Coffee", unit="L1-02", category="cafe", floor=1, x=10.0, y=24.0,
                    created_at=rt.now())
        s.add(old)
        s.flush()
        old_id = old.id
    _seed(rt)
    with rt.sessions.begin() as s:
        store = s.get(Store, old_id)
        assert (store.name, store.name_en, store.pinyin_initials) == ("星光咖啡", "Starlight Coffee", "xgkf")
        assert store.merchant_id is not None
        assert len(list(s.scalars(select(Store.id).where(Store.unit == "L1-02")))) == 1
