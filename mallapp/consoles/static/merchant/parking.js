/* The parking-coupon quota: balance (hours and fen), buying more (one Idempotency-Key per purchase typed, so a
 * double click buys once), usage per day and the latest changes. */
"use strict";

(async function () {
  const form = document.getElementById("buy-form");
  const unit = document.getElementById("unit");
  let purchaseKey = Mall.newKey();

  function showBalance(balance) {
    document.getElementById("balance-hours").textContent = Mall.t("merchant.parking.hours", {hours: Mall.number(balance.hours)});
    document.getElementById("balance-fen").textContent = Mall.yuan(balance.fen);
  }

  const change = (e) => {
    const sign = e.delta > 0 ? "+" : "";
    return e.unit === "hours" ? sign + Mall.t("merchant.parking.hours", {hours: e.delta}) : sign + Mall.yuan(e.delta);
  };

  async function load() {
    const [quota, usage] = await Promise.all([Mall.api("GET", "/api/v1/merchant/parking/quota"),
                                              Mall.api("GET", "/api/v1/merchant/parking/usage")]);
    showBalance(quota.balance);
    Mall.table(document.getElementById("entries"), [
      {title: "merchant.parking.col_when", value: (e) => Mall.when("datetime", e.created_at)},
      {title: "merchant.parking.col_change", num: true, value: change},
      {title: "merchant.parking.col_reason", value: (e) => Mall.t("merchant.parking.reason_" + e.reason)},
    ], quota.entries);
    const days = usage.days.slice().reverse();
    Mall.table(document.getElementById("usage"), [
      {title: "merchant.parking.col_day", value: (d) => Mall.when("date", d.day + "T12:00:00Z")},
      {title: "merchant.parking.col_claimed", num: true, value: (d) => Mall.number(d.claimed)},
      {title: "merchant.parking.col_used", num: true, value: (d) => Mall.number(d.used)},
      {title: "merchant.parking.col_used_hours", num: true, value: (d) => (d.used_seconds / 3600).toFixed(1)},
      {title: "merchant.parking.col_used_fen", num: true, value: (d) => Mall.yuan(d.used_fen)},
      {title: "merchant.parking.col_expired", num: true, value: (d) => Mall.number(d.expired)},
    ], days.filter((d) => d.claimed || d.used || d.expired));
    Mall.chart(document.getElementById("usage-chart"), {
      tooltip: {trigger: "axis"}, legend: {top: 0},
      grid: {left: 30, right: 16, top: 32, bottom: 24, containLabel: true},
      xAxis: {type: "category", data: usage.days.map((d) => d.day.slice(5))},
      yAxis: {type: "value", minInterval: 1},
      series: [{name: Mall.t("merchant.parking.col_claimed"), type: "bar", data: usage.days.map((d) => d.claimed)},
               {name: Mall.t("merchant.parking.col_used"), type: "bar", data: usage.days.map((d) => d.used)},
               {name: Mall.t("merchant.parking.col_expired"), type: "line", data: usage.days.map((d) => d.expired)}],
    });
  }

  unit.addEventListener("change", () => {
    document.getElementById("amount-label").textContent =
      Mall.t(unit.value === "hours" ? "merchant.parking.amount_hours" : "merchant.parking.amount_yuan");
  });
  form.addEventListener("input", () => { purchaseKey = Mall.newKey(); });
  Mall.form(form, async (values) => {
    const raw = values.amount || "";
    let amount;
    if (values.unit === "fen") {
      amount = Mall.fen(raw);
      if (amount === null || amount === 0) throw Merchant.fieldError("amount", Mall.t("merchant.deal.amount_invalid"));
    } else {
      if (!/^\s*\d+\s*$/.test(raw)) throw Merchant.fieldError("amount", Mall.t("merchant.deal.number_invalid"));
      amount = Number(raw);
    }
    const bought = await Mall.api("POST", "/api/v1/merchant/parking/quota/purchases", {unit: values.unit, amount},
                                  {idempotencyKey: purchaseKey});
    showBalance(bought.balance);
    Mall.toast(Mall.t("merchant.parking.bought"));
    form.reset();
    purchaseKey = Mall.newKey();
    await load();
  });

  try {
    await load();
  } catch (err) {
    Mall.failed(form, err);
  }
  Mall.ready();
})();
