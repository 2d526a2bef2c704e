"""The member reports' endpoints: who reads what, the answers' shapes, masked phones."""

from __future__ import annotations

import pytest
from factories import REPORTS_MONTH, reports_world

from mallapp.domain import member_reports

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

R = "/api/v1/ops/reports"
AGGREGATES = ("cohorts", "frequent-visitors-and-big-spenders", "valuable-share", "t-tiers", "lifecycle", "rfm",
              "lifetime-value", "new-members")
LISTS = ("lapsed", "lost")


@pytest.fixture
def world(rt):
    ids = reports_world(rt)
    with rt.sessions.begin() as s:
        member_reports.precompute(s, rt.settings, REPORTS_MONTH, rt.now())
    return ids


@pytest.mark.parametrize("role", ["ops_viewer", "ops_marketing", "ops_desk", "ops_admin"])
def test_every_ops_role_reads_the_aggregates(client, world, role, request):
    headers = request.getfixturevalue(role)["headers"]
    for name in AGGREGATES:
        answer = client.get(f"{R}/{name}", headers=headers)
        assert answer.status_code == 200, (name, answer.get_json())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", ["ops_viewer", "ops_desk"])
def test_viewers_and_the_desk_may_not_list_members(client, world, role, request):
    headers = request.getfixturevalue(role)["headers"]
    for name in LISTS:
        answer = client.get(f"{R}/{name}", headers=headers)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "ops.marketing_required", name


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_reports_need_an_ops_sign_in(client, world, member):
    assert client.get(f"{R}/cohorts").status_code == 401
    assert client.get(f"{R}/cohorts", headers=member["headers"]).status_code == 403  # a member is no ops user


def test_marketing_sees_lost_members_with_masked_phones_and_an_admin_in_full(client, world, ops_marketing, ops_admin):
    masked = client.get(f"{R}/lost", headers=ops_marketing["headers"]).get_json()
    full = client.get(f"{R}/lost", headers=ops_admin["headers"]).get_json()
    assert masked["total"] == 1 and masked["month"] == "2026-03-01"
    assert masked["members"][0]["member_id"] == world["e"] and masked["members"][0]["phone"] == "*******0005"
    assert full["members"][0]["phone"] == "+8613800000005"
    assert masked["members"][0]["lifecycle"] == "lost" and masked["next_cursor"] is None


def test_lapsed_pages_with_the_cursor(client, world, ops_marketing):
    h = ops_marketing["headers"]
    first = client.get(f"{R}/lapsed?days=30&limit=1", headers=h).get_json()
    second = client.get(f"{R}/lapsed", query_string={"days": 30, "limit": 1, "cursor": first["next_cursor"]},
                        headers=h).get_json()
    assert first["total"] == 2 and [m["member_id"] for m in first["members"]] == [world["b"]]
    assert [m["member_id"] for m in second["members"]] == [world["e"]]
    assert first["members"][0]["phone"] == "*******0002" and first["members"][0]["spend_fen"] == 200_000


def test_the_answers_carry_the_precomputed_numbers(client, world, ops_viewer):
    h = ops_viewer["headers"]
    cohorts = client.get(f"{R}/cohorts", headers=h).get_json()
    assert cohorts["month"] == "2026-03-01" and cohorts["as_of"] == "2026-03-10" and cohorts["retention_months"] == 6
    assert {c["month"]: c["remaining"] for c in cohorts["cohorts"]}["2025-08-01"] == 1
    share = client.get(f"{R}/valuable-share?month=2026-03", headers=h).get_json()
    assert share["top_20_share"] == 0.9655
    tiers = client.get(f"{R}/t-tiers", headers=h).get_json()
    assert tiers["transitions"]["T2"]["T1"] == 1 and tiers["counts"]["none"] == 2
    thresholds = client.get(f"{R}/frequent-visitors-and-big-spenders", headers=h).get_json()
    assert thresholds["frequent_visitors"]["members"] == 2 and thresholds["big_spenders"]["members"] == 1
    monthly = client.get(f"{R}/new-members?period=month&since=2026-01-01&until=2026-03-10", headers=h).get_json()
    assert monthly == {"period": "month", "total": 2, "periods": [
        {"start": "2026-01-01", "members": 0}, {"start": "2026-02-01", "members": 0},
        {"start": "2026-03-01", "members": 2}]}
    ltv = client.get(f"{R}/lifetime-value", headers=h).get_json()
    assert ltv["quantiles"]["p50"] == 20_000 and ltv["histogram"][-1]["to_fen"] is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_month_not_computed_is_not_found_and_a_bad_month_is_refused(client, world, ops_viewer):
    h = ops_viewer["headers"]
    missing = client.get(f"{R}/rfm?month=2025-01", headers=h)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "reports.not_computed"
    assert client.get(f"{R}/rfm?month=2025-13", headers=h).status_code == 400
    assert client.get(f"{R}/rfm?month=2025-01-05", headers=h).status_code == 400
    assert client.get(f"{R}/lapsed?days=0", headers=h).status_code in (400, 403)
