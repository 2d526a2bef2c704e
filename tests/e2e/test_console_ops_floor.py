"""The operations console's floor plan and fleet pages in a real browser: an admin places a beacon by dragging
it, draws a zone by clicking its corners, reshapes one by dragging a corner and registers a beacon; a viewer
sees the map without edit controls; the alerts feed shows a silent beacon and acknowledging takes it off.
(The parking pages: test_console_ops_parking.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import build_venue
from playwright.sync_api import expect
from sqlalchemy import select

from mallapp.domain import alerts
from mallapp.domain.venue import Beacon, BeaconStatus, Gateway, Zone

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


def test_an_admin_reshapes_a_zone_by_dragging_a_corner(console, ops_account, rt):
    venue = build_venue(rt)
    page = console.sign_in("ops", ops_account("admin"), then=PLAN)
    inside = page.evaluate(TO_SCREEN, [22, 3])
    page.mouse.click(*inside)  # the Starlight Coffee zone: [[15, 0], [25, 0], [25, 5]]
    expect(page.get_by_role("heading", name="修改区域")).to_be_visible()
    corner = page.get_by_role("button", name="第 3 个顶点")
    drop = page.evaluate(TO_SCREEN, [25, 8])
    _drag(page, _centre(corner), tuple(drop))
    expect(page.get_by_label("顶点坐标（米，x, y）")).to_have_value("15.0, 0.0\n25.0, 0.0\n25.0, 8.0")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("#toast")).to_contain_text("Starlight Coffee")
    with rt.sessions.begin() as session:
        assert session.get(Zone, venue.store_zone).polygon == [[15.0, 0.0], [25.0, 0.0], [25.0, 8.0]]


def test_an_admin_registers_a_beacon_where_they_click_and_a_duplicate_is_named_beside_its_identity(
        console, ops_account, rt):
    build_venue(rt)  # its beacons are 1/1, 1/2, 1/3
    console.allow(409, "/api/v1/ops/beacons")
    page = console.sign_in("ops", ops_account("admin"), then=PLAN)
    page.get_by_role("button", name="添加信标").click()
    page.mouse.click(*page.evaluate(TO_SCREEN, [10, 2]))
    expect(page.get_by_role("spinbutton", name="X（米）")).to_have_value("10.0")
    expect(page.get_by_role("spinbutton", name="Y（米）")).to_have_value("2.0")
    page.get_by_label("Major").fill("1")
    page.get_by_label("Minor").fill("2")
    page.get_by_label("信标名称").fill("atrium")
    page.get_by_role("button", name="登记信标").click()
    expect(page.locator("[data-error-for=identity]")).not_to_be_empty()

    page.get_by_label("Minor").fill("9")
    page.get_by_role("button", name="登记信标").click()
    expect(page.get_by_role("button", name="信标 atrium", exact=True)).to_be_visible()
    with rt.sessions.begin() as session:
        beacon = session.scalar(select(Beacon).where(Beacon.minor == 9))
        assert (beacon.label, beacon.major, beacon.floor, beacon.x, beacon.y) == ("atrium", 1, 1, 10.0, 2.0)


def test_in_english_a_viewer_reads_fleet_health_and_alerts_without_acknowledging(console, ops_account, rt):
    venue = build_venue(rt)
    with rt.sessions.begin() as session:
        alerts.sweep(session, rt.settings, rt.now())  # nothing heard yet: every beacon and the gateway never seen
    page = console.sign_in("ops", ops_account("viewer"), then="/console/ops/fleet")
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    console.wait_ready()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(page.get_by_test_id("alerts").locator("li", has_text="Gateway Entrance gateway")).to_contain_text("Never seen")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)  # the desk's or an admin's
    expect(page.get_by_test_id("beacons").locator("tbody tr")).to_have_count(len(venue.beacons))
    expect(page.get_by_role("navigation", name="Navigation")).to_contain_text("Floor plan")


def test_a_beacon_is_dragged_with_a_finger_on_a_touch_screen(console, ops_account, rt):
    venue = build_venue(rt)
    page = console.sign_in("ops", ops_account("admin"), then=PLAN)
    marker = page.get_by_role("button", name="信标 item", exact=True)
    start = _centre(marker)
    drop = (start[0] - 160, start[1] + 90)
    expected = page.evaluate(TO_METRES, list(drop))
    # Touch input as the screen sends it (Chromium turns it into pointer events of type "touch").
    touch = page.context.new_cdp_session(page)
    touch.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
    for step in range(1, 7):
        x, y = (start[0] + (drop[0] - start[0]) * step / 6, start[1] + (drop[1] - start[1]) * step / 6)
        touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    expect(page.locator("#toast")).to_contain_text("位置已保存")
    with rt.sessions.begin() as session:
        beacon = session.get(Beacon, venue.beacons["item"])
        assert abs(beacon.x - expected[0]) <= 0.1 and abs(beacon.y - expected[1]) <= 0.1, ((beacon.x, beacon.y), expected)


def test_two_fingers_pinch_the_map_larger_about_their_midpoint(console, ops_account, rt):
    build_venue(rt)
    page = console.sign_in("ops", ops_account("viewer"), then=PLAN)
    box = page.locator("#plan").bounding_box()
    mid = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before_width = page.evaluate("() => document.getElementById('plan').viewBox.baseVal.width")
    under_fingers = page.evaluate(TO_METRES, list(mid))
    touch = page.context.new_cdp_session(page)
    touch.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 2})

    def fingers(kind: str, apart: float) -> None:
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
            {"x": mid[0] - apart, "y": mid[1], "id": 1}, {"x": mid[0] + apart, "y": mid[1], "id": 2}]})

    fingers("touchStart", 40)
    for apart in (60, 80):
        fingers("touchMove", apart)
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    after_width = page.evaluate("() => document.getElementById('plan').viewBox.baseVal.width")
    assert after_width == pytest.approx(before_width / 2, rel=0.01)  # fingers twice as far apart: twice as near
    still_under = page.evaluate(TO_METRES, list(mid))
    assert still_under == pytest.approx(under_fingers, abs=0.05)


def test_an_admin_registers_a_gateway_and_sees_its_key_once(console, ops_account, rt):
    venue = build_venue(rt)
    page = console.sign_in("ops", ops_account("admin"), then=PLAN)
    page.get_by_role("button", name="添加网关").click()
    page.mouse.click(*page.evaluate(TO_SCREEN, [18, 4]))
    page.get_by_label("网关名称").fill("中庭网关")
    page.get_by_role("combobox", name="所在区域").select_option(label="Starlight Coffee")
    page.get_by_role("button", name="登记网关").click()
    key = page.get_by_test_id("gateway-key")
    expect(key).to_contain_text("gk_")
    expect(page.get_by_role("button", name="网关 中庭网关")).to_be_visible()
    with rt.sessions.begin() as session:
        gateway = session.scalar(select(Gateway).where(Gateway.name == "中庭网关"))
        assert (gateway.floor, gateway.x, gateway.y, gateway.zone_id) == (1, 18.0, 4.0, venue.store_zone)
        assert key.inner_text().startswith(f"gk_{gateway.id}.")
