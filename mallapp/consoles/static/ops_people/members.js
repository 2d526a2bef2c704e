/* The member desk: find members (GET /api/v1/ops/members), open a record; look a gift's pick-up code up and hand
 * the gift over (GET /api/v1/ops/gifts/<code>, POST .../hand-over). */
"use strict";

(function () {
  const {h, t} = Mall;
  const page = Mall.config.page;
  const hitsEl = document.getElementById("hits");
  const moreBtn = document.getElementById("more");
  let query = null;
  let rows = [];

  const columns = [
    {title: "ops_people.member.id", value: (m) => h("a", {href: `/console/ops/members/${m.id}`}, String(m.id))},
    {title: "ops_people.member.nickname", value: (m) => h("a", {href: `/console/ops/members/${m.id}`}, m.nickname || "—")},
    {title: "ops_people.member.phone", value: (m) => m.phone || "—"},
    {title: "ops_people.member.referral_code", value: (m) => m.referral_code},
    {title: "ops_people.member.tier", value: (m) => People.label("ops_people.tier", m.tier)},
    {title: "ops_people.member.since", value: (m) => Mall.when("date", m.member_since)},
  ];

  async function load(after) {
    const params = new URLSearchParams({q: query, limit: "20"});
    if (after) params.set("after_id", after);
    const found = await Mall.api("GET", "/api/v1/ops/members?" + params);
    rows = after ? rows.concat(found.members) : found.members;
    Mall.table(hitsEl, columns, rows, {empty: "ops_people.desk.none"});
    moreBtn.hidden = !found.next_after_id;
    moreBtn.dataset.after = found.next_after_id || "";
  }

  Mall.form(document.getElementById("search"), async (values) => {
    query = (values.q || "").trim();
    if (!query) {
      document.querySelector('[data-error-for="q"]').textContent = t("ops_people.desk.query_missing");
      return;
    }
    await load(null);
  });
  moreBtn.addEventListener("click", () => Mall.act(moreBtn, () => load(moreBtn.dataset.after)));

  // --- gift hand-over ---------------------------------------------------------------------------------
  const giftEl = document.getElementById("gift");
  function showGift(gift) {
    const done = gift.handed_over;
    const facts = [
      ["ops_people.gift.gift", gift.gift_name || gift.gift_code],
      ["ops_people.gift.quantity", Mall.number(gift.quantity)],
      ["ops_people.gift.points", Mall.number(gift.points)],
      ["ops_people.gift.member", `${gift.nickname || "—"} · ${gift.phone || "—"}`],
      ["ops_people.gift.redeemed_at", Mall.when("datetime", gift.redeemed_at)],
      ["ops_people.gift.status", done ? t("ops_people.gift.handed_over_by", {who: gift.handed_over_by_username || "—",
                                                                           at: Mall.when("datetime", gift.handed_over_at)})
                                      : t("ops_people.gift.waiting")],
    ];
    const button = !done && page.may.ops_desk
      ? h("button", {type: "button", class: "primary", onclick: (e) => Mall.act(e.currentTarget, async () => {
        showGift(await Mall.api("POST", `/api/v1/ops/gifts/${encodeURIComponent(gift.pickup_code)}/hand-over`,
                                {request_id: Mall.newKey()}));
        Mall.toast(t("ops_people.gift.done"));
      })}, t("ops_people.gift.hand_over"))
      : null;
    giftEl.replaceChildren(h("dl", {class: "facts"}, facts.flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])), button);
  }
  Mall.form(document.getElementById("pickup"), async (values) => {
    giftEl.replaceChildren();
    const code = (values.pickup_code || "").trim();
    if (!code) {
      document.querySelector('[data-error-for="pickup_code"]').textContent = t("ops_people.gift.code_missing");
      return;
    }
    showGift(await Mall.api("GET", `/api/v1/ops/gifts/${encodeURIComponent(code)}`));
  }, {codes: {"gift.pickup_not_found": "pickup_code"}});

  Mall.ready();
})();
