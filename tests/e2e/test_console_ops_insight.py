"""The operations console's insight pages in a real browser: the dashboard's figures, the member reports drawn
as charts, footfall over the floor plan; English on one of them."""

from __future__ import annotations

import pytest
from factories import REPORTS_MONTH, ops_day_world, reports_world
from playwright.sync_api import expect

from mallapp.domain import member_reports

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]


def _zones_drawn(page) -> dict[str, int]:
    """The heat map's value per zone id (ECharts adds the floor outline, which has none)."""
    return {d["name"]: d["value"] for d in _option(page, "#floor-map")["series"][0]["data"] if "value" in d}


def _option(page, selector: str) -> dict:
    """The ECharts option drawn in an element (what the chart shows, as data)."""
    return page.evaluate("(s) => echarts.getInstanceByDom(document.querySelector(s)).getOption()", selector)


def test_the_dashboard_shows_the_days_figures_and_another_day(console, ops_account, rt, client):
    ops_day_world(rt)
    page = console.sign_in("ops", ops_account("viewer"))
    assert page.url.endswith("/console/ops/")
    expect(page.get_by_role("heading", name="运营概览")).to_be_visible()
    expect(page.get_by_label("日期")).to_have_value("2026-03-10")  # the server's day, not the browser's
    shown = {key: page.get_by_test_id(key) for key in ("in-mall-now", "new-members", "checkins", "sales", "purchases",
                                                        "points-issued", "points-redeemed", "footfall-total")}
    expected = {"in-mall-now": "1", "new-members": "2", "checkins": "3", "sales": "¥35.50", "purchases": "2 笔消费",
                "points-issued": "130", "points-redeemed": "40", "footfall-total": "3"}
    for key, text in expected.items():
        expect(shown[key]).to_have_text(text)
    expect(page.get_by_test_id("footfall-compared")).to_have_text("上周同日 2 人次")
    expect(page.locator("#footfall-chart canvas")).to_have_count(1)
    series = _option(page, "#footfall-chart")["series"]
    assert series[0]["data"][10] == 2 and series[0]["data"][14] == 1 and series[1]["data"][21] == 1

    page.get_by_label("日期").fill("2026-03-09")
    page.get_by_role("button", name="查看").click()
    expect(shown["sales"]).to_have_text("¥999.00")
    expect(shown["new-members"]).to_have_text("1")
    assert "day=2026-03-09" in page.url

    # A day the API refuses, typed into the address: the error beside the picker, today's figures shown.
    console.allow(400, "/api/v1/ops/dashboard")
    console.open("/console/ops/?day=2026-02-30")
    expect(page.locator("[data-error-for=day]")).not_to_be_empty()
    expect(page.get_by_label("日期")).to_have_attribute("aria-invalid", "true")
    expect(shown["sales"]).to_have_text("¥35.50")


def test_the_reports_page_draws_every_report_with_its_numbers(console, ops_account, rt):
    reports_world(rt)
    with rt.sessions.begin() as s:
        member_reports.precompute(s, rt.settings, REPORTS_MONTH, rt.now())
    page = console.sign_in("ops", ops_account("marketing"), then="/console/ops/reports")
    expect(page.get_by_role("heading", name="会员报表")).to_be_visible()
    expect(page.get_by_label("月份")).to_have_value("2026-03")
    for section in ("t-tiers", "transitions", "pyramid", "valuable", "thresholds", "rfm", "lifecycle", "lifetime-value",
                    "cohorts"):
        expect(page.get_by_test_id(section).locator("canvas").first).to_be_attached()
    tiers = page.locator("#t-tiers-table")
    for tier in ("T1 高频高额", "T2 低频高额", "T3 高频低额"):
        expect(tiers.get_by_role("row", name=f"{tier} 1")).to_be_visible()
    # a and b were T2 in February: a moved up to T1, b stayed.
    moved = page.locator("#transitions-table tbody tr", has_text="T2 低频高额")
    expect(moved.locator("td")).to_have_text(["T2 低频高额", "1", "1", "0", "0", "0"])
    expect(page.locator("#pyramid-table").get_by_role("row", name="VIP 会员 1 ¥12,000.00")).to_be_visible()
    expect(page.get_by_test_id("frequent")).to_have_text("2")       # a (12 visits) and c (11)
    expect(page.get_by_test_id("big-spenders")).to_have_text("1")   # a (12,000 yuan)
    expect(page.locator("#frequent-label")).to_have_text("到访超过 10 次的会员")
    expect(page.locator("#rfm-table")).to_contain_text("冠军客户")
    expect(page.locator("#lifecycle-table").get_by_role("row", name="新会员 2")).to_be_visible()
    expect(page.locator("#flows-table")).to_contain_text("注册入会")
    assert _option(page, "#pyramid-chart")["series"][0]["data"][0]["value"] == 1


def test_footfall_heat_map_shows_the_zones_and_the_time_slot_narrows_it_in_english(console, ops_account, rt):
    world = ops_day_world(rt)
    page = console.sign_in("ops", ops_account("viewer"), then="/console/ops/footfall")
    expect(page.get_by_role("heading", name="客流与停留")).to_be_visible()
    expect(page.locator("#floor-map canvas")).to_have_count(1)
    drawn = _zones_drawn(page)
    venue = world["venue"]
    assert drawn == {str(venue.entrance): 3, str(venue.store_zone): 1, str(venue.item_zone): 0}
    entrance = page.locator("#hours-table tr", has_text="North entrance")
    expect(entrance.locator("td").last).to_have_text("3")
    expect(page.locator("#summary-table tr", has_text="Starlight Coffee")).to_contain_text("10 分钟")

    page.get_by_label("时段开始").select_option("14")
    page.get_by_label("时段结束").select_option("14")
    expect(entrance.locator("td").last).to_have_text("1")
    drawn = _zones_drawn(page)
    assert drawn[str(venue.entrance)] == 1 and drawn[str(venue.store_zone)] == 0

    page.get_by_role("link", name="English").click()
    console.wait_ready()
    expect(page.get_by_role("heading", name="Footfall and dwell")).to_be_visible()
    expect(page.get_by_role("link", name="Member reports")).to_be_visible()
    expect(page.locator("#summary-table")).to_contain_text("10 min")
