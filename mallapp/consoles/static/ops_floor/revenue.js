/* A car park's days: revenue net of refunds (bars, yuan) and occupancy (lines, % of its spaces), the same
 * figures in a table, and the reconciliations of its payments with the car park's own. */
"use strict";

(function () {
  const {h, t, api} = Mall;
  const form = document.getElementById("period");
  const chartEl = document.getElementById("revenue-chart");

  const pct = (value) => (value === null || value === undefined ? "—" : `${value.toFixed(1)}%`);

  function draw(report) {
    const days = report.days;
    Mall.chart(chartEl, {
      tooltip: {trigger: "axis"},
      legend: {top: 0, data: [t("ops_floor.revenue.revenue"), t("ops_floor.revenue.average_pct"), t("ops_floor.revenue.peak_pct")]},
      grid: {left: 56, right: 56, bottom: 32, top: 56},
      xAxis: {type: "category", data: days.map((d) => d.day)},
      yAxis: [{type: "value", name: t("ops_floor.revenue.yuan")},
              {type: "value", name: "%", min: 0, max: 100, splitLine: {show: false}}],
      series: [
        {name: t("ops_floor.revenue.revenue"), type: "bar", data: days.map((d) => d.revenue_fen / 100)},
        {name: t("ops_floor.revenue.average_pct"), type: "line", yAxisIndex: 1,
         data: days.map((d) => (d.occupancy ? d.occupancy.average_pct : null))},
        {name: t("ops_floor.revenue.peak_pct"), type: "line", yAxisIndex: 1, lineStyle: {type: "dashed"},
         data: days.map((d) => (d.occupancy ? d.occupancy.peak_pct : null))},
      ],
    });
    Mall.table(document.getElementById("days"), [
      {title: "ops_floor.revenue.day", value: (d) => d.day},
      {title: "ops_floor.revenue.entries", num: true, value: (d) => Mall.number(d.entries)},
      {title: "ops_floor.revenue.exits", num: true, value: (d) => Mall.number(d.exits)},
      {title: "ops_floor.revenue.payments", num: true, value: (d) => Mall.number(d.payments)},
      {title: "ops_floor.revenue.cash", num: true, value: (d) => Mall.yuan(d.cash_fen)},
      {title: "ops_floor.revenue.refunded", num: true, value: (d) => Mall.yuan(d.refunded_fen)},
      {title: "ops_floor.revenue.revenue", num: true, value: (d) => Mall.yuan(d.revenue_fen)},
      {title: "ops_floor.revenue.average_pct", num: true, value: (d) => pct(d.occupancy && d.occupancy.average_pct)},
      {title: "ops_floor.revenue.peak_pct", num: true, value: (d) => pct(d.occupancy && d.occupancy.peak_pct)},
      {title: "ops_floor.revenue.staff_exits", num: true, value: (d) => `${Mall.number(d.staff_exits)} · ${Mall.yuan(d.staff_unpaid_fen)}`},
    ], days, {rowData: (d) => ({day: d.day})});
  }

  function drawReconciliations(list) {
    Mall.table(document.getElementById("reconciliations"), [
      {title: "ops_floor.revenue.day", value: (r) => r.day},
      {title: "ops_floor.reconciliations.ours", num: true, value: (r) => Mall.number(r.ours)},
      {title: "ops_floor.reconciliations.theirs", num: true, value: (r) => Mall.number(r.theirs)},
      {title: "ops_floor.reconciliations.mismatches", value: (r) => (r.mismatches.length
        ? h("span", {class: "badge bad"}, t("ops_floor.reconciliations.count", {n: r.mismatches.length}))
        : h("span", {class: "badge ok"}, t("ops_floor.reconciliations.match")))},
      {title: "ops_floor.reconciliations.details", value: (r) => r.mismatches.map((m) =>
        h("div", {class: "small"}, `${m.order_id}: ${t("ops_floor.mismatch." + m.problem)}`))},
      {title: "ops_floor.reconciliations.ran_at", value: (r) => Mall.when("datetime", r.ran_at)},
    ], list, {empty: "ops_floor.reconciliations.none"});
  }

  async function load(values) {
    const params = new URLSearchParams({car_park: values.car_park});
    if (values.from) params.set("from", values.from);
    if (values.to) params.set("to", values.to);
    const [report, reconciliations] = await Promise.all([
      api("GET", "/api/v1/ops/parking/days?" + params.toString()),
      api("GET", "/api/v1/ops/parking/reconciliations?" + params.toString()),
    ]);
    draw(report);
    drawReconciliations(reconciliations.reconciliations);
    if (report.days.length) {
      form.elements.from.value = report.days[0].day;
      form.elements.to.value = report.days[report.days.length - 1].day;
    }
  }

  Mall.form(form, (values) => load(values), {codes: {"parking.invalid_range": "from", "parking.car_park_not_found": "car_park"}});

  (async () => {
    const parks = await api("GET", "/api/v1/ops/car-parks");
    if (!parks.car_parks.length) {
      chartEl.replaceChildren(h("p", {class: "muted"}, t("ops_floor.parking.none")));
      return;
    }
    form.elements.car_park.replaceChildren(...parks.car_parks.map((p) => h("option", {value: p.code}, `${p.code} · ${p.name}`)));
    await load(Mall.values(form));
  })().then(() => Mall.ready()).catch((err) => {
    Mall.failed(chartEl, err);
    Mall.ready();
  });
})();
