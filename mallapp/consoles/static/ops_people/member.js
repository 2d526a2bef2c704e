/* A member's record at the desk (GET /api/v1/ops/members/<id>), the ledger paged (GET .../points), and the
 * points adjustment (POST .../points-adjustments: the desk's idempotency key, a reason; a debit past the balance
 * is the API's points.insufficient, shown next to the points). */
"use strict";

(function () {
  const {h, t} = Mall;
  const page = Mall.config.page;
  const base = `/api/v1/ops/members/${page.member_id}`;
  const $ = (id) => document.getElementById(id);
  let ledger = [];

  function facts(rows) {
    return h("dl", {class: "facts"}, rows.flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)]));
  }

  const ledgerColumns = [
    {title: "ops_people.ledger.when", value: (e) => Mall.when("datetime", e.created_at)},
    {title: "ops_people.ledger.reason", value: (e) => People.label("ops_people.reason", e.reason)},
    {title: "ops_people.ledger.note", value: (e) => e.note || ""},
    {title: "ops_people.ledger.delta", num: true, value: (e) => (e.delta > 0 ? "+" : "") + Mall.number(e.delta)},
    {title: "ops_people.ledger.balance_after", num: true, value: (e) => Mall.number(e.balance_after)},
  ];

  function showLedger(entries, nextBefore, append) {
    ledger = append ? ledger.concat(entries) : entries;
    Mall.table($("ledger"), ledgerColumns, ledger);
    $("more").hidden = !nextBefore;
    $("more").dataset.before = nextBefore || "";
  }

  function show(record) {
    const p = record.profile;
    const seg = record.segments.current;
    const ltv = record.lifetime_value;
    $("who").textContent = t("ops_people.record.heading", {name: p.nickname || "—", id: p.id});
    $("profile").replaceChildren(facts([
      ["ops_people.member.id", String(p.id)],
      ["ops_people.member.nickname", p.nickname || "—"],
      ["ops_people.member.phone", p.phone || "—"],
      ["ops_people.member.referral_code", p.referral_code],
      ["ops_people.member.tier", People.label("ops_people.tier", p.tier)],
      ["ops_people.member.gender", People.label("ops_people.gender", p.gender)],
      ["ops_people.member.birthday", p.birthday ? Mall.when("date", p.birthday + "T12:00:00Z") : "—"],
      ["ops_people.member.since", Mall.when("date", p.member_since)],
    ]));
    $("segments").replaceChildren(seg ? facts([
      ["ops_people.segment.t_tier", People.label("ops_people.t_tier", seg.t_tier)],
      ["ops_people.segment.pyramid", People.label("ops_people.pyramid", seg.pyramid)],
      ["ops_people.segment.rfm", People.label("ops_people.rfm", seg.rfm_segment)],
      ["ops_people.segment.lifecycle", People.label("ops_people.lifecycle", seg.lifecycle)],
      ["ops_people.segment.spend", Mall.yuan(seg.spend_fen)],
      ["ops_people.segment.visits", Mall.number(seg.visits)],
      ["ops_people.segment.clv", Mall.yuan(ltv.clv_fen)],
      ["ops_people.segment.p_alive", Mall.percent(ltv.p_alive)],
    ]) : h("p", {class: "muted"}, t("ops_people.segment.none")));
    $("balance").textContent = Mall.number(record.points.balance);
    $("debt").textContent = record.points.debt ? t("ops_people.record.debt", {points: Mall.number(record.points.debt)}) : "";
    showLedger(record.points.ledger, record.points.next_before_id, false);
    Mall.table($("adjustments"), [
      {title: "ops_people.ledger.when", value: (a) => Mall.when("datetime", a.created_at)},
      {title: "ops_people.ledger.delta", num: true, value: (a) => (a.points > 0 ? "+" : "") + Mall.number(a.points)},
      {title: "ops_people.adjust.reason", value: (a) => a.reason},
    ], record.adjustments);
    Mall.table($("coupons"), [
      {title: "ops_people.coupon.title", value: (c) => c.title},
      {title: "ops_people.coupon.status", value: (c) => People.label("ops_people.coupon_status", c.status)},
      {title: "ops_people.coupon.claimed_at", value: (c) => Mall.when("datetime", c.claimed_at)},
      {title: "ops_people.coupon.redeemed_at", value: (c) => Mall.when("datetime", c.redeemed_at)},
    ], record.coupons);
    Mall.table($("purchases"), [
      {title: "ops_people.purchase.when", value: (x) => Mall.when("datetime", x.occurred_at)},
      {title: "ops_people.purchase.receipt", value: (x) => x.receipt_no},
      {title: "ops_people.purchase.amount", num: true, value: (x) => Mall.yuan(x.amount_fen)},
      {title: "ops_people.purchase.refunded", num: true, value: (x) => Mall.yuan(x.refunded_fen)},
      {title: "ops_people.purchase.points", num: true, value: (x) => Mall.number(x.points_earned)},
    ], record.purchases);
    Mall.table($("checkins"), [
      {title: "ops_people.checkin.day", value: (c) => c.day},
      {title: "ops_people.checkin.streak", num: true, value: (c) => Mall.number(c.streak)},
      {title: "ops_people.checkin.points", num: true, value: (c) => Mall.number(c.points)},
    ], record.visits.checkins);
    Mall.table($("visits"), [
      {title: "ops_people.visit.entered", value: (v) => Mall.when("datetime", v.entered_at)},
      {title: "ops_people.visit.dwell", num: true, value: (v) => t("ops_people.visit.minutes", {minutes: Math.round(v.dwell_seconds / 60)})},
    ], record.visits.mall_visits);
    Mall.table($("gifts"), [
      {title: "ops_people.gift.gift", value: (g) => g.gift_code},
      {title: "ops_people.gift.code", value: (g) => g.pickup_code},
      {title: "ops_people.gift.points", num: true, value: (g) => Mall.number(g.points)},
      {title: "ops_people.gift.status", value: (g) => g.handed_over_at ? Mall.when("datetime", g.handed_over_at) : t("ops_people.gift.waiting")},
    ], record.gifts);
    Mall.table($("campaigns"), [
      {title: "ops_people.campaign.name", value: (c) => h("a", {href: `/console/ops/campaigns/${c.campaign_id}`}, c.name)},
      {title: "ops_people.report.arm", value: (c) => t("ops_people.report." + c.arm)},
      {title: "ops_people.record.assigned_at", value: (c) => Mall.when("datetime", c.assigned_at)},
      {title: "ops_people.record.steps_delivered", num: true, value: (c) => `${c.steps_delivered} / ${c.steps}`},
    ], record.campaigns);
  }

  async function reload() {
    show(await Mall.api("GET", base));
  }

  $("more").addEventListener("click", () => Mall.act($("more"), async () => {
    const page = await Mall.api("GET", `${base}/points?before_id=${$("more").dataset.before}`);
    showLedger(page.entries, page.next_before_id, true);
  }));

  const form = $("adjust");
  if (page.may.ops_desk) {
    form.hidden = false;
    let key = Mall.newKey();  // one adjustment, one key: a retry of the same submission is not a second one
    form.addEventListener("input", () => { key = Mall.newKey(); });
    Mall.form(form, async (values) => {
      const points = Number(values.points);
      if (!values.points || !Number.isInteger(points) || points === 0) {
        form.querySelector('[data-error-for="points"]').textContent = t("ops_people.adjust.points_invalid");
        form.querySelector('[name="points"]').setAttribute("aria-invalid", "true");
        return;
      }
      const done = await Mall.api("POST", `${base}/points-adjustments`,
                                  {points, reason: values.reason || "", idempotency_key: key});
      Mall.toast(t("ops_people.adjust.done", {balance: Mall.number(done.balance)}));
      form.reset();
      key = Mall.newKey();
      await reload();
    }, {codes: {"points.insufficient": "points", "desk.idempotency_mismatch": "points"}});
  }

  reload().catch((err) => Mall.failed(document.getElementById("record"), err)).finally(() => Mall.ready());
})();
