"""The operations console's parking pages in a real browser: sessions found by plate with their payments, the
revenue chart and table carrying each day's figures, a bad tariff refused beside its textarea."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import parkcore_car_park, parkcore_parked_car, parking_history
from playwright.sync_api import expect

from mallapp.domain.parking.models import CarPark

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]


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
    expect(page.get_by_test_id("rules")).to_contain_text("600 积分兑换 1 小时")
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
