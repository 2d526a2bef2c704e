"""The ops dashboard's figures and footfall by hour: exact on a small day, every ops role, bad input refused."""

from __future__ import annotations

import pytest
from factories import ops_day_world

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

API = "/api/v1/ops"


@pytest.fixture
def day(rt):
    return ops_day_world(rt)


def _hours(**counts: int) -> list[int]:
    out = [0] * 24
    for hour, n in counts.items():
        out[int(hour.removeprefix("h"))] = n
    return out


def test_the_dashboard_counts_today_within_the_malls_day_bounds(client, day, ops_viewer):
    answer = client.get(f"{API}/dashboard", headers=ops_viewer["headers"])
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["day"] == "2026-03-10" and body["compared_day"] == "2026-03-03"
    assert {k: body[k] for k in day["figures"]} == day["figures"]
    # 10:05 and 10:40 in hour 10, 14:20 in hour 14; the visit begun at 00:01 on the 11th is tomorrow's.
    assert body["footfall"] == {"hours": _hours(h10=2, h14=1), "total": 3}
    assert body["footfall_compared"] == {"hours": _hours(h10=1, h21=1), "total": 2}


def test_the_dashboard_of_another_day_reads_that_day(client, day, ops_viewer):
    body = client.get(f"{API}/dashboard?day=2026-03-09", headers=ops_viewer["headers"]).get_json()
    assert body["day"] == "2026-03-09" and body["compared_day"] == "2026-03-02"
    # late-yesterday joined at 23:30 on the 9th; the ¥999.00 purchase and its 500 points at 23:59.
    assert (body["new_members"], body["checkins"], body["purchases"], body["sales_fen"], body["points_issued"],
            body["points_redeemed"]) == (1, 1, 1, 99900, 500, 0)
    assert body["footfall"]["total"] == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", ["ops_viewer", "ops_marketing", "ops_desk", "ops_admin"])
def test_every_ops_role_reads_the_dashboard_and_footfall_by_hour(client, role, request):
    headers = request.getfixturevalue(role)["headers"]
    for path in ("/dashboard", "/footfall/hours"):
        assert client.get(API + path, headers=headers).status_code == 200, (role, path)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_members_merchants_and_no_token_may_not_read_them(client, member, merchant):
    for path in ("/dashboard", "/footfall/hours"):
        for headers in (member["headers"], merchant["headers"]):
            answer = client.get(API + path, headers=headers)
            assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "auth.wrong_caller"
        assert client.get(API + path).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("bad", ["2026-02-30", "10/03/2026", "2026-3-1", "yesterday", "1999-12-31"])
def test_a_bad_day_is_a_400_that_names_the_field(client, ops_viewer, bad):
    answer = client.get(f"{API}/dashboard", query_string={"day": bad}, headers=ops_viewer["headers"])
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "request.invalid_query" and error["details"]["problems"][0]["field"] == "day"


def test_footfall_by_hour_sums_visits_and_dwell_per_zone_and_hour(client, day, ops_viewer):
    venue = day["venue"]
    body = client.get(f"{API}/footfall/hours", headers=ops_viewer["headers"]).get_json()
    zones = {z["zone_id"]: z for z in body["zones"]}
    assert set(zones) == {venue.entrance, venue.store_zone, venue.item_zone}
    assert zones[venue.entrance]["visits"] == _hours(h10=2, h14=1)
    assert zones[venue.entrance]["dwell_seconds"] == _hours(h10=400, h14=60)
    assert zones[venue.store_zone]["visits"] == _hours(h10=1)
    assert zones[venue.store_zone]["dwell_seconds"] == _hours(h10=600)
    assert zones[venue.item_zone]["visits"] == [0] * 24
    assert body["since"] == "2026-03-10T00:00:00+08:00"  # today, mall time


def test_footfall_by_hour_keeps_to_its_period_and_floor(client, day, ops_viewer):
    headers = ops_viewer["headers"]
    before = client.get(f"{API}/footfall/hours?since=2026-03-01&until=2026-03-09", headers=headers).get_json()
    assert sum(sum(z["visits"]) for z in before["zones"]) == 0
    upstairs = client.get(f"{API}/footfall/hours?floor=2", headers=headers).get_json()
    assert upstairs["zones"] == []
    ground = client.get(f"{API}/footfall/hours?floor=1", headers=headers).get_json()
    assert sum(sum(z["visits"]) for z in ground["zones"]) == 4


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_footfall_by_hour_refuses_a_backwards_period(client, ops_viewer):
    answer = client.get(f"{API}/footfall/hours?since=2026-03-10&until=2026-03-01", headers=ops_viewer["headers"])
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "footfall.invalid_range"


def test_a_zone_visit_recorded_again_adds_nothing_to_the_hours(client, day, ops_viewer, rt):
    from datetime import UTC, datetime, timedelta

    from mallapp.domain.proximity import history

    entered = datetime(2026, 3, 10, 2, 5, tzinfo=UTC)  # 10:05 in Shanghai: the entrance's first visit
    with rt.sessions.begin() as s:  # the worker's redelivery of a visit it recorded already
        assert history.record_zone_visit(s, day["ids"]["old"], day["venue"].entrance, entered,
                                         entered + timedelta(seconds=300)) is None
    body = client.get(f"{API}/footfall/hours", headers=ops_viewer["headers"]).get_json()
    entrance, = [z for z in body["zones"] if z["zone_id"] == day["venue"].entrance]
    assert entrance["visits"] == _hours(h10=2, h14=1) and entrance["dwell_seconds"] == _hours(h10=400, h14=60)
