"""Acknowledging a fleet alert: it leaves the open feed, who and when are kept, a new occurrence raises again."""

from __future__ import annotations

from factories import api_error
from sqlalchemy import select

from mallapp.domain import alerts
from mallapp.domain.venue import BeaconStatus

ALERTS = "/api/v1/ops/alerts"


def _sweep(rt) -> alerts.Swept:
    with rt.sessions.begin() as session:
        return alerts.sweep(session, rt.settings, rt.now())


def _open(client, headers, **query) -> list[dict]:
    response = client.get(ALERTS, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["alerts"]


def _entrance_alert(client, headers, venue) -> dict:
    found, = [a for a in _open(client, headers)
              if a["subject"] == "beacon" and a["subject_id"] == venue.beacons["entrance"]]
    return found


def test_an_acknowledged_alert_leaves_the_open_feed_and_keeps_who_and_when(client, rt, clock, venue, ops_desk,
                                                                            ops_viewer):
    _sweep(rt)
    alert = _entrance_alert(client, ops_viewer["headers"], venue)
    assert alert["acknowledged_at"] is None and alert["acknowledged_by"] is None

    answer = client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=ops_desk["headers"])
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["acknowledged_by"] == "ops-desk" and body["cleared_at"] is None
    assert body["acknowledged_at"].startswith(clock.now.isoformat()[:19])

    assert alert["id"] not in {a["id"] for a in _open(client, ops_viewer["headers"])}
    seen = {a["id"]: a for a in _open(client, ops_viewer["headers"], include_acknowledged="true")}
    assert seen[alert["id"]]["acknowledged_by"] == "ops-desk"
    with rt.sessions.begin() as session:
        stored = session.scalar(select(alerts.FleetAlert).where(alerts.FleetAlert.id == alert["id"]))
        assert (stored.acknowledged_by, stored.acknowledged_at) == ("ops-desk", clock.now)

    # While the problem lasts the sweep does not raise it again.
    assert _sweep(rt).raised == 0
    assert alert["id"] not in {a["id"] for a in _open(client, ops_viewer["headers"])}


def test_acknowledging_twice_keeps_the_first_acknowledgement(client, clock, rt, venue, ops_desk, ops_admin):
    _sweep(rt)
    alert = _entrance_alert(client, ops_admin["headers"], venue)
    first = client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=ops_desk["headers"]).get_json()
    clock.advance(minutes=5)
    again = client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=ops_admin["headers"])
    assert again.status_code == 200
    assert (again.get_json()["acknowledged_by"], again.get_json()["acknowledged_at"]) == (
        "ops-desk", first["acknowledged_at"])


def test_the_problem_coming_back_after_it_cleared_raises_a_new_open_alert(client, rt, clock, venue, ops_desk):
    _sweep(rt)
    alert = _entrance_alert(client, ops_desk["headers"], venue)
    client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=ops_desk["headers"])
    # Heard: never_seen clears. Then unheard for longer than silent_after_s: a new problem, a new alert.
    with rt.sessions.begin() as session:
        session.add(BeaconStatus(beacon_id=venue.beacons["entrance"], last_seen_at=clock.now))
    assert _sweep(rt).cleared >= 1
    clock.advance(seconds=rt.settings.beacons.health.silent_after_s + 60)
    _sweep(rt)
    again = _entrance_alert(client, ops_desk["headers"], venue)
    assert again["id"] != alert["id"] and again["problem"] == "silent" and again["acknowledged_at"] is None
    history = _open(client, ops_desk["headers"], include_cleared="true", include_acknowledged="true")
    acknowledged, = [a for a in history if a["id"] == alert["id"]]
    assert acknowledged["cleared_at"] is not None and acknowledged["acknowledged_by"] == "ops-desk"


def test_a_viewer_or_marketing_cannot_acknowledge_and_an_unknown_alert_is_404(client, rt, venue, ops_viewer,
                                                                              ops_marketing, ops_admin):
    _sweep(rt)
    alert = _entrance_alert(client, ops_admin["headers"], venue)
    for caller in (ops_viewer, ops_marketing):
        api_error(client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=caller["headers"]), "ops.desk_required")
    assert _entrance_alert(client, ops_admin["headers"], venue)["acknowledged_at"] is None
    api_error(client.post(f"{ALERTS}/999999/acknowledge", headers=ops_admin["headers"]), "alert.not_found")
    assert client.post(f"{ALERTS}/{alert['id']}/acknowledge").status_code == 401
