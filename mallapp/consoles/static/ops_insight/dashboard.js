/* The ops dashboard: GET /api/v1/ops/dashboard?day= — the day's figures and footfall by hour against the same
 * weekday last week. */
"use strict";

(function () {
  const form = document.getElementById("day-form");
  const dayInput = document.getElementById("day");
  const figures = document.getElementById("figures");
  const show = (id, text) => { document.querySelector(`[data-testid="${id}"]`).textContent = text; };

  async function load(day) {
    const body = await Mall.api("GET", "/api/v1/ops/dashboard" + (day ? "?day=" + encodeURIComponent(day) : ""));
    dayInput.value = body.day;
    show("in-mall-now", Mall.number(body.in_mall_now));
    show("footfall-total", Mall.number(body.footfall.total));
    show("footfall-compared", Insight.t("dashboard.footfall_compared", {count: Mall.number(body.footfall_compared.total)}));
    show("new-members", Mall.number(body.new_members));
    show("checkins", Mall.number(body.checkins));
    show("sales", Mall.yuan(body.sales_fen));
    show("purchases", Insight.t("dashboard.purchases", {count: Mall.number(body.purchases)}));
    show("points-issued", Mall.number(body.points_issued));
    show("points-redeemed", Mall.number(body.points_redeemed));
    const compared = Insight.t("dashboard.series_compared", {day: Mall.when("date", body.compared_day + "T12:00:00Z")});
    const today = Insight.t("dashboard.series_day");
    Mall.chart(document.getElementById("footfall-chart"), {
      tooltip: {trigger: "axis"},
      legend: {data: [today, compared], top: 0},
      grid: {left: 48, right: 16, top: 40, bottom: 32},
      xAxis: {type: "category", data: Insight.HOURS.map(Insight.hourLabel)},
      yAxis: {type: "value", minInterval: 1},
      series: [
        {name: today, type: "bar", data: body.footfall.hours, itemStyle: {color: "#c7000b"}},
        {name: compared, type: "line", data: body.footfall_compared.hours, itemStyle: {color: "#3370ff"}},
      ],
    });
    Mall.table(document.getElementById("footfall-table"), [
      {title: "console_ops_insight.dashboard.hour_column", value: (h) => Insight.hourLabel(h)},
      {title: "console_ops_insight.dashboard.series_day", value: (h) => Mall.number(body.footfall.hours[h]), num: true},
      {title: "console_ops_insight.dashboard.footfall_total", value: (h) => Mall.number(body.footfall_compared.hours[h]), num: true},
    ], Insight.HOURS);
    document.querySelector("#footfall-table thead th:last-child").textContent = compared;
  }

  Mall.form(form, async (values) => {
    await load(values.day);
    history.replaceState(null, "", "?day=" + encodeURIComponent(values.day));
  });

  // A day typed into the address (?day=2026-02-30) is refused by the API: its error goes next to the picker,
  // and the page still opens on today.
  const asked = Insight.param("day");
  load(asked || Mall.today()).catch(async (err) => {
    if (!asked || !(err instanceof Mall.ApiError) || err.status !== 400) throw err;
    await load(Mall.today());
    dayInput.value = asked;
    Mall.showError(form, err);
  }).then(Mall.ready, (err) => { Mall.failed(figures, err); Mall.ready(); });
})();
