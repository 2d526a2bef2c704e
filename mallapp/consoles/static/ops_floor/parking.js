/* The car parks: levels with their spaces, bays and free spaces now; the tariff shown readably and (admins)
 * edited as JSON; the member benefit rules likewise. The API validates both documents and names what is wrong:
 * its answer appears beside the textarea. */
"use strict";

(function () {
  const {h, t, api} = Mall;
  const picker = document.getElementById("car-park-picker");
  const tariffForm = document.getElementById("tariff-form");
  const rulesForm = document.getElementById("rules-form");
  let current = null;

  const minutes = (n) => t("ops_floor.parking.minutes", {n});

  function readableTariff(tariff) {
    const out = [h("p", {}, t("ops_floor.parking.grace", {n: tariff.grace_minutes}))];
    for (const [vehicle, plan] of Object.entries(tariff.plans || {})) {
      const lines = [
        t("ops_floor.parking.free_minutes", {n: plan.free_minutes}),
        plan.first_period_minutes ? t("ops_floor.parking.first_period", {minutes: plan.first_period_minutes,
                                                                         amount: Mall.yuan(plan.first_period_fen)}) : null,
        t("ops_floor.parking.step", {minutes: plan.step_minutes}),
        plan.overnight ? t("ops_floor.parking.overnight", {start: plan.overnight.start, end: plan.overnight.end,
                                                           amount: Mall.yuan(plan.overnight.cap_fen)}) : null,
        plan.daily_cap_fen ? t("ops_floor.parking.daily_cap", {amount: Mall.yuan(plan.daily_cap_fen)}) : null,
      ].filter(Boolean);
      const bands = Mall.table(h("table"), [
        {title: "ops_floor.parking.band", value: (b) => b.name},
        {title: "ops_floor.parking.hours", value: (b) => (b.start === b.end ? t("ops_floor.parking.all_day") : `${b.start}–${b.end}`)},
        {title: "ops_floor.parking.per_step", num: true, value: (b) => Mall.yuan(b.step_fen)},
      ], plan.bands || []);
      out.push(h("div", {class: "tariff-plan"}, h("h3", {}, t("ops_floor.vehicle." + vehicle)),
                 h("ul", {}, lines.map((line) => h("li", {}, line))), bands));
    }
    return out;
  }

  function readableRules(rules) {
    const sep = t("ops_floor.rules.separator");
    const tierName = (tier) => (Mall.has("ops_floor.tier." + tier) ? t("ops_floor.tier." + tier) : tier);
    const caps = (rule) => [rule.max_hours_per_visit ? t("ops_floor.rules.per_visit", {n: rule.max_hours_per_visit}) : null,
                            rule.max_hours_per_day ? t("ops_floor.rules.per_day", {n: rule.max_hours_per_day}) : null]
      .filter(Boolean).join(sep) || t("ops_floor.rules.no_cap");
    const items = [t("ops_floor.rules.order", {order: (rules.order || []).map((k) => t("ops_floor.benefit." + k)).join(" → ")})];
    if (rules.tier) {
      const tiers = Object.entries(rules.tier.hours || {}).map(([tier, hours]) => (hours === "all"
        ? t("ops_floor.rules.tier_all", {tier: tierName(tier)}) : t("ops_floor.rules.tier_hours", {tier: tierName(tier), n: hours})));
      items.push(t(rules.tier.first_exit_only ? "ops_floor.rules.tier_first_exit" : "ops_floor.rules.tier", {tiers: tiers.join(sep)}));
    }
    if (rules.spend) items.push(t("ops_floor.rules.spend", {amount: Mall.yuan(rules.spend.fen_per_hour), caps: caps(rules.spend)}));
    if (rules.points) items.push(t("ops_floor.rules.points", {points: Mall.number(rules.points.points_per_hour), caps: caps(rules.points)}));
    if (rules.coupon) items.push(t("ops_floor.rules.coupon", {visit: rules.coupon.max_per_visit, day: rules.coupon.max_per_day}));
    return h("ul", {}, items.map((line) => h("li", {}, line)));
  }

  async function freeSpaces(code) {
    // The public list asks the car park itself (cached for a few seconds); it may not know right now.
    try {
      const answer = await api("GET", "/api/v1/parking/car-parks");
      const park = answer.car_parks.find((p) => p.code === code);
      return park && park.free_spaces_known ? Object.fromEntries(park.levels.map((l) => [l.code, l.free])) : null;
    } catch (err) {
      return null;
    }
  }

  async function show(id) {
    const park = await api("GET", `/api/v1/ops/car-parks/${id}`);
    current = park;
    const frees = await freeSpaces(park.code);
    document.getElementById("car-park-name").textContent = `${park.name} (${park.code})`;
    const facts = [["ops_floor.parking.vendor_code", park.vendor_park_code],
                   ["ops_floor.parking.fee_source", t("ops_floor.parking.fee_source_" + park.fee_source)],
                   ["ops_floor.parking.active", t(park.active ? "console.yes" : "console.no")],
                   ["ops_floor.parking.spaces", Mall.number(park.levels.reduce((s, l) => s + l.spaces, 0))],
                   ["ops_floor.parking.updated", Mall.when("datetime", park.updated_at)]];
    document.getElementById("car-park-facts").replaceChildren(
      ...facts.flatMap(([label, value]) => [h("dt", {}, t(label)), h("dd", {}, value)]));
    Mall.table(document.getElementById("levels"), [
      {title: "ops_floor.parking.level", value: (l) => `${l.code} · ${l.name}`},
      {title: "ops_floor.parking.floor", num: true, value: (l) => String(l.floor)},
      {title: "ops_floor.parking.spaces", num: true, value: (l) => Mall.number(l.spaces)},
      {title: "ops_floor.parking.bays", num: true, value: (l) => Mall.number(l.bays)},
      {title: "ops_floor.parking.free", num: true, value: (l) => (frees && l.code in frees ? Mall.number(frees[l.code]) : "—")},
    ], park.levels, {empty: "ops_floor.parking.no_levels"});
    document.getElementById("free-note").textContent = frees ? "" : t("ops_floor.parking.free_unknown");
    document.getElementById("tariff-readable").replaceChildren(...readableTariff(park.tariff));
    document.getElementById("rules-readable").replaceChildren(readableRules(park.rules));
    if (tariffForm) tariffForm.elements.document.value = JSON.stringify(park.tariff, null, 2);
    if (rulesForm) rulesForm.elements.document.value = JSON.stringify(park.rules, null, 2);
  }

  function documentEditor(form, path, code) {
    if (!form) return;
    const detail = form.querySelector("[data-detail-for=document]");
    Mall.form(form, async (values) => {
      detail.textContent = "";
      let doc;
      try {
        doc = JSON.parse(form.elements.document.value);
      } catch (err) {
        // Not JSON at all: the API is not asked (it could only say "not JSON" less precisely).
        form.querySelector("[data-error-for=document]").textContent = t("ops_floor.parking.not_json", {problem: err.message});
        form.elements.document.setAttribute("aria-invalid", "true");
        return;
      }
      try {
        await api("PUT", `/api/v1/ops/car-parks/${current.id}/${path}`, doc);
      } catch (err) {
        if (err instanceof Mall.ApiError && err.message) detail.textContent = err.message;  // names the field
        throw err;
      }
      Mall.toast(t("console.saved"));
      await show(current.id);
    }, {codes: {[code]: "document"}});
  }

  documentEditor(tariffForm, "tariff", "parking.tariff_invalid");
  documentEditor(rulesForm, "rules", "parking.rules_invalid");

  picker.addEventListener("change", () => show(Number(picker.value)).catch((err) => Mall.toast(Mall.errorText(err), "error")));

  (async () => {
    const answer = await api("GET", "/api/v1/ops/car-parks");
    if (!answer.car_parks.length) {
      document.getElementById("car-park").replaceChildren(h("p", {class: "card muted"}, t("ops_floor.parking.none")));
      return;
    }
    const wanted = Number(new URLSearchParams(location.search).get("car_park"));
    const first = answer.car_parks.find((p) => p.id === wanted) || answer.car_parks[0];
    picker.replaceChildren(...answer.car_parks.map((p) => h("option", {value: p.id, selected: p.id === first.id}, `${p.code} · ${p.name}`)));
    await show(first.id);
  })().then(() => Mall.ready()).catch((err) => {
    Mall.failed(document.getElementById("car-park"), err);
    Mall.ready();
  });
})();
