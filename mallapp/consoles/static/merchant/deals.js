/* The merchant's deals: status (a rejection with its reason), validity, and each deal's funnel
 * (pushes -> claims -> redemptions) as numbers and one grouped bar chart. */
"use strict";

(async function () {
  const table = document.getElementById("deals");
  const filter = document.getElementById("status-filter");
  let stores = {};

  function draw(deals) {
    Mall.table(table, [
      {title: "merchant.deals.col_title", value: (d) => Mall.h("a", {href: "/console/merchant/deals/" + d.id}, d.title)},
      {title: "merchant.deals.col_store", value: (d) => stores[d.store_id] || String(d.store_id)},
      {title: "merchant.deals.col_status", value: (d) => Mall.h("span", {},
        Merchant.statusBadge(d.status),
        d.status === "rejected" && d.rejection_reason
          ? Mall.h("div", {class: "muted"}, Mall.t("merchant.deals.rejected_because", {reason: d.rejection_reason}))
          : null)},
      {title: "merchant.deals.col_validity", value: (d) => Mall.t("merchant.deals.validity",
        {start: Mall.when("date", d.starts_at), end: Mall.when("date", Date.parse(d.ends_at) - 1)})},
      {title: "merchant.deals.col_pushes", num: true, value: (d) => Mall.number(d.figures.pushes)},
      {title: "merchant.deals.col_claims", num: true, value: (d) => Mall.number(d.figures.claimed)},
      {title: "merchant.deals.col_redemptions", num: true, value: (d) => Mall.number(d.figures.redeemed)},
      {title: "merchant.deals.col_conversion", num: true,
       value: (d) => d.figures.claimed ? Mall.percent(d.figures.redeemed / d.figures.claimed) : "—"},
    ], deals, {rowData: (d) => ({dealId: String(d.id)})});
    const shown = deals.slice(0, 12);
    Mall.chart(document.getElementById("funnels"), {
      tooltip: {trigger: "axis"},
      legend: {top: 0},
      grid: {left: 40, right: 16, top: 36, bottom: 60, containLabel: true},
      xAxis: {type: "category", data: shown.map((d) => d.title), axisLabel: {interval: 0, rotate: shown.length > 4 ? 30 : 0}},
      yAxis: {type: "value", minInterval: 1},
      series: [
        {name: Mall.t("merchant.deal.pushes"), type: "bar", data: shown.map((d) => d.figures.pushes)},
        {name: Mall.t("merchant.deal.claims"), type: "bar", data: shown.map((d) => d.figures.claimed)},
        {name: Mall.t("merchant.deal.redemptions"), type: "bar", data: shown.map((d) => d.figures.redeemed)},
      ],
    });
  }

  async function load() {
    const status = filter.value;
    const answer = await Mall.api("GET", "/api/v1/merchant/deals" + (status ? "?status=" + status : ""));
    draw(answer.deals);
  }

  try {
    const own = await Mall.api("GET", "/api/v1/merchant/stores");
    stores = Object.fromEntries(own.stores.map((s) => [s.id, s.name]));
    await load();
  } catch (err) {
    Mall.failed(table.parentElement, err);
  }
  filter.addEventListener("change", () => load().catch((err) => Mall.toast(Mall.errorText(err), "error")));
  Mall.ready();
})();
