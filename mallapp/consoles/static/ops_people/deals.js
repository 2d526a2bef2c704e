/* The deal review queue: the deals of every merchant by status (GET /api/v1/ops/deals), pending ones first, with
 * their content; approve (POST .../approve) or reject with a reason (POST .../reject: the reason is required, and
 * its error appears next to it). */
"use strict";

(function () {
  const {h, t} = Mall;
  const list = document.getElementById("deals");
  const status = document.getElementById("status");
  let merchants = {};
  let stores = {};

  function benefitText(b) {
    switch (b.kind) {
      case "amount_off": return t("ops_people.benefit.amount_off", {amount: Mall.yuan(b.amount_fen)});
      case "percent_off": return t("ops_people.benefit.percent_off", {percent: b.percent});
      case "gift": return t("ops_people.benefit.gift", {gift: b.gift});
      case "bonus_points": return t("ops_people.benefit.bonus_points", {points: Mall.number(b.points)});
      case "parking_hours": return t("ops_people.benefit.parking_hours", {hours: b.hours});
      case "parking_amount": return t("ops_people.benefit.parking_amount", {amount: Mall.yuan(b.amount_fen)});
      default: return b.kind;
    }
  }

  function storeNames(ids) { return ids.map((id) => (stores[id] ? stores[id].name : "#" + id)).join("、"); }

  function targetsText(d) {
    const tg = d.targeting;
    const parts = [People.label("ops_people.member_rule", tg.member_rule)];
    if (tg.store_ids.length) parts.push(t("ops_people.deal.near_stores", {stores: storeNames(tg.store_ids)}));
    if (tg.zone_ids.length) parts.push(t("ops_people.deal.near_zones", {zones: tg.zone_ids.join("、")}));
    if (tg.sale_item_ids.length) parts.push(t("ops_people.deal.near_items", {items: tg.sale_item_ids.join("、")}));
    if (tg.followers_only) parts.push(t("ops_people.deal.followers_only"));
    return parts.join("；");
  }

  function card(d) {
    const merchant = merchants[d.merchant_id];
    const facts = [
      ["ops_people.deal.merchant", merchant ? merchant.name : "#" + d.merchant_id],
      ["ops_people.deal.store", storeNames([d.store_id])],
      ["ops_people.deal.benefit", benefitText(d.benefit) +
        (d.min_spend_fen ? " · " + t("ops_people.deal.min_spend", {amount: Mall.yuan(d.min_spend_fen)}) : "")],
      ["ops_people.deal.validity", `${Mall.when("datetime", d.starts_at)} – ${Mall.when("datetime", d.ends_at)}`],
      ["ops_people.deal.quota", t("ops_people.deal.quota_text", {quota: Mall.number(d.quota), per: d.per_member_limit})],
      ["ops_people.deal.targets", targetsText(d)],
      ["ops_people.deal.text", d.text || "—"],
      ["ops_people.deal.status", People.label("ops_people.deal_status", d.status) +
        (d.rejection_reason ? " · " + d.rejection_reason : "")],
    ];
    const el = h("article", {class: "card deal-card", dataset: {dealId: String(d.id)}, "aria-label": d.title},
      h("h3", {}, d.title),
      h("dl", {class: "facts"}, facts.flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])));
    if (d.status === "pending_approval") {
      const reject = h("form", {class: "form", novalidate: true},
        h("label", {}, t("ops_people.deal.reason"), h("input", {name: "reason", maxlength: "200"})),
        h("div", {class: "field-error", "data-error-for": "reason"}),
        h("div", {class: "form-error", "data-error-for": "_form"}),
        h("div", {class: "row-actions"},
          h("button", {type: "button", class: "primary", onclick: (e) => Mall.act(e.currentTarget, async () => {
            await Mall.api("POST", `/api/v1/ops/deals/${d.id}/approve`);
            Mall.toast(t("ops_people.deal.approved", {title: d.title}));
            await load();
          })}, t("ops_people.deal.approve")),
          h("button", {type: "submit", class: "danger"}, t("ops_people.deal.reject"))));
      Mall.form(reject, async (values) => {
        await Mall.api("POST", `/api/v1/ops/deals/${d.id}/reject`, {reason: values.reason || ""});
        Mall.toast(t("ops_people.deal.rejected", {title: d.title}));
        await load();
      });
      el.append(reject);
    }
    return el;
  }

  async function load() {
    const query = status.value ? "?status=" + encodeURIComponent(status.value) : "";
    const found = await Mall.api("GET", "/api/v1/ops/deals" + query);
    list.replaceChildren(...(found.deals.length ? found.deals.map(card)
                                                : [h("p", {class: "card muted"}, t("ops_people.deals.none"))]));
  }

  async function start() {
    const [m, s] = await Promise.all([Mall.api("GET", "/api/v1/ops/merchants"),
                                      Mall.api("GET", "/api/v1/ops/stores?include_inactive=true")]);
    merchants = Object.fromEntries(m.merchants.map((x) => [x.id, x]));
    stores = Object.fromEntries(s.stores.map((x) => [x.id, x]));
    await load();
  }
  status.addEventListener("change", () => load().catch((err) => Mall.failed(list, err)));
  start().catch((err) => Mall.failed(list, err)).finally(() => Mall.ready());
})();
