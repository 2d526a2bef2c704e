"""The segmentation's ops endpoints: a run is asked of the clock (202), never computed in the request; runs are
listed with their status, parameters and counts; only admins and marketing may ask."""

from __future__ import annotations

from typing import Any

import pytest

from mallapp.domain import segments
from mallapp.processes import clock as scheduler

RUNS = "/api/v1/ops/segments/runs"
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def test_marketing_asks_for_a_run_and_the_clock_runs_it(client, rt, ops_marketing: dict[str, Any]) -> None:
    asked = client.post(RUNS, headers=ops_marketing["headers"])
    assert asked.status_code == 202, asked.get_json()
    body = asked.get_json()
    assert (body["status"], body["trigger"], body["requested_by"], body["created"]) == (
        "requested", "ops", "ops-marketing", True)
    assert body["href"] == f"{RUNS}/{body['id']}"
    # Asking again while it waits answers the same run.
    again = client.post(RUNS, headers=ops_marketing["headers"]).get_json()
    assert (again["id"], again["created"]) == (body["id"], False)

    result = scheduler.run_job(rt, scheduler.find("member-segments-requested"))
    assert result.outcome == "done"
    done = client.get(body["href"], headers=ops_marketing["headers"]).get_json()
    assert done["status"] == "done" and done["finished_at"] is not None
    assert set(done["parameters"]) >= {"t_split", "pyramid", "rfm_edges", "bgnbd", "gamma_gamma"}
    assert set(done["counts"]) >= {"t_tier", "pyramid", "rfm_segment", "lifecycle", "transitions"}
    # Nothing more to pick up.
    assert scheduler.run_job(rt, scheduler.find("member-segments-requested")).count == 0


def test_runs_are_listed_newest_first(client, rt, ops_viewer: dict[str, Any]) -> None:
    for trigger in ("clock", "cli"):
        with rt.sessions.begin() as session:
            segments.run(session, rt.settings, rt.now(), trigger=trigger)
    listed = client.get(RUNS, headers=ops_viewer["headers"], query_string={"limit": 5})
    assert listed.status_code == 200
    assert [r["trigger"] for r in listed.get_json()["runs"]] == ["cli", "clock"]
    assert all(r["status"] == "done" and r["month"] == "2026-03-01" for r in listed.get_json()["runs"])


@pytest.mark.parametrize("role", ["ops_viewer", "ops_desk"])
def test_viewers_and_the_desk_may_not_ask_for_a_run(client, request, role: str) -> None:
    caller = request.getfixturevalue(role)
    refused = client.post(RUNS, headers=caller["headers"])
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "ops.marketing_required"


def test_a_member_may_not_read_the_runs(client, member: dict[str, Any]) -> None:
    assert client.get(RUNS, headers=member["headers"]).status_code == 403
