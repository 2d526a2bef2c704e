"""Ops edit the directory's fields of a store: validated, the pinyin recomputed on a rename, admins only."""

from __future__ import annotations

from typing import Any

import pytest
from factories import api_error

OPS = "/api/v1/ops"

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

FULL = {"name": "星巴克", "name_en": "Starbucks", "unit": "L2-05", "category": "cafe", "floor": 2, "x": 50, "y": 24,
        "logo_url": "/static/logos/starbucks.png", "hours": {"default": [["07:30", "22:00"]], "sun": []},
        "tags": ["Wi-Fi", "外带"]}


def _create(client, admin, **over: Any):
    return client.post(f"{OPS}/stores", json={**FULL, **over}, headers=admin["headers"])


def test_an_admin_creates_a_store_with_its_directory_fields(client, ops_admin):
    created = _create(client, ops_admin)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["name_en"] == "Starbucks" and body["category"] == "cafe" and body["tags"] == ["Wi-Fi", "外带"]
    assert body["hours"]["mon"] == [["07:30", "22:00"]] and body["hours"]["sun"] == []
    assert (body["pinyin_initials"], body["pinyin_full"]) == ("xbk", "xingbake")
    listed = client.get("/api/v1/stores", query_string={"q": "xbk"}).get_json()["stores"]
    assert [s["id"] for s in listed] == [body["id"]]


def test_a_rename_recomputes_the_pinyin_and_the_search_follows(client, ops_admin):
    store = _create(client, ops_admin).get_json()["id"]
    renamed = client.patch(f"{OPS}/stores/{store}", json={"name": "星空影城", "category": "cinema"},
                           headers=ops_admin["headers"])
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["pinyin_initials"] == "xkyc"
    assert client.get("/api/v1/stores", query_string={"q": "xbk"}).get_json()["stores"] == []
    assert [s["id"] for s in client.get("/api/v1/stores", query_string={"q": "xkyc"}).get_json()["stores"]] == [store]


def test_hours_can_be_unpublished_with_null_and_other_fields_not(client, ops_admin):
    store = _create(client, ops_admin).get_json()["id"]
    cleared = client.patch(f"{OPS}/stores/{store}", json={"hours": None}, headers=ops_admin["headers"])
    assert cleared.status_code == 200 and cleared.get_json()["hours"] is None
    assert client.get(f"/api/v1/stores/{store}").get_json()["open_now"] is None
    api_error(client.patch(f"{OPS}/stores/{store}", json={"tags": None}, headers=ops_admin["headers"]),
              "request.invalid")


@pytest.mark.parametrize(("over", "code"), [
    ({"category": "restaurant"}, "store.unknown_category"),
    ({"category": ""}, "store.unknown_category"),
    ({"hours": {"mon": [["10:00", "22:00"]]}}, "store.invalid_hours"),
    ({"hours": {"default": [["9:00", "22:00"]]}}, "store.invalid_hours"),
    ({"hours": {"default": "10-22"}}, "request.invalid"),
    ({"tags": ["a" * 21]}, "store.invalid_tags"),
    ({"tags": [str(i) for i in range(11)]}, "store.invalid_tags"),
    ({"tags": ["\u202eevil"]}, "request.invalid"),
    ({"logo_url": "ftp://example.com/logo.png"}, "store.invalid_logo_url"),
    ({"name_en": "x" * 81}, "request.invalid"),
])
def test_bad_directory_fields_are_refused_on_create_and_on_update(client, ops_admin, over, code):
    api_error(_create(client, ops_admin, **over), code)
    store = _create(client, ops_admin).get_json()["id"]
    api_error(client.patch(f"{OPS}/stores/{store}", json=over, headers=ops_admin["headers"]), code)


@pytest.mark.parametrize("caller", ["ops_viewer", "ops_marketing", "ops_desk"])
def test_only_an_admin_edits_a_store(client, ops_admin, caller, request):
    store = _create(client, ops_admin).get_json()["id"]
    other = request.getfixturevalue(caller)
    api_error(client.patch(f"{OPS}/stores/{store}", json={"name_en": "Nope"}, headers=other["headers"]),
              "ops.admin_required")
    api_error(_create(client, other), "ops.admin_required")
    # Reading stays open to every ops user, and the directory to everyone.
    assert client.get(f"{OPS}/stores/{store}", headers=other["headers"]).get_json()["name_en"] == "Starbucks"
