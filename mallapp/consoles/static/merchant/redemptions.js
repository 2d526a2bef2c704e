/* Coupons redeemed at this merchant's tills on one of the mall's days, newest first, with the day's totals;
 * a page at a time (GET /api/v1/merchant/redemptions?day=&cursor=). */
"use strict";

(async function () {
  const form = document.getElementById("day-form");
  const table = document.getElementById("redemptions");
  const more = document.getElementById("more");
  let rows = [];
  let cursor = null;
  let day = Mall.today();

  const columns = [
    {title: "merchant.redemptions.col_time", value: (r) => Mall.when("time", r.redeemed_at)},
    {title: "merchant.redemptions.col_deal", value: (r) => Mall.h("a", {href: "/console/merchant/deals/" + r.deal_id}, r.deal_title)},
    {title: "merchant.redemptions.col_benefit", value: (r) => Merchant.benefitText(r.benefit)},
    {title: "merchant.redemptions.col_store", value: (r) => r.store_name},
    {title: "merchant.redemptions.col_staff", value: (r) => r.staff_username || Mall.t("merchant.redemptions.by_key")},
    {title: "merchant.redemptions.col_spend", num: true, value: (r) => Mall.yuan(r.spend_fen)},
    {title: "merchant.redemptions.col_discount", num: true, value: (r) => Mall.yuan(r.discount_fen)},
  ];

  async function load(next) {
    const query = new URLSearchParams({day});
    if (next) query.set("cursor", String(next));
    const answer = await Mall.api("GET", "/api/v1/merchant/redemptions?" + query);
    rows = next ? rows.concat(answer.redemptions) : answer.redemptions;
    cursor = answer.next_cursor;
    document.getElementById("total-count").textContent = Mall.number(answer.totals.count);
    document.getElementById("total-discount").textContent = Mall.yuan(answer.totals.discount_fen);
    document.getElementById("total-points").textContent = Mall.number(answer.totals.bonus_points);
    Mall.table(table, columns, rows);
    more.hidden = cursor === null;
  }

  document.getElementById("day").value = day;
  Mall.form(form, async (values) => {
    day = values.day || Mall.today();
    await load(null);
  });
  more.addEventListener("click", () => Mall.act(more, () => load(cursor)));
  try {
    await load(null);
  } catch (err) {
    Mall.failed(table.parentElement, err);
  }
  Mall.ready();
})();
