/* Write or edit a deal: content, benefit (amounts typed in yuan, sent in fen), validity in the mall's days, quota,
 * and pickers for the stores, zones and sale items this merchant may target (GET /api/v1/merchant/stores lists
 * exactly those). An existing deal shows its status, its funnel and the moves its status allows. */
"use strict";

(async function () {
  const dealId = Mall.config.page.deal_id;
  const form = document.getElementById("deal-form");
  const kind = document.getElementById("kind-select");
  const valueLabel = document.getElementById("value-label");
  const panel = document.getElementById("deal-panel");
  const base = "/api/v1/merchant/deals";
  const VALUE_LABEL = {amount_off: "field_amount", percent_off: "field_percent", gift: "field_gift",
                       bonus_points: "field_points", parking_hours: "field_hours", parking_amount: "field_amount"};
  const PARKING = ["parking_hours", "parking_amount"];
  // Which moves each status allows (the API refuses the others with deal.invalid_state).
  const MOVES = {draft: ["submit", "end"], rejected: ["submit", "end"], pending_approval: ["end"],
                 live: ["announce", "pause", "end"], paused: ["resume", "end"], ended: []};
  let stores = [];

  function showKind() {
    valueLabel.textContent = Mall.t("merchant.deal." + VALUE_LABEL[kind.value]);
    document.getElementById("min-spend-field").hidden = PARKING.includes(kind.value);
  }

  function checkbox(pick, id, text) {
    return Mall.h("label", {}, Mall.h("input", {type: "checkbox", value: String(id), "data-pick": pick}), text);
  }

  function drawPickers() {
    const several = stores.length > 1;
    const named = (store, name) => (several ? store.name + " · " + name : name);
    const fill = (id, boxes) => {
      const set = document.getElementById(id);
      set.replaceChildren(set.querySelector("legend"), ...(boxes.length ? boxes
        : [Mall.h("span", {class: "muted"}, Mall.t("merchant.deal.no_targets"))]));
    };
    fill("pick-stores", stores.map((s) => checkbox("store_ids", s.id, s.name)));
    fill("pick-zones", stores.flatMap((s) => s.zones.map((z) => checkbox("zone_ids", z.id, named(s, z.name)))));
    fill("pick-items", stores.flatMap((s) => s.sale_items.map((i) => checkbox("sale_item_ids", i.id, named(s, i.name)))));
  }

  function picked(pick) {
    return Array.from(form.querySelectorAll(`input[data-pick="${pick}"]:checked`), (el) => Number(el.value));
  }

  function whole(text) { return /^\s*\d+\s*$/.test(text || "") ? Number(text) : text; }

  function benefit(values) {
    const k = values.kind;
    const raw = values.benefit_value || "";
    if (k === "gift") return {kind: k, gift: raw};
    if (k === "amount_off" || k === "parking_amount") {
      const fen = Mall.fen(raw);
      if (fen === null) throw Merchant.fieldError("benefit", Mall.t("merchant.deal.amount_invalid"));
      return {kind: k, amount_fen: fen};
    }
    const field = {percent_off: "percent", bonus_points: "points", parking_hours: "hours"}[k];
    if (!/^\s*\d+\s*$/.test(raw)) throw Merchant.fieldError("benefit", Mall.t("merchant.deal.number_invalid"));
    return {kind: k, [field]: Number(raw)};
  }

  function body(values) {
    let minSpend = null;
    if (values.min_spend && !PARKING.includes(values.kind)) {
      minSpend = Mall.fen(values.min_spend);
      if (minSpend === null) throw Merchant.fieldError("min_spend_fen", Mall.t("merchant.deal.amount_invalid"));
    }
    const out = {
      title: values.title || "", text: values.text || "", store_id: Number(values.store_id),
      benefit: benefit(values), min_spend_fen: minSpend,
      quota: whole(values.quota), per_member_limit: whole(values.per_member_limit),
      targeting: {store_ids: picked("store_ids"), zone_ids: picked("zone_ids"), sale_item_ids: picked("sale_item_ids"),
                  member_rule: values.member_rule, followers_only: values.followers_only},
    };
    // The mall's days: valid from the start of the first to the end of the last (the API checks the order).
    if (values.first_day) out.starts_at = Merchant.dayStart(values.first_day);
    if (values.last_day) out.ends_at = Merchant.dayStart(Merchant.addDays(values.last_day, 1));
    return out;
  }

  function fill(deal) {
    const set = (name, value) => { form.elements[name].value = value === null || value === undefined ? "" : value; };
    set("title", deal.title);
    set("text", deal.text);
    set("store_id", deal.store_id);
    set("kind", deal.benefit.kind);
    const b = deal.benefit;
    set("benefit_value", b.amount_fen !== undefined ? (b.amount_fen / 100).toFixed(2)
      : b.percent ?? b.points ?? b.hours ?? b.gift);
    set("min_spend", deal.min_spend_fen ? (deal.min_spend_fen / 100).toFixed(2) : "");
    set("first_day", Merchant.dayOf(deal.starts_at));
    set("last_day", Merchant.lastDay(deal.ends_at));
    set("quota", deal.quota);
    set("per_member_limit", deal.per_member_limit);
    set("member_rule", deal.targeting.member_rule);
    form.elements.followers_only.checked = deal.targeting.followers_only;
    for (const pick of ["store_ids", "zone_ids", "sale_item_ids"]) {
      const chosen = new Set(deal.targeting[pick]);
      form.querySelectorAll(`input[data-pick="${pick}"]`).forEach((el) => { el.checked = chosen.has(Number(el.value)); });
    }
    showKind();
  }

  function showDeal(deal) {
    panel.hidden = false;
    const status = document.getElementById("deal-status");
    status.replaceChildren(Merchant.statusBadge(deal.status));
    if (deal.status === "rejected" && deal.rejection_reason) {
      status.append(Mall.h("div", {class: "muted", "data-testid": "rejection"},
                           Mall.t("merchant.deals.rejected_because", {reason: deal.rejection_reason})));
    }
    const allowed = MOVES[deal.status] || [];
    panel.querySelectorAll("button[data-verb]").forEach((b) => {
      b.hidden = !allowed.includes(b.dataset.verb) || (b.dataset.verb === "announce" && deal.announced);
    });
    document.getElementById("review-note").hidden = !["live", "paused"].includes(deal.status);
    document.getElementById("save").textContent = Mall.t("merchant.deal.save");
    form.querySelectorAll("input, select, textarea, button").forEach((el) => { el.disabled = deal.status === "ended"; });
    const f = deal.figures;
    document.getElementById("pushes").textContent = Mall.number(f.pushes);
    document.getElementById("claims").textContent = Mall.number(f.claimed);
    document.getElementById("redemptions").textContent = Mall.number(f.redeemed);
    document.getElementById("rates").textContent = [
      f.pushes ? Mall.t("merchant.deal.claim_rate", {rate: Mall.percent(f.claimed / f.pushes)}) : null,
      f.claimed ? Mall.t("merchant.deal.redeem_rate", {rate: Mall.percent(f.redeemed / f.claimed)}) : null,
    ].filter(Boolean).join(" · ");
    Mall.chart(document.getElementById("funnel-chart"), {
      tooltip: {trigger: "item"},
      series: [{type: "funnel", sort: "none", left: "10%", width: "80%", minSize: "20%", gap: 2,
                label: {show: true, position: "inside", formatter: "{b}: {c}"},
                data: [{name: Mall.t("merchant.deal.pushes"), value: f.pushes},
                       {name: Mall.t("merchant.deal.claims"), value: f.claimed},
                       {name: Mall.t("merchant.deal.redemptions"), value: f.redeemed}]}],
    });
  }

  const DONE = {submit: "submitted", pause: "paused", resume: "resumed", end: "ended"};
  panel.querySelectorAll("button[data-verb]").forEach((button) => {
    button.addEventListener("click", () => Mall.act(button, async () => {
      const verb = button.dataset.verb;
      if (verb === "end" && !window.confirm(Mall.t("merchant.deal.end_confirm"))) return;
      const answer = await Mall.api("POST", `${base}/${dealId}/${verb}`);
      if (verb === "announce") {
        Mall.toast(Mall.t("merchant.deal.announced", {count: Mall.number(answer.inbox)}));
        showDeal({...(await Mall.api("GET", `${base}/${dealId}`)), announced: true});
      } else {
        Mall.toast(Mall.t("merchant.deal." + (verb === "submit" && answer.status === "live" ? "went_live" : DONE[verb])));
        showDeal(answer);
      }
    }));
  });

  kind.addEventListener("change", showKind);
  Mall.form(form, async (values) => {
    const sent = body(values);
    if (dealId === null) {
      const created = await Mall.api("POST", base, sent);
      location.href = "/console/merchant/deals/" + created.id + "?created=1";
      return;
    }
    const changed = await Mall.api("PATCH", `${base}/${dealId}`, sent);
    Mall.toast(Mall.t("merchant.deal.saved"));
    showDeal(changed);
  }, {codes: {"deal.invalid_window": "ends_at", "deal.store_not_yours": "store_id", "deal.target_not_yours": "targeting",
              "venue.unknown_zone": "targeting", "venue.unknown_store": "targeting",
              "venue.unknown_sale_item": "targeting", "deal.invalid_benefit": "benefit", "deal.terms_locked": "benefit",
              "deal.quota_below_claimed": "quota"}});

  try {
    stores = (await Mall.api("GET", "/api/v1/merchant/stores")).stores;
    const select = document.getElementById("store-select");
    select.replaceChildren(...stores.map((s) => Mall.h("option", {value: String(s.id)},
      s.name + (s.unit ? " (" + s.unit + ")" : ""))));
    drawPickers();
    if (!stores.length) {
      form.querySelector('[data-error-for="_form"]').textContent = Mall.t("merchant.deal.no_stores");
      document.getElementById("save").disabled = true;
    }
    showKind();
    if (dealId === null) {
      form.elements.first_day.value = Mall.today();
      form.elements.last_day.value = Merchant.addDays(Mall.today(), 13);
    } else {
      const deal = await Mall.api("GET", `${base}/${dealId}`);
      fill(deal);
      showDeal(deal);
      if (new URLSearchParams(location.search).has("created")) Mall.toast(Mall.t("merchant.deal.created"));
    }
  } catch (err) {
    Mall.failed(form, err);
  }
  Mall.ready();
})();
