/* Footfall and dwell in this merchant's store zones: one day by hour, a longer range by day
 * (GET /api/v1/merchant/footfall), as visits and members (bars) and mean dwell in minutes (a line). */
"use strict";

(async function () {
  const form = document.getElementById("range-form");
  const chart = document.getElementById("chart");

  const minutes = (seconds) => Math.round(seconds / 6) / 10;

  async function load(values) {
    const query = new URLSearchParams();
    for (const name of ["from", "to", "store_id"]) if (values[name]) query.set(name, values[name]);
    const report = await Mall.api("GET", "/api/v1/merchant/footfall?" + query);
    document.getElementById("visits").textContent = Mall.number(report.visits);
    document.getElementById("members").textContent = Mall.number(report.members);
    document.getElementById("dwell").textContent = Mall.t("merchant.footfall.minutes", {minutes: minutes(report.mean_dwell_seconds)});
    document.getElementById("granularity").textContent = Mall.t("merchant.footfall.by_" + report.granularity);
    document.getElementById("zones").textContent = report.zones.length
      ? Mall.t("merchant.footfall.zones", {names: report.zones.map((z) => z.name).join("、")})
      : Mall.t("merchant.footfall.no_zones");
    const label = (slot) => report.granularity === "hour" ? Mall.when("time", slot.start) : Mall.when("date", slot.start);
    Mall.chart(chart, {
      tooltip: {trigger: "axis"},
      legend: {top: 0},
      grid: {left: 40, right: 50, top: 36, bottom: 30, containLabel: true},
      xAxis: {type: "category", data: report.slots.map(label)},
      yAxis: [{type: "value", minInterval: 1}, {type: "value", name: Mall.t("merchant.footfall.dwell_minutes")}],
      series: [
        {name: Mall.t("merchant.footfall.visits"), type: "bar", data: report.slots.map((s) => s.visits)},
        {name: Mall.t("merchant.footfall.members"), type: "bar", data: report.slots.map((s) => s.members)},
        {name: Mall.t("merchant.footfall.dwell_minutes"), type: "line", yAxisIndex: 1, smooth: true,
         data: report.slots.map((s) => minutes(s.mean_dwell_seconds))},
      ],
    });
  }

  Mall.form(form, (values) => load(values), {codes: {"footfall.invalid_range": "from", "store.not_found": "store_id"}});
  try {
    const stores = (await Mall.api("GET", "/api/v1/merchant/stores")).stores;
    document.getElementById("store").append(...stores.map((s) => Mall.h("option", {value: String(s.id)}, s.name)));
    document.getElementById("from").value = Merchant.addDays(Mall.today(), -6);
    document.getElementById("to").value = Mall.today();
    await load(Mall.values(form));
  } catch (err) {
    Mall.failed(chart, err);
  }
  Mall.ready();
})();
