/* Today's bookings at the restaurant (the mall's today, by the server's clock): the slots with their tables
 * taken, and each booking with arrive and cancel (cancel asks first, with the reason the member is told). */
"use strict";

(function () {
  const h = Mall.h;
  const slotsEl = document.getElementById("slots");
  const bookingsEl = document.getElementById("bookings");
  const dialog = document.getElementById("cancel-dialog");
  const cancelForm = document.getElementById("cancel-form");
  const cancelWhat = document.getElementById("cancel-what");
  const day = Mall.today();
  let store = null;
  let poller = null;
  let cancelling = null;  // the booking the dialog is about

  document.getElementById("bookings-day").textContent = Mall.t("host.bookings.day", {date: Mall.when("date", day + "T12:00:00Z")});

  const STATUS_BADGE = {booked: "", arrived: "ok", cancelled: "bad", no_show: "warn"};

  function party(min, max) {
    return min === max ? Mall.t("host.slots.party_one", {n: min}) : Mall.t("host.slots.party", {min, max});
  }

  function renderSlots(slots) {
    Mall.table(slotsEl, [
      {title: "host.slots.time", value: (s) => Mall.when("time", s.starts_at) + "–" + Mall.when("time", s.ends_at)},
      {title: "host.slots.party_size", value: (s) => party(s.min_party, s.max_party)},
      {title: "host.slots.used", num: true, value: (s) => Mall.t("host.slots.used_of", {booked: s.booked, capacity: s.capacity})},
      {title: "host.slots.remaining", num: true, value: (s) => Mall.number(s.remaining)},
      {title: "host.slots.state", value: (s) => h("span", {class: "badge " + (s.open ? "ok" : "warn")},
                                                  Mall.t(s.open ? "host.slots.open" : "host.slots.closed"))},
    ], slots, {empty: "host.slots.none", rowData: (s) => ({slot: s.id})});
  }

  function guest(r) {
    return h("span", {class: "guest"}, r.member.nickname || Mall.t("host.bookings.no_nickname"),
             r.member.phone ? h("span", {class: "muted"}, " " + r.member.phone) : null);
  }

  function actions(r) {
    if (r.status !== "booked") {
      return r.cancel_reason ? h("span", {class: "muted"}, r.cancel_reason) : "";
    }
    return h("span", {class: "ticket-actions"},
      h("button", {type: "button", class: "primary", onclick: (e) => arrive(e.currentTarget, r)}, Mall.t("host.bookings.arrive")),
      h("button", {type: "button", class: "danger", onclick: () => askCancel(r)}, Mall.t("host.bookings.cancel")),
      h("span", {class: "field-error", role: "alert", "data-row-error": r.id}));
  }

  function renderBookings(list) {
    Mall.table(bookingsEl, [
      {title: "host.bookings.time", value: (r) => Mall.when("time", r.starts_at)},
      {title: "host.bookings.party_size", num: true, value: (r) => Mall.t("host.ticket.party", {n: r.party_size})},
      {title: "host.bookings.guest", value: guest},
      {title: "host.bookings.status", value: (r) => h("span", {class: "badge " + STATUS_BADGE[r.status]},
                                                      Mall.t("host.bookings.status_" + r.status))},
      {title: "console.actions", value: actions},
    ], list, {empty: "host.bookings.none", rowData: (r) => ({reservation: r.id, status: r.status})});
  }

  async function load() {
    const base = `/api/v1/merchant/stores/${store.id}`;
    const [slots, bookings] = await Promise.all([
      Mall.api("GET", `${base}/reservation-slots?date=${day}`),
      Mall.api("GET", `${base}/reservations?date=${day}`)]);
    return {slots: slots.slots, bookings: bookings.reservations};
  }

  let loaded = false;
  function render(data) {
    renderSlots(data.slots);
    renderBookings(data.bookings);
    loaded = true;
  }

  function offline(err) {
    if (!loaded) { Mall.failed(bookingsEl, err); return; }
    Mall.toast(Mall.errorText(err), "error");
  }

  async function arrive(button, r) {
    button.disabled = true;
    try {
      await Mall.api("POST", `/api/v1/merchant/reservations/${r.id}/arrive`);
      Mall.toast(Mall.t("host.bookings.arrived_toast", {time: Mall.when("time", r.starts_at), n: r.party_size}));
      await poller.refresh();
    } catch (err) {
      const text = Mall.errorText(err);
      const slot = bookingsEl.querySelector(`[data-row-error="${r.id}"]`);
      if (slot) slot.textContent = text;
      Mall.toast(text, "error");
      button.disabled = false;
    }
  }

  function askCancel(r) {
    cancelling = r;
    Mall.clearErrors(cancelForm);
    cancelForm.reset();
    cancelWhat.textContent = Mall.t("host.cancel.what", {time: Mall.when("time", r.starts_at), n: r.party_size,
                                                         guest: r.member.nickname || Mall.t("host.bookings.no_nickname")});
    dialog.showModal();
  }

  document.getElementById("cancel-back").addEventListener("click", () => dialog.close());

  Mall.form(cancelForm, async (values) => {
    await Mall.api("POST", `/api/v1/merchant/reservations/${cancelling.id}/cancel`, {reason: values.reason});
    dialog.close();
    Mall.toast(Mall.t("host.cancel.done"));
    await poller.refresh();
  });

  (async function start() {
    try {
      poller = Host.poll(load, render, offline);
      store = await Host.store((chosen) => { store = chosen; loaded = false; return poller.refresh(); });
      if (!store) {
        bookingsEl.replaceChildren(h("p", {class: "card warning"}, Mall.t("host.store.none")));
        return;
      }
      await poller.refresh();
    } catch (err) {
      Mall.failed(bookingsEl, err);
    } finally {
      Mall.ready();
    }
  })();
})();
