"""Parking for operations: the sessions search and the report per day, figure by figure, by hand.

The history (tests/factories.py parking_history), mall time (Asia/Shanghai), car park P1 with 200 spaces:

    A 沪A11111  03-08 08:00 – 03-08 10:00  camera   paid 10.00 on 03-08
    B 沪A22222  03-08 22:00 – 03-09 02:00  camera   paid 5.00 + tier 2 h (10.00) on 03-09   (crosses midnight)
    C 沪B33333  03-09 09:00 – 03-09 12:00  staff, 15.00 unpaid; a failed payment of 7.00 with points
    D 沪A44444  03-09 10:00 – still parked
    F 沪A55555  03-09 11:00 – 03-09 13:00  camera   paid 8.00 (2.00 refunded) + points 1 h (5.00, 600 points)
                                                    + a coupon (3.00) + a voided spend benefit
    P2: one stay and one payment on 03-09, none of P1's figures.

The clock is 03-10 10:00.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from factories import parking_history

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

URL = "/api/v1/ops/parking"
MALL = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=MALL).astimezone(UTC)


@pytest.fixture
def history(rt):
    h = parking_history(rt)
    ids = {}
    ids["A"] = h.stay("沪A11111", at(8, 8), at(8, 10))
    h.payment(ids["A"], cash_fen=1000, at=at(8, 9, 55))
    ids["B"] = h.stay("沪A22222", at(8, 22), at(9, 2), member_id=h.member_id)
    paid_b = h.payment(ids["B"], cash_fen=500, discount_fen=1000, at=at(9, 1, 50))
    h.benefit(paid_b, "tier", seconds=7200, fen=1000)
    ids["C"] = h.stay("沪B33333", at(9, 9), at(9, 12), exit_kind="staff", unpaid_fen=1500)
    failed = h.payment(ids["C"], cash_fen=700, discount_fen=500, status="failed", at=at(9, 11))
    h.benefit(failed, "points", seconds=3600, fen=500, points=600)
    ids["D"] = h.stay("沪A44444", at(9, 10))
    ids["F"] = h.stay("沪A55555", at(9, 11), at(9, 13))
    paid_f = h.payment(ids["F"], cash_fen=800, discount_fen=800, refunded_fen=200, at=at(9, 12, 50))
    h.benefit(paid_f, "points", seconds=3600, fen=500, points=600)
    h.benefit(paid_f, "coupon", fen=300)
    h.benefit(paid_f, "spend", seconds=3600, fen=500, voided=True)
    other = h.other_car_park()
    stranger = h.stay("沪C99999", at(9, 9), at(9, 18), car_park_id=other)
    h.payment(stranger, cash_fen=9900, at=at(9, 17))
    ids["P2"] = stranger
    return ids


def _get(client, path, headers, **query):
    return client.get(f"{URL}{path}", query_string=query, headers=headers)


def _plates(answer) -> list[str]:
    return [s["plate"] for s in answer.get_json()["sessions"]]


# --- the day report ------------------------------------------------------------------------------

def test_the_day_report_has_each_figure_computed_by_hand(client, ops_viewer, history):
    answer = _get(client, "/days", ops_viewer["headers"], car_park="P1", **{"from": "2026-03-08", "to": "2026-03-11"})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["car_park"], body["spaces"]) == ("P1", 200)
    sun, mon, today, tomorrow = body["days"]
    none = {"count": 0, "seconds": 0, "hours": 0.0, "fen": 0, "points": 0}

    assert sun["day"] == "2026-03-08"
    assert (sun["entries"], sun["exits"], sun["staff_exits"], sun["staff_unpaid_fen"]) == (2, 1, 0, 0)
    assert (sun["payments"], sun["cash_fen"], sun["refunded_fen"], sun["revenue_fen"]) == (1, 1000, 0, 1000)
    assert sun["benefits"] == {"tier": none, "spend": none, "points": none, "coupon": none}
    # A 08:00–10:00 and B 22:00–24:00: 4 car-hours over 24 hours; never two at once.
    assert sun["occupancy"] == {"average_cars": 0.17, "peak_cars": 1, "average_pct": 0.1, "peak_pct": 0.5}

    assert (mon["entries"], mon["exits"], mon["staff_exits"], mon["staff_unpaid_fen"]) == (3, 3, 1, 1500)
    # B's 5.00 and F's 8.00 less its 2.00 refund; C's failed payment counts nowhere.
    assert (mon["payments"], mon["cash_fen"], mon["refunded_fen"], mon["revenue_fen"]) == (2, 1300, 200, 1100)
    assert mon["benefits"] == {
        "tier": {"count": 1, "seconds": 7200, "hours": 2.0, "fen": 1000, "points": 0},
        "spend": none,  # voided
        "points": {"count": 1, "seconds": 3600, "hours": 1.0, "fen": 500, "points": 600},  # not the failed one's
        "coupon": {"count": 1, "seconds": 0, "hours": 0.0, "fen": 300, "points": 0},
    }
    # B 2 h + C 3 h + D 14 h + F 2 h = 21 car-hours / 24 = 0.875; C, D and F all in from 11:00 to 12:00.
    assert mon["occupancy"] == {"average_cars": 0.88, "peak_cars": 3, "average_pct": 0.4, "peak_pct": 1.5}

    # Today up to 10:00: D all the time.
    assert today["occupancy"] == {"average_cars": 1.0, "peak_cars": 1, "average_pct": 0.5, "peak_pct": 0.5}
    assert today["entries"] == today["exits"] == today["payments"] == 0
    assert tomorrow["occupancy"] is None


def test_occupancy_does_not_count_a_car_leaving_and_one_coming_at_the_same_instant_together(client, ops_viewer, rt):
    h = parking_history(rt)
    h.stay("沪A11111", at(9, 8), at(9, 12))
    h.stay("沪A22222", at(9, 12), at(9, 20))
    h.stay("沪A33333", at(9, 6), at(9, 18))
    day = _get(client, "/days", ops_viewer["headers"], car_park="P1", **{"from": "2026-03-09", "to": "2026-03-09"})
    [row] = day.get_json()["days"]
    assert row["occupancy"]["peak_cars"] == 2
    assert row["occupancy"]["average_cars"] == round((4 + 8 + 12) / 24, 2)


def test_the_day_report_refuses_a_range_backwards_or_over_92_days_and_an_unknown_car_park(client, ops_viewer, history):
    h = ops_viewer["headers"]
    backwards = _get(client, "/days", h, car_park="P1", **{"from": "2026-03-09", "to": "2026-03-08"})
    too_long = _get(client, "/days", h, car_park="P1", **{"from": "2025-12-01", "to": "2026-03-08"})
    longest = _get(client, "/days", h, car_park="P1", **{"from": "2025-12-07", "to": "2026-03-08"})
    unknown = _get(client, "/days", h, car_park="P9")
    assert [r.status_code for r in (backwards, too_long, longest, unknown)] == [400, 400, 200, 404]
    assert backwards.get_json()["error"]["code"] == too_long.get_json()["error"]["code"] == "parking.invalid_range"
    assert len(longest.get_json()["days"]) == 92
    assert unknown.get_json()["error"]["code"] == "parking.car_park_not_found"


def test_the_day_report_defaults_to_the_last_seven_days(client, ops_viewer, history):
    days = _get(client, "/days", ops_viewer["headers"], car_park="P1").get_json()["days"]
    assert [d["day"] for d in days] == [f"2026-03-{n:02}" for n in range(4, 11)]


# --- the sessions search -------------------------------------------------------------------------

def test_a_whole_plate_is_found_exactly_however_it_was_typed(client, ops_viewer, history):
    assert _plates(_get(client, "/sessions", ops_viewer["headers"], plate="沪a·11111")) == ["沪A11111"]


def test_a_plate_prefix_of_three_characters_finds_every_plate_it_starts(client, ops_viewer, history):
    h = ops_viewer["headers"]
    assert _plates(_get(client, "/sessions", h, plate="沪A1")) == ["沪A11111"]
    assert _plates(_get(client, "/sessions", h, plate="沪a4")) == ["沪A44444"]
    short = _get(client, "/sessions", h, plate="沪A")
    assert short.status_code == 400 and short.get_json()["error"]["code"] == "parking.plate_invalid"
    assert _plates(_get(client, "/sessions", h, plate="沪A_%")) == []


def test_staff_opened_exits_list_with_what_they_owed(client, ops_viewer, history):
    answer = _get(client, "/sessions", ops_viewer["headers"], exit_kind="staff").get_json()
    assert [(s["plate"], s["exit_kind"], s["unpaid_fen"]) for s in answer["sessions"]] == [("沪B33333", "staff", 1500)]
    assert answer["unpaid_fen"] == 1500


def test_sessions_page_newest_entry_first_by_keyset(client, ops_viewer, history):
    h = ops_viewer["headers"]
    first = _get(client, "/sessions", h, car_park="P1", limit=2).get_json()
    assert _plates_of(first) == ["沪A55555", "沪A44444"]
    second = _get(client, "/sessions", h, car_park="P1", limit=2, before_id=first["next_before_id"]).get_json()
    assert _plates_of(second) == ["沪B33333", "沪A22222"]
    last = _get(client, "/sessions", h, car_park="P1", limit=2, before_id=second["next_before_id"]).get_json()
    assert (_plates_of(last), last["next_before_id"]) == (["沪A11111"], None)
    exact = _get(client, "/sessions", h, car_park="P1", limit=1, before_id=second["next_before_id"]).get_json()
    assert (_plates_of(exact), exact["next_before_id"]) == (["沪A11111"], None)  # a full last page: no next
    unknown = _get(client, "/sessions", h, before_id=999_999)
    assert unknown.status_code == 400 and unknown.get_json()["error"]["code"] == "parking.invalid_cursor"


def _plates_of(body) -> list[str]:
    return [s["plate"] for s in body["sessions"]]


def test_sessions_filter_on_entry_time_status_and_car_park(client, ops_viewer, history):
    h = ops_viewer["headers"]
    assert _plates(_get(client, "/sessions", h, car_park="P1", **{"from": "2026-03-09"})) == [
        "沪A55555", "沪A44444", "沪B33333"]
    assert _plates(_get(client, "/sessions", h, **{"to": "2026-03-08"})) == ["沪A22222", "沪A11111"]
    instant = _get(client, "/sessions", h, **{"from": "2026-03-09T09:30:00+08:00", "to": "2026-03-09T11:00:00+08:00"})
    assert _plates(instant) == ["沪A44444"]
    assert _plates(_get(client, "/sessions", h, status="parked")) == ["沪A44444"]
    assert _plates(_get(client, "/sessions", h, car_park="P2")) == ["沪C99999"]
    naive = _get(client, "/sessions", h, **{"from": "2026-03-09T09:30:00"})
    assert naive.status_code == 400 and naive.get_json()["error"]["code"] == "request.invalid_query"


def test_a_session_shows_its_payments_and_benefits_and_its_member_by_id_only(client, ops_viewer, history, rt):
    answer = _get(client, f"/sessions/{history['B']}", ops_viewer["headers"])
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["plate"], body["car_park"], body["exit_kind"]) == ("沪A22222", "P1", "camera")
    assert isinstance(body["member_id"], int)
    [payment] = body["payments"]
    assert (payment["status"], payment["cash_fen"], payment["discount_fen"], payment["local_day"]) == (
        "paid", 500, 1000, "2026-03-09")
    assert [(b["kind"], b["seconds"], b["fen"]) for b in body["benefits"]] == [("tier", 7200, 1000)]
    assert "phone" not in answer.get_data(as_text=True)
    missing = _get(client, "/sessions/999999", ops_viewer["headers"])
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "parking.session_not_found"


def test_with_one_car_park_in_the_mall_payments_and_benefits_count_the_same(client, ops_viewer, rt):
    h = parking_history(rt)   # the only car park: its payments are read without the join to sessions
    stay = h.stay("沪A11111", at(9, 8), at(9, 10))
    paid = h.payment(stay, cash_fen=600, discount_fen=500, refunded_fen=100, at=at(9, 9, 50))
    h.benefit(paid, "points", seconds=3600, fen=500, points=600)
    failed = h.payment(stay, cash_fen=900, status="failed", at=at(9, 9, 40), seq=2)
    h.benefit(failed, "tier", seconds=7200, fen=1000)
    [day] = _get(client, "/days", ops_viewer["headers"], car_park="P1",
                 **{"from": "2026-03-09", "to": "2026-03-09"}).get_json()["days"]
    assert (day["payments"], day["cash_fen"], day["refunded_fen"], day["revenue_fen"]) == (1, 600, 100, 500)
    assert day["benefits"]["points"] == {"count": 1, "seconds": 3600, "hours": 1.0, "fen": 500, "points": 600}
    assert day["benefits"]["tier"]["count"] == 0
