"""The restaurant host in a real browser: the queue by band (call, seat, skip, walk-ins), the caller display on a
second tab, and today's bookings (arrive, cancel after confirming)."""

from __future__ import annotations

from datetime import date

import pytest
from factories import publish, restaurant
from playwright.sync_api import expect
from sqlalchemy import select

from mallapp.domain import queueing, venue_admin
from mallapp.domain.queueing.models import QueueTicket
from mallapp.domain.reservation_admin import Band
from mallapp.domain.reservations import Reservation

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

TODAY = date(2026, 3, 10)  # the clock fixture's day in the mall


def _status(rt, store_id: int, ticket_no: str) -> str:
    with rt.sessions.begin() as s:
        return s.scalar(select(QueueTicket.status).where(QueueTicket.store_id == store_id,
                                                         QueueTicket.ticket_no == ticket_no))


def _leave(page) -> None:
    """Let the page's read in flight finish before going elsewhere (a read cut off by leaving is a failed request)."""
    page.wait_for_selector("body[data-ready='1']", state="attached")
    page.evaluate("Host.stop()")


def _take(client, store_id: int, member, size: int) -> str:
    taken = client.post(f"/api/v1/stores/{store_id}/queue/tickets", json={"party_size": size}, headers=member["headers"])
    assert taken.status_code == 201, taken.get_json()
    return taken.get_json()["ticket_no"]


def test_the_host_calls_seats_and_skips_parties_and_the_tv_shows_the_called_number(
        console, staff_account, rt, client, members_api, app_url):
    merchant_id, store_id = restaurant(rt)
    username, _ = staff_account("cashier", merchant_id=merchant_id)
    page = console.sign_in("staff", username, then="/console/host/")
    expect(page.get_by_role("heading", name="排队叫号")).to_be_visible()
    expect(page.locator("#queue-state")).to_have_text("已停止取号")
    page.get_by_role("button", name="开始取号").click()
    expect(page.locator("#queue-state")).to_have_text("正在取号")

    # Members take numbers from the mini-program; the board shows them without a reload.
    ada, bo, chen = (members_api.sign_in(openid=f"o-host-{n}") for n in ("ada", "bo", "chen"))
    assert [_take(client, store_id, m, size) for m, size in ((ada, 2), (bo, 1), (chen, 6))] == ["A001", "A002", "C001"]
    band_a = page.locator("[data-band=A]")
    expect(band_a.locator("[data-ticket-no=A002]")).to_contain_text("线上取号")
    expect(band_a.locator("[data-ticket-no=A001]")).to_contain_text("2 人")

    page.get_by_role("button", name="A 桌叫下一位").click()
    expect(band_a.locator("[data-ticket-no=A001]")).to_have_attribute("data-status", "called")
    assert _status(rt, store_id, "A001") == "called"

    # The caller display on a second tab (a TV signed in by the same staff member): the number, big.
    tv = type(console)(page.context.new_page(), app_url)  # a second watched tab
    tv.open(f"/console/host/display?store={store_id}")
    expect(tv.page.get_by_test_id("last-called-A")).to_have_text("A001")
    expect(tv.page.get_by_test_id("last-called-C")).to_have_text("—")
    expect(tv.page.locator("body")).not_to_contain_text("o-host")

    page.get_by_role("button", name="A001 入座").click()
    expect(band_a.locator("[data-ticket-no=A001]")).to_have_count(0)
    assert _status(rt, store_id, "A001") == "seated"

    page.get_by_role("button", name="A 桌叫下一位").click()
    expect(band_a.locator("[data-ticket-no=A002]")).to_have_attribute("data-status", "called")
    expect(tv.page.get_by_test_id("last-called-A")).to_have_text("A002")
    expect(tv.page.locator("[data-band=A] .caller-old")).to_have_text(["A001"])

    page.get_by_role("button", name="A002 过号").click()
    expect(page.locator("#toast")).to_contain_text("A002 已过号")
    assert _status(rt, store_id, "A002") == "skipped"

    # Nobody left in band A: calling says so beside the band's button, and the page carries on.
    console.allow(409, f"/api/v1/merchant/stores/{store_id}/queue/call")
    page.get_by_role("button", name="A 桌叫下一位").click()
    expect(band_a.locator(".band-error")).to_have_text("A 桌暂无排队的顾客，无需叫号。")
    expect(page.locator("[data-band=C] [data-ticket-no=C001]")).to_have_attribute("data-status", "waiting")
    tv.check()


def test_a_walk_in_gets_a_number_and_bad_party_sizes_are_named_next_to_the_field(console, staff_account, rt):
    merchant_id, store_id = restaurant(rt)
    username, _ = staff_account("cashier", merchant_id=merchant_id)
    page = console.sign_in("staff", username, then="/console/host/")
    page.get_by_role("button", name="开始取号").click()
    expect(page.locator("#queue-state")).to_have_text("正在取号")
    console.allow(400, f"/api/v1/merchant/stores/{store_id}/queue/walk-ins")
    console.allow(422, f"/api/v1/merchant/stores/{store_id}/queue/walk-ins")
    size = page.get_by_label("就餐人数")
    page.get_by_role("button", name="取号", exact=True).click()
    expect(page.locator("[data-error-for=party_size]")).not_to_be_empty()
    size.fill(str(rt.settings.queue.max_party + 1))
    page.get_by_role("button", name="取号", exact=True).click()
    expect(page.locator("[data-error-for=party_size]")).not_to_be_empty()
    expect(size).to_have_attribute("aria-invalid", "true")
    size.fill("3")
    page.get_by_role("button", name="取号", exact=True).click()
    expect(page.locator("#walk-in-result")).to_have_text("已取号 B001（3 人），前面还有 0 桌")
    expect(page.locator("[data-band=B] [data-ticket-no=B001]")).to_contain_text("现场取号")
    assert _status(rt, store_id, "B001") == "waiting"

    # A second tablet seats the party while this screen still shows it waiting: passing it over is refused.
    page.evaluate("Host.stop()")  # this screen's board is not read again: it stays stale
    with rt.sessions.begin() as s:
        ticket_id = s.scalar(select(QueueTicket.id).where(QueueTicket.store_id == store_id))
        queueing.seat(s, rt.senders, rt.settings, merchant_id, store_id, ticket_id, rt.now())
    console.allow(409, f"/api/v1/merchant/stores/{store_id}/queue/tickets/{ticket_id}/skip")
    page.get_by_role("button", name="B001 过号").click()
    expect(page.locator("[data-band=B] .band-error")).to_have_text("该号码已入座，无法再操作。")
    assert _status(rt, store_id, "B001") == "seated"


def test_the_host_confirms_an_arrival_and_cancels_a_booking_after_confirming(console, staff_account, rt, client,
                                                                             members_api):
    merchant_id, store_id = restaurant(rt)
    lunch, = publish(rt, merchant_id, store_id, ["12:00"], [Band(1, 6, 5)], day=TODAY)
    booked = {}
    for name, size in (("Lin", 2), ("Bo", 4)):
        member = members_api.sign_in(openid=f"o-book-{name}")
        assert client.patch("/api/v1/me", json={"nickname": name}, headers=member["headers"]).status_code == 200
        made = client.post("/api/v1/me/reservations", json={"slot_id": lunch, "party_size": size,
                                                            "request_id": f"r-{name}"}, headers=member["headers"])
        assert made.status_code == 201, made.get_json()
        booked[name] = made.get_json()["id"]
    username, _ = staff_account("cashier", merchant_id=merchant_id)
    page = console.sign_in("staff", username, then="/console/host/reservations")
    expect(page.locator("#bookings-day")).to_have_text("2026年3月10日")
    expect(page.locator(f"[data-slot='{lunch}']")).to_contain_text("2 / 5")
    lin, bo = (page.locator(f"[data-reservation='{booked[n]}']") for n in ("Lin", "Bo"))
    expect(lin).to_contain_text("12:00")
    expect(lin).to_contain_text("已预约")

    lin.get_by_role("button", name="到店").click()
    expect(lin).to_contain_text("已到店")
    expect(lin.get_by_role("button", name="到店")).to_have_count(0)

    bo.get_by_role("button", name="取消预约").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("12:00 · 4 人 · Bo")
    console.allow(400, f"/api/v1/merchant/reservations/{booked['Bo']}/cancel")
    dialog.get_by_role("button", name="确认取消预约").click()
    expect(dialog.locator("[data-error-for=reason]")).not_to_be_empty()
    dialog.get_by_label("取消原因（会告知顾客）").fill("顾客来电取消")
    dialog.get_by_role("button", name="确认取消预约").click()
    expect(dialog).to_be_hidden()
    expect(bo).to_contain_text("已取消")
    expect(page.locator(f"[data-slot='{lunch}']")).to_contain_text("1 / 5")
    with rt.sessions.begin() as s:
        assert s.get(Reservation, booked["Lin"]).status == "arrived"
        cancelled = s.get(Reservation, booked["Bo"])
        assert (cancelled.status, cancelled.cancelled_by, cancelled.cancel_reason) == (
            "cancelled", "restaurant", "顾客来电取消")


def test_the_caller_display_speaks_english_when_chosen_and_the_picker_remembers_the_restaurant(
        console, staff_account, rt):
    merchant_id, first = restaurant(rt, "Noodle House")
    with rt.sessions.begin() as s:
        second = venue_admin.create_store(s, name="Dumpling Bar", floor=2, x=0, y=0, merchant_id=merchant_id,
                                          now=rt.now()).id
    username, _ = staff_account("cashier", merchant_id=merchant_id)
    page = console.sign_in("staff", username, then="/console/host/")
    picker = page.get_by_label("门店")
    expect(picker).to_have_value(str(second))  # by name: Dumpling Bar comes first
    picker.select_option(label="Noodle House")
    expect(page.locator("#to-display")).to_have_attribute("href", f"/console/host/display?store={first}")
    page.get_by_role("button", name="开始取号").click()
    expect(page.locator("#queue-state")).to_have_text("正在取号")
    _leave(page)
    console.open("/console/host/")
    expect(page.get_by_label("门店")).to_have_value(str(first))  # this device remembers it
    _leave(page)
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    _leave(page)
    console.open("/console/host/display")
    expect(page.locator("#caller-store")).to_have_text("Noodle House")
    expect(page.get_by_text("Now calling")).to_be_visible()
    expect(page.get_by_test_id("last-called-A")).to_have_text("—")
    expect(page.locator("[data-band=C] .caller-band-name")).to_have_text("C · 5+ people")
