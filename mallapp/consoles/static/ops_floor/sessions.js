/* Parking sessions by plate (the whole plate, or its first three or more characters), car park, entry day and
 * status, newest first, a page at a time; a session opens with its payments and the benefits they used. */
"use strict";

(function () {
  const {h, t, api} = Mall;
  const form = document.getElementById("search");
  const table = document.getElementById("sessions");
  const more = document.getElementById("more");
  const detail = document.getElementById("detail");
  let rows = [];
  let query = null;
  let next = null;

  const COLUMNS = [
    {title: "ops_floor.sessions.plate", value: (s) => s.plate},
    {title: "ops_floor.parking.car_park", value: (s) => s.car_park},
    {title: "ops_floor.sessions.entered", value: (s) => Mall.when("datetime", s.entered_at)},
    {title: "ops_floor.sessions.exited", value: (s) => Mall.when("datetime", s.exited_at)},
    {title: "ops_floor.sessions.status", value: (s) => t("ops_floor.status." + s.status)},
    {title: "ops_floor.sessions.member", value: (s) => (s.member_id ? `#${s.member_id}` : "—")},
    {title: "ops_floor.sessions.fee", num: true, value: (s) => Mall.yuan(s.gross_fen)},
    {title: "ops_floor.sessions.bay", value: (s) => s.bay_code || "—"},
  ];

  function draw() {
    Mall.table(table, COLUMNS, rows, {empty: "ops_floor.sessions.none", rowData: (s) => ({sessionId: s.id})});
    table.querySelectorAll("tbody tr[data-session-id]").forEach((tr) => {
      tr.classList.add("clickable");
      tr.tabIndex = 0;
      const open = () => openSession(Number(tr.dataset.sessionId)).catch((err) => Mall.toast(Mall.errorText(err), "error"));
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    });
    more.hidden = next === null;
  }

  async function search(params, append) {
    const url = new URLSearchParams(params);
    if (append && next) url.set("before_id", next);
    const answer = await api("GET", "/api/v1/ops/parking/sessions?" + url.toString());
    rows = append ? rows.concat(answer.sessions) : answer.sessions;
    next = answer.next_before_id;
    draw();
  }

  async function openSession(id) {
    const s = await api("GET", `/api/v1/ops/parking/sessions/${id}`);
    const payments = Mall.table(h("table", {"data-testid": "payments"}), [
      {title: "ops_floor.payments.order", value: (p) => p.order_id},
      {title: "ops_floor.payments.status", value: (p) => t("ops_floor.payment_status." + p.status)},
      {title: "ops_floor.payments.gross", num: true, value: (p) => Mall.yuan(p.gross_fen)},
      {title: "ops_floor.payments.discount", num: true, value: (p) => Mall.yuan(p.discount_fen)},
      {title: "ops_floor.payments.cash", num: true, value: (p) => Mall.yuan(p.cash_fen)},
      {title: "ops_floor.payments.refunded", num: true, value: (p) => Mall.yuan(p.refunded_fen)},
      {title: "ops_floor.payments.paid_at", value: (p) => Mall.when("datetime", p.paid_at)},
    ], s.payments, {empty: "ops_floor.payments.none"});
    const benefits = Mall.table(h("table", {"data-testid": "benefits"}), [
      {title: "ops_floor.benefits.kind", value: (b) => t("ops_floor.benefit." + b.kind)},
      {title: "ops_floor.benefits.time", num: true, value: (b) => t("ops_floor.parking.minutes", {n: Math.round(b.seconds / 60)})},
      {title: "ops_floor.benefits.worth", num: true, value: (b) => Mall.yuan(b.fen)},
      {title: "ops_floor.benefits.points", num: true, value: (b) => Mall.number(b.points)},
      {title: "ops_floor.benefits.voided", value: (b) => (b.voided_at ? Mall.when("datetime", b.voided_at) : "—")},
    ], s.benefits, {empty: "ops_floor.benefits.none"});
    detail.replaceChildren(
      h("h2", {}, t("ops_floor.sessions.detail", {plate: s.plate, car_park: s.car_park})),
      h("dl", {class: "facts"},
        h("dt", {}, t("ops_floor.sessions.order_no")), h("dd", {}, s.order_no),
        h("dt", {}, t("ops_floor.sessions.entered")), h("dd", {}, `${Mall.when("datetime", s.entered_at)} · ${s.entry_gate || "—"}`),
        h("dt", {}, t("ops_floor.sessions.exited")), h("dd", {}, `${Mall.when("datetime", s.exited_at)} · ${s.exit_gate || "—"}`),
        h("dt", {}, t("ops_floor.sessions.status")), h("dd", {}, t("ops_floor.status." + s.status)),
        h("dt", {}, t("ops_floor.sessions.unpaid")), h("dd", {}, Mall.yuan(s.unpaid_fen))),
      h("h3", {}, t("ops_floor.payments.title")), payments,
      h("h3", {}, t("ops_floor.benefits.title")), benefits);
    detail.hidden = false;
    detail.scrollIntoView({block: "nearest"});
  }

  Mall.form(form, async (values) => {
    query = values;
    detail.hidden = true;
    await search(query, false);
  }, {codes: {"parking.plate_invalid": "plate", "parking.car_park_not_found": "car_park"}});

  more.addEventListener("click", () => Mall.act(more, () => search(query || {}, true)));

  (async () => {
    const parks = await api("GET", "/api/v1/ops/car-parks");
    form.elements.car_park.replaceChildren(h("option", {value: ""}, t("ops_floor.sessions.any_car_park")),
      ...parks.car_parks.map((p) => h("option", {value: p.code}, `${p.code} · ${p.name}`)));
    const plate = new URLSearchParams(location.search).get("plate");
    if (plate) form.elements.plate.value = plate;
    query = Mall.values(form);
    await search(query, false);
  })().then(() => Mall.ready()).catch((err) => {
    Mall.failed(table, err);
    Mall.ready();
  });
})();
