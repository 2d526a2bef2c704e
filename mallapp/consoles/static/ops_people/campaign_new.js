/* Build a campaign: audience rules with a live count (POST /api/v1/ops/campaigns/audience-count, debounced as the
 * rules change), the offer steps, the timing, the control share and the window; create the draft
 * (POST /api/v1/ops/campaigns) and go to its page to launch it. The API checks every rule. */
"use strict";

(function () {
  const {h, t} = Mall;
  const form = document.getElementById("build");
  const countEl = document.getElementById("count");
  const monthEl = document.getElementById("count-month");
  const stepsEl = document.getElementById("steps");
  const template = document.getElementById("step-template");
  let liveDeals = [];

  const LISTS = ["t_tiers", "last_t_tiers", "pyramid", "rfm_segments", "lifecycle"];
  const NUMBERS = ["days_since_purchase_min", "days_since_purchase_max", "bought_within_days"];

  function field(name) { return form.querySelector(`[name="${name}"]`); }
  function intOrNull(text) { return text === "" || text === undefined || text === null ? null : Number(text); }

  /** The audience rules as the API takes them (AudienceIn): only the rules set. */
  function audience() {
    const rules = {};
    for (const group of LISTS) {
      const picked = Array.from(form.querySelectorAll(`[name="aud_${group}"]:checked`), (el) => el.value);
      if (picked.length) rules[group] = picked;
    }
    for (const name of NUMBERS) {
      const value = intOrNull(field("aud_" + name).value);
      if (value !== null) rules[name] = value;
    }
    for (const name of ["p_alive_min", "p_alive_max"]) {
      const value = intOrNull(field("aud_" + name).value);
      if (value !== null) rules[name] = value / 100;
    }
    for (const name of ["bought_at_stores", "follows_stores"]) {
      const ids = Array.from(field("aud_" + name).selectedOptions, (o) => Number(o.value));
      if (ids.length) rules[name] = ids;
    }
    const categories = field("aud_bought_in_categories").value.split(/[,，、]/).map((s) => s.trim()).filter(Boolean);
    if (categories.length) rules.bought_in_categories = categories;
    return rules;
  }

  // --- the live count -------------------------------------------------------------------------------------
  let asked = 0;
  let timer = null;
  const audienceError = form.querySelector('[data-error-for="audience"]');
  async function count() {
    const mine = ++asked;
    countEl.textContent = "…";
    try {
      const answer = await Mall.api("POST", "/api/v1/ops/campaigns/audience-count", audience());
      if (mine !== asked) return;  // a later change asked again: its answer is the one to show
      audienceError.textContent = "";
      countEl.textContent = Mall.number(answer.members);
      monthEl.textContent = answer.segments_month ? t("ops_people.builder.segments_of", {month: answer.segments_month.slice(0, 7)})
                                                  : t("ops_people.builder.no_segments");
    } catch (err) {
      if (mine !== asked) return;
      countEl.textContent = "—";
      const problems = err.details && err.details.problems;
      audienceError.textContent = problems && problems.length ? problems.map(Mall.problemText).join(" ") : Mall.errorText(err);
    }
  }
  function countSoon() {
    clearTimeout(timer);
    timer = setTimeout(count, 300);
  }
  const audienceSection = document.getElementById("audience");
  audienceSection.addEventListener("change", countSoon);
  audienceSection.addEventListener("input", countSoon);

  // --- steps ----------------------------------------------------------------------------------------------
  function fillDeals(select) {
    select.replaceChildren(h("option", {value: ""}, t("ops_people.step.pick_deal")),
      liveDeals.map((d) => h("option", {value: String(d.id)}, `#${d.id} ${d.title}`)));
  }
  function addStep() {
    const step = template.content.firstElementChild.cloneNode(true);
    const kind = step.querySelector('[data-f="kind"]');
    const showKind = () => step.querySelectorAll("[data-kind]").forEach((el) => { el.hidden = el.dataset.kind !== kind.value; });
    kind.addEventListener("change", showKind);
    showKind();
    fillDeals(step.querySelector('[data-f="deal_id"]'));
    step.querySelector(".remove-step").addEventListener("click", () => {
      if (stepsEl.children.length > 1) step.remove();
    });
    stepsEl.append(step);
  }
  function steps() {
    return Array.from(stepsEl.children, (step) => {
      const f = (name) => step.querySelector(`[data-f="${name}"]`).value.trim();
      const offer = {kind: f("kind"), title: f("title"), body: f("body")};
      if (f("title_en")) offer.title_en = f("title_en");
      if (f("body_en")) offer.body_en = f("body_en");
      if (offer.kind === "coupon") {
        if (f("deal_id")) offer.deal_id = Number(f("deal_id"));
        if (f("coupon_valid_days")) offer.coupon_valid_days = Number(f("coupon_valid_days"));
      }
      if (offer.kind === "points" && f("points")) offer.points = Number(f("points"));
      return {after_days: Number(f("after_days") || 0), offer};
    });
  }
  document.getElementById("add-step").addEventListener("click", addStep);

  // --- timing ---------------------------------------------------------------------------------------------
  const timing = field("timing");
  const showTiming = () => form.querySelectorAll("[data-when]").forEach((el) => { el.hidden = el.dataset.when !== timing.value; });
  timing.addEventListener("change", showTiming);
  showTiming();

  Mall.form(form, async () => {
    const body = {name: field("name").value.trim(), audience: audience(), steps: steps(), timing: timing.value};
    if (timing.value === "at") body.start_at = People.mallInstant(field("start_at").value);
    if (timing.value === "lifecycle") body.lifecycle_state = field("lifecycle_state").value;
    const ends = People.mallInstant(field("ends_at").value);
    if (ends) body.ends_at = ends;
    for (const name of ["control_pct", "window_days"]) {
      const value = intOrNull(field(name).value);
      if (value !== null) body[name] = value;
    }
    const created = await Mall.api("POST", "/api/v1/ops/campaigns", body);
    location.href = `/console/ops/campaigns/${created.id}`;
  }, {codes: {"campaign.invalid_audience": "audience", "campaign.invalid_offer": "steps",
              "campaign.deal_not_live": "steps", "campaign.invalid_timing": "timing"}});

  async function load() {
    const [stores, deals] = await Promise.all([Mall.api("GET", "/api/v1/ops/stores"),
                                               Mall.api("GET", "/api/v1/ops/deals?status=live")]);
    liveDeals = deals.deals;
    form.querySelectorAll("select.stores").forEach((select) => select.replaceChildren(
      stores.stores.map((s) => h("option", {value: String(s.id)}, `${s.name} (${s.unit || s.id})`))));
    addStep();
    await count();
  }
  load().catch((err) => Mall.failed(form, err)).finally(() => Mall.ready());
})();
