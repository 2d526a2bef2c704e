"""The operations console's floor plan, fleet and parking pages in a real browser: an admin places a beacon by
dragging it and draws a zone by clicking its corners; a viewer sees the map without edit controls; the alerts
feed shows a silent beacon and acknowledging takes it off; parking sessions are found by plate, the revenue
chart carries the days' figures, a bad tariff is refused beside its textarea."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import build_venue, parkcore_car_park, parkcore_parked_car, parking_history
from playwright.sync_api import expect
from sqlalchemy import select

from mallapp.domain import alerts
from mallapp.domain.parking.models import CarPark
from mallapp.domain.venue import Beacon, BeaconStatus, Zone

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

PLAN = "/console/ops/floor-plan"
# The page's own conversion, asked of the page: screen (client) pixels <-> metres through the SVG's CTM.
TO_METRES = """([x, y]) => { const svg = document.getElementById('plan'); const p = svg.createSVGPoint();
  p.x = x; p.y = y; const m = p.matrixTransform(svg.getScreenCTM().inverse()); return [m.x, m.y]; }"""
TO_SCREEN = """([x, y]) => { const svg = document.getElementById('plan'); const p = svg.createSVGPoint();
  p.x = x; p.y = y; const m = p.matrixTransform(svg.getScreenCTM()); return [m.x, m.y]; }"""


def _centre(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page, start: tuple[float, float], drop: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 8, start[1] + 4)
    page.mouse.move(*drop, steps=6)
    page.mouse.up()


def _click_corners(page, corners: list[tuple[float, float]]) -> None:
    """Click each corner (metres) on the map; a double-click on the last one closes the zone."""
    for i, corner in enumerate(corners):
        x, y = page.evaluate(TO_SCREEN, list(corner))
        if i == len(corners) - 1:
            page.mouse.dblclick(x, y)
        else:
            page.mouse.click(x, y)


def test_an_admin_places_a_beacon_by_dragging_it_on_the_map(console, ops_account, rt):
    venue = build_venue(rt)
    page = console.sign_in("ops", ops_account("admin"), then=PLAN)
    marker = page.get_by_role("button", name="信标 entrance", exact=True)
    expect(marker).to_be_visible()
    start = _centre(marker)
    drop = (start[0] + 137, start[1] + 71)
    expected = page.evaluate(TO_METRES, list(drop))

    _drag(page, start, drop)

    expect(page.locator("#toast")).to_contain_text("位置已保存")
    with rt.sessions.begin() as session:
        beacon = session.get(Beacon, venue.beacons["entrance"])
        placed = (beacon.x, beacon.y)
    assert abs(placed[0] - expected[0]) <= 0.1 and abs(placed[1] - expected[1]) <= 0.1, (placed, expected)
    assert placed == (round(placed[0], 1), round(placed[1], 1))  # rounded to 0.1 m
    # The marker stays where it was dropped, and the side panel says so.
    expect(page.locator("#selection")).to_contain_text(f"x {placed[0]:.1f} m, y {placed[1]:.1f} m")


def test_an_admin_draws_a_zone_by_clicking_its_corners_and_a_crossing_one_is_refused_beside_its_field(
        console, ops_account, rt):
    build_venue(rt)
    console.allow(400, "/api/v1/ops/zones")
    page = console.sign_in("ops", ops_account("admin"), then=PLAN)

    # Edges that cross: the API refuses it, and says so next to the corners' field.
    page.get_by_role("button", name="绘制区域").click()
    _click_corners(page, [(6, 1), (14, 4), (14, 1), (6, 4)])
    page.get_by_label("名称", exact=True).fill("蝴蝶结")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("[data-error-for=polygon]")).not_to_be_empty()
    expect(page.get_by_label("顶点坐标（米，x, y）")).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="取消").click()

    page.get_by_role("button", name="绘制区域").click()
    _click_corners(page, [(6, 1), (14, 1), (14, 4), (6, 4)])
    expect(page.get_by_label("顶点坐标（米，x, y）")).to_have_value("6.0, 1.0\n14.0, 1.0\n14.0, 4.0\n6.0, 4.0")
    page.get_by_label("名称", exact=True).fill("中庭")
    page.get_by_label("类型").select_option(label="公共区域")
    page.get_by_role("button", name="保存").click()

    expect(page.locator("#toast")).to_contain_text("中庭")
    expect(page.get_by_role("button", name="区域 中庭")).to_be_visible()
    with rt.sessions.begin() as session:
        zone = session.scalar(select(Zone).where(Zone.name == "中庭"))
        assert (zone.kind, zone.floor, zone.active) == ("area", 1, True)
        assert zone.polygon == [[6.0, 1.0], [14.0, 1.0], [14.0, 4.0], [6.0, 4.0]]
        assert session.scalar(select(Zone).where(Zone.name == "蝴蝶结")) is None


def test_a_viewer_sees_the_map_without_edit_controls_and_cannot_move_a_beacon(console, ops_account, rt):
    venue = build_venue(rt)
    page = console.sign_in("ops", ops_account("viewer"), then=PLAN)
    marker = page.get_by_role("button", name="信标 store", exact=True)
    expect(marker).to_be_visible()
    expect(page.get_by_role("button", name="区域 Starlight Coffee")).to_be_visible()
    for control in ("绘制区域", "添加信标"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
    expect(page.locator("#zone-form, #beacon-form")).to_have_count(0)

    start = _centre(marker)
    _drag(page, start, (start[0] + 90, start[1] + 40))  # pans the map; nothing is sent
    marker.click()
    expect(page.locator("#selection")).to_contain_text("从未上报")
    with rt.sessions.begin() as session:
        beacon = session.get(Beacon, venue.beacons["store"])
        assert (beacon.x, beacon.y) == (20.0, 0.0)


def test_the_alerts_feed_shows_a_silent_beacon_and_acknowledging_takes_it_off(console, ops_account, rt, clock):
    venue = build_venue(rt)
    with rt.sessions.begin() as session:
        for name in ("entrance", "store", "item"):
            session.add(BeaconStatus(beacon_id=venue.beacons[name], last_seen_at=clock.now, battery_mv=3000))
        session.get(BeaconStatus, venue.beacons["store"]).last_seen_at = clock.now - timedelta(hours=3)
    with rt.sessions.begin() as session:
        alerts.sweep(session, rt.settings, rt.now())
    username = ops_account("desk")
    console.page.clock.install()  # the page's 30 s refresh, moved on by the test instead of waited for
    page = console.sign_in("ops", username, then="/console/ops/fleet")

    feed = page.get_by_test_id("alerts")
    silent = feed.locator("li", has_text="信标 store")
    expect(silent).to_contain_text("失联")
    page.get_by_label("按问题筛选").select_option(label="失联")
    expect(page.get_by_test_id("beacons").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("beacons")).to_contain_text("store")

    silent.get_by_role("button", name="确认").click()
    expect(silent).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("已确认告警")
    with rt.sessions.begin() as session:
        stored = session.scalars(select(alerts.FleetAlert).where(alerts.FleetAlert.subject_id == venue.beacons["store"]))
        assert [(a.acknowledged_by, a.acknowledged_at, a.cleared_at) for a in stored] == [(username, clock.now, None)]

    # A new problem is raised by the clock's job; the feed shows it at its next refresh, without a reload.
    with rt.sessions.begin() as session:
        session.get(BeaconStatus, venue.beacons["item"]).battery_mv = 2000
    with rt.sessions.begin() as session:
        alerts.sweep(session, rt.settings, rt.now())
    page.clock.run_for(31_000)
    expect(feed.locator("li", has_text="信标 item")).to_contain_text("电量低")
    expect(feed.locator("li", has_text="信标 store")).to_have_count(0)


def test_parking_sessions_are_found_by_plate_with_their_payments(console, ops_account, rt):
    park = parkcore_car_park(rt)
    parkcore_parked_car(rt, park, "沪A12345", minutes_ago=90)
    parkcore_parked_car(rt, park, "京B99999", minutes_ago=30)
    page = console.sign_in("ops", ops_account("viewer"), then="/console/ops/parking/sessions")
    expect(page.get_by_test_id("sessions").locator("tbody tr")).to_have_count(2)

    page.get_by_label("车牌").fill("沪A12")
    page.get_by_role("button", name="搜索").click()
    rows = page.get_by_test_id("sessions").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("沪A12345")
    expect(rows.first).to_contain_text("在场")
    rows.first.click()
    expect(page.locator("#detail")).to_contain_text("沪A12345（停车场 P1）")
    expect(page.get_by_test_id("payments")).to_contain_text("没有缴费")


def test_the_revenue_chart_and_table_carry_each_days_figures(console, ops_account, rt, clock):
    history = parking_history(rt)
    yesterday = clock.now - timedelta(days=1)
    first = history.stay("沪A11111", yesterday - timedelta(hours=2), yesterday)
    history.payment(first, cash_fen=2500, at=yesterday - timedelta(minutes=5))
    second = history.stay("沪A22222", clock.now - timedelta(hours=1))
    history.payment(second, cash_fen=1500, refunded_fen=500, at=clock.now - timedelta(minutes=10))
    page = console.sign_in("ops", ops_account("viewer"), then="/console/ops/parking/revenue")

    shown = page.evaluate("""() => { const chart = echarts.getInstanceByDom(document.getElementById('revenue-chart'));
        const option = chart.getOption(); return [option.xAxis[0].data, option.series[0].data]; }""")
    days, revenue = shown
    assert len(days) == 7 and days[-1] == "2026-03-10"
    by_day = dict(zip(days, revenue, strict=True))
    assert (by_day["2026-03-09"], by_day["2026-03-10"]) == (25, 10)  # yuan, net of the refund
    today = page.get_by_test_id("days").locator("tr[data-day='2026-03-10']")
    expect(today).to_contain_text("¥15.00")   # taken
    expect(today).to_contain_text("¥5.00")    # refunded
    expect(today).to_contain_text("¥10.00")   # net
    expect(page.get_by_test_id("reconciliations")).to_contain_text("这段时间还没有对账")


def test_a_bad_tariff_is_refused_beside_the_textarea_and_a_good_one_is_saved(console, ops_account, rt):
    park = parkcore_car_park(rt)
    console.allow(400, f"/api/v1/ops/car-parks/{park}/tariff")
    page = console.sign_in("ops", ops_account("admin"), then="/console/ops/parking")
    expect(page.get_by_test_id("tariff")).to_contain_text("小型车")
    expect(page.get_by_test_id("levels")).to_contain_text("B1")
    editor = page.get_by_label("收费标准（JSON）")

    editor.fill('{"plans": {"small": {"first_period_fen": 1000, "step_minutes": 0, "bands": []}}}')
    page.get_by_role("button", name="保存收费标准").click()
    expect(page.get_by_test_id("tariff-error")).not_to_be_empty()
    expect(page.locator("#tariff-form [data-detail-for=document]")).to_contain_text("step_minutes")
    expect(editor).to_have_attribute("aria-invalid", "true")

    editor.fill("{not json")
    page.get_by_role("button", name="保存收费标准").click()
    expect(page.get_by_test_id("tariff-error")).to_contain_text("不是有效的 JSON")

    editor.fill('{"plans": {"small": {"first_period_fen": 800, "bands": '
                '[{"name": "全天", "start": "00:00", "end": "00:00", "step_fen": 300}]}}}')
    page.get_by_role("button", name="保存收费标准").click()
    expect(page.get_by_test_id("tariff")).to_contain_text("¥8.00")
    with rt.sessions.begin() as session:
        assert session.get(CarPark, park).tariff["plans"]["small"]["first_period_fen"] == 800
