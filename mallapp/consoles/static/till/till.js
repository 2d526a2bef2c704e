/* The till: member, purchase, coupon, today's receipts with refunds, today's promotions.
 *
 * Retries are safe by construction: a purchase's receipt number, a coupon's request id and a refund's number are
 * made once per sale and sent again, unchanged, until the API gives a definite answer, so a double tap or a retry
 * after a lost answer is recorded once (the API's idempotency answers the first result). */
"use strict";

(function () {
  const STORE_KEY = "mall.till.store";
  const $ = (id) => document.getElementById(id);
  const state = {member: null, stores: [], next: null};

  // --- small helpers -------------------------------------------------------------------------------------
  function randomPart(length) {
    const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    const bytes = new Uint8Array(length);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
  }

  /** An id made once per attempt `key` and kept until the API answered it for sure (a 2xx or a 4xx). */
  function onceFor(prefix) {
    let pending = null;
    return {
      id(key) {
        if (!pending || pending.key !== key) pending = {key, id: prefix + Mall.today().replaceAll("-", "") + "-" + randomPart(10)};
        return pending.id;
      },
      settle(err) {
        // A network failure or a 5xx may have been recorded: keep the id so the retry is the same request.
        if (!err || (err instanceof Mall.ApiError && err.status >= 400 && err.status < 500)) pending = null;
      },
    };
  }

  /** Give an API validation problem on `from` to the form's field `to` (the API names fen, the form yuan). */
  function renameFields(err, names) {
    if (err instanceof Mall.ApiError && err.details && err.details.problems) {
      for (const problem of err.details.problems) {
        const field = String(problem.field).split(".")[0];
        if (names[field]) problem.field = names[field];
      }
    }
    return err;
  }

  function fieldError(form, field, key) {
    const err = new Mall.ApiError(400, {error: {code: "till.local", message: Mall.t(key),
                                                details: {problems: [{field, problem: Mall.t(key)}]}}});
    return err;
  }

  /** An amount typed in yuan as fen, or throws a field error for `field` (empty allowed when `optional`). */
  function amountFen(form, field, text, optional) {
    if (optional && (text === undefined || String(text).trim() === "")) return null;
    const fen = Mall.fen(text === undefined ? "" : text);
    if (fen === null || fen <= 0) throw fieldError(form, field, "till.amount.invalid");
    return fen;
  }

  function tierText(tier) {
    if (!tier) return null;
    const key = "till.tier." + tier;
    return Mall.has(key) ? Mall.t(key) : tier;
  }

  function benefitText(benefit, discountFen) {
    switch (benefit.kind) {
      case "amount_off": return Mall.t("till.benefit.amount_off", {amount: Mall.yuan(benefit.amount_fen)});
      case "percent_off":
        return discountFen ? Mall.t("till.benefit.percent_off_amount", {percent: benefit.percent, amount: Mall.yuan(discountFen)})
          : Mall.t("till.benefit.percent_off", {percent: benefit.percent});
      case "gift": return Mall.t("till.benefit.gift", {gift: benefit.gift});
      case "bonus_points": return Mall.t("till.benefit.bonus_points", {points: Mall.number(benefit.points)});
      case "parking_hours": return Mall.t("till.benefit.parking_hours", {hours: benefit.hours});
      case "parking_amount": return Mall.t("till.benefit.parking_amount", {amount: Mall.yuan(benefit.amount_fen)});
      default: return benefit.kind;
    }
  }

  /** Replace el's children with these nodes, leaving out the null ones (replaceChildren would write "null"). */
  function fill(el, ...nodes) { el.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined)); }

  function memberName(nickname) { return nickname || Mall.t("till.member.no_nickname"); }

  // --- the store ----------------------------------------------------------------------------------------
  function currentStore() {
    const value = $("store").value;
    return value ? parseInt(value, 10) : null;
  }

  function showStores(stores) {
    state.stores = stores;
    const select = $("store");
    const remembered = parseInt(localStorage.getItem(STORE_KEY) || "", 10);
    select.replaceChildren(...stores.map((s) => Mall.h("option", {value: s.id, selected: s.id === remembered},
                                                      s.unit ? `${s.name} (${s.unit})` : s.name)));
    select.disabled = stores.length <= 1;
    $("store-hint").textContent = stores.length ? "" : Mall.t("till.store.none");
  }

  $("store").addEventListener("change", () => localStorage.setItem(STORE_KEY, $("store").value));

  // --- the member -----------------------------------------------------------------------------------------
  function showMember(member) {
    state.member = member;
    $("member-info").hidden = !member;
    $("purchase-result").replaceChildren();
    if (!member) return;
    $("member-name").textContent = memberName(member.nickname);
    const parts = [tierText(member.tier), member.masked_phone].filter(Boolean);
    if (member.by_phone) parts.push(Mall.t("till.phone.found_note"));
    $("member-detail").textContent = parts.join(" · ");
  }

  const memberForm = $("member-form");
  async function lookUp(code) {
    const found = await Mall.api("POST", "/api/v1/merchant/members/lookup", {code});
    showMember({code, nickname: found.nickname, tier: found.tier, masked_phone: found.masked_phone});
    $("purchase-form").elements.amount.focus();
  }

  Mall.form(memberForm, async (values) => {
    showMember(null);
    const code = (values.code || "").trim();
    if (!code) throw fieldError(memberForm, "code", "till.member.code_missing");
    await lookUp(code);
  }, {codes: {"card.invalid": "code", "card.expired": "code", "member.not_found": "code"}});

  $("member-clear").addEventListener("click", () => {
    showMember(null);
    memberForm.reset();
    Mall.clearErrors(memberForm);
    memberForm.elements.code.focus();
  });

  const phoneForm = $("phone-form");
  Mall.form(phoneForm, async (values) => {
    $("phone-results").replaceChildren();
    let found;
    try {
      found = await Mall.api("POST", "/api/v1/merchant/members/find-by-phone", {phone: values.phone || ""});
    } catch (err) {
      // The API refuses anything but a full number; say so in the cashier's words.
      if (err instanceof Mall.ApiError && err.details && err.details.problems) {
        err.details.problems = err.details.problems.map((p) => String(p.field).split(".")[0] === "phone"
          ? {field: "phone", problem: Mall.t("till.phone.full_needed")} : p);
      }
      throw err;
    }
    const choose = (m) => {
      memberForm.elements.code.value = "";
      Mall.clearErrors(memberForm);
      showMember({code: m.till_ref, nickname: m.nickname, masked_phone: m.masked_phone, tier: null, by_phone: true});
      $("phone-results").replaceChildren();
      phoneForm.reset();
      $("phone-box").open = false;
      $("purchase-form").elements.amount.focus();
    };
    if (found.members.length === 1) { choose(found.members[0]); return; }
    $("phone-results").replaceChildren(...found.members.map((m) => Mall.h("button", {type: "button", onclick: () => choose(m)},
      Mall.t("till.phone.choose", {name: memberName(m.nickname), phone: m.masked_phone || ""}))));
  }, {codes: {"member.not_found": "phone", "till.phone_lookups_exhausted": "phone"}});

  // --- the camera ---------------------------------------------------------------------------------------
  async function scanInto(input, after) {
    const message = $("camera-message");
    message.hidden = true;
    const result = await window.TillScanner.scan();
    if (result.code) {
      input.value = result.code;
      after(result.code);
      return;
    }
    if (result.reason !== "stopped") {
      message.textContent = Mall.t("till.scanner." + result.reason);
      message.hidden = false;
    }
    input.focus();
  }

  $("member-scan").addEventListener("click", () => scanInto(memberForm.elements.code, () => memberForm.requestSubmit()));
  $("coupon-scan").addEventListener("click", () => scanInto($("coupon-form").elements.code, () => $("coupon-form").elements.amount.focus()));

  // --- the purchase ---------------------------------------------------------------------------------------
  const purchaseForm = $("purchase-form");
  const receiptNo = onceFor("T");
  Mall.form(purchaseForm, async (values) => {
    $("purchase-result").replaceChildren();
    const fen = amountFen(purchaseForm, "amount", values.amount);
    if (!state.member) {
      // A code typed (or scanned by a keyboard-like scanner) but not looked up yet: look it up first.
      const typed = memberForm.elements.code.value.trim();
      if (!typed) throw fieldError(memberForm, "_form", "till.member.needed");
      await lookUp(typed);
    }
    const member = state.member;
    const receipt = receiptNo.id(member.code + "|" + fen);
    let posted;
    try {
      posted = await Mall.api("POST", "/api/v1/merchant/purchases", {member_code: member.code, amount_fen: fen, receipt_no: receipt});
    } catch (err) {
      receiptNo.settle(err);
      throw renameFields(err, {amount_fen: "amount", member_code: "_form"});
    }
    receiptNo.settle(null);
    fill($("purchase-result"),
      Mall.h("div", {class: "big", "data-testid": "points-earned"}, Mall.t("till.purchase.points", {points: Mall.number(posted.points_total)})),
      Mall.h("div", {"data-testid": "purchase-member"}, Mall.t("till.purchase.done", {name: memberName(member.nickname), amount: Mall.yuan(posted.amount_fen)})),
      posted.birthday_bonus ? Mall.h("div", {}, Mall.t("till.purchase.birthday", {points: Mall.number(posted.birthday_bonus)})) : null,
      Mall.h("div", {class: "muted"}, Mall.t("till.purchase.receipt", {receipt: posted.receipt_no})));
    purchaseForm.reset();
    // The next customer starts afresh: the code (or till reference) was for this sale.
    state.member = null;
    $("member-info").hidden = true;
    memberForm.reset();
    reloadReceipts();
  }, {codes: {"card.invalid": "_form", "card.expired": "_form", "purchase.receipt_conflict": "_form"}});

  // A rejected member code belongs beside the member's field, not the amount.
  purchaseForm.addEventListener("submit", () => Mall.clearErrors(memberForm));

  // --- the coupon -----------------------------------------------------------------------------------------
  const couponForm = $("coupon-form");
  const requestId = onceFor("C");
  const COUPON_CODE = ["coupon.not_found", "coupon.invalid_qr", "coupon.already_used", "coupon.wrong_store",
                       "coupon.not_yet_valid", "coupon.expired", "coupon.store_not_yours",
                       "coupon.store_not_participating", "coupon.parking_only"];
  const couponCodes = Object.fromEntries(COUPON_CODE.map((c) => [c, "code"]));
  couponCodes["coupon.amount_required"] = "amount";
  couponCodes["coupon.below_min_spend"] = "amount";
  Mall.form(couponForm, async (values) => {
    $("coupon-result").replaceChildren();
    const typed = (values.code || "").trim();
    if (!typed) throw fieldError(couponForm, "code", "till.coupon.code_missing");
    const fen = amountFen(couponForm, "amount", values.amount, true);
    const store = currentStore();
    if (!store) throw fieldError(couponForm, "_form", "till.store.none");
    const body = typed.includes(".") ? {qr: typed} : {code: typed};
    body.store_id = store;
    if (fen !== null) body.amount_fen = fen;
    body.request_id = requestId.id(JSON.stringify(body));
    let done;
    try {
      done = await Mall.api("POST", "/api/v1/merchant/coupons/redeem", body);
    } catch (err) {
      requestId.settle(err);
      throw renameFields(err, {amount_fen: "amount", qr: "code", store_id: "_form"});
    }
    requestId.settle(null);
    fill($("coupon-result"),
      Mall.h("div", {class: "big", "data-testid": "coupon-benefit"}, benefitText(done.benefit, done.discount_fen)),
      Mall.h("div", {}, done.title),
      done.discount_fen !== null && done.discount_fen !== undefined
        ? Mall.h("div", {}, Mall.t("till.coupon.pay", {amount: Mall.yuan(done.amount_fen - done.discount_fen)})) : null,
      done.bonus_points ? Mall.h("div", {}, Mall.t("till.coupon.bonus", {points: Mall.number(done.bonus_points)})) : null,
      Mall.h("div", {class: "muted"}, Mall.t("till.coupon.redeemed", {code: done.code, time: Mall.when("time", done.redeemed_at)})));
    couponForm.reset();
  }, {codes: couponCodes});

  // --- today's receipts -------------------------------------------------------------------------------
  const refundNo = onceFor("RF");

  function refundState(receipt) {
    if (!receipt.refunded_fen) return null;
    if (receipt.refunded_fen >= receipt.amount_fen) return Mall.h("span", {class: "badge bad"}, Mall.t("till.receipts.refunded"));
    return Mall.h("span", {class: "badge warn"}, Mall.t("till.receipts.partly", {amount: Mall.yuan(receipt.refunded_fen)}));
  }

  function refundForm(receipt, cell) {
    const left = receipt.amount_fen - receipt.refunded_fen;
    const form = Mall.h("form", {class: "refund-form", novalidate: true},
      Mall.h("label", {}, Mall.t("till.refund.amount"),
        Mall.h("input", {name: "amount", inputmode: "decimal", value: (left / 100).toFixed(2), autocomplete: "off"})),
      Mall.h("button", {type: "submit", class: "danger"}, Mall.t("till.refund.confirm")),
      Mall.h("button", {type: "button", onclick: () => reloadReceipts()}, Mall.t("console.cancel")),
      Mall.h("div", {class: "field-error", "data-error-for": "amount"}),
      Mall.h("div", {class: "form-error", "data-error-for": "_form"}));
    Mall.form(form, async (values) => {
      const fen = amountFen(form, "amount", values.amount);
      const number = refundNo.id(receipt.receipt_no + "|" + fen);
      let done;
      try {
        done = await Mall.api("POST", "/api/v1/merchant/refunds", {receipt_no: receipt.receipt_no, refund_no: number, amount_fen: fen});
      } catch (err) {
        refundNo.settle(err);
        throw renameFields(err, {amount_fen: "amount"});
      }
      refundNo.settle(null);
      Mall.toast(Mall.t("till.refund.done", {amount: Mall.yuan(done.amount_fen), points: Mall.number(done.points_reversed)}));
      await loadReceipts();
    }, {codes: {"refund.exceeds_purchase": "amount", "refund.number_conflict": "_form", "purchase.not_found": "_form"}});
    cell.replaceChildren(form);
    form.elements.amount.focus();
  }

  const columns = [
    {title: "till.receipts.time", value: (r) => Mall.when("time", r.occurred_at)},
    {title: "till.receipts.receipt", value: (r) => r.receipt_no},
    {title: "till.receipts.member", value: (r) => memberName(r.nickname)},
    {title: "till.receipts.amount", num: true, value: (r) => Mall.yuan(r.amount_fen)},
    {title: "till.receipts.points", num: true, value: (r) => Mall.number(r.points_total - r.points_reversed)},
    {title: "till.receipts.state", value: (r) => refundState(r) || ""},
    {title: "console.actions", value: (r) => r.refunded_fen >= r.amount_fen ? "" :
      Mall.h("button", {type: "button", class: "danger", onclick: (event) => refundForm(r, event.target.closest("td"))},
             Mall.t("till.refund.open"))},
  ];
  let shown = [];

  async function loadReceipts(more) {
    const query = new URLSearchParams({limit: String(Mall.config.page.receipts_page || 20)});
    if (more && state.next) query.set("before", state.next);
    const page = await Mall.api("GET", "/api/v1/merchant/purchases?" + query);
    shown = more ? shown.concat(page.receipts) : page.receipts;
    state.next = page.next;
    Mall.table($("receipts"), columns, shown, {empty: "till.receipts.none", rowData: (r) => ({receipt: r.receipt_no})});
    $("receipts-more").hidden = !page.next;
  }

  function reloadReceipts() { loadReceipts().catch((err) => Mall.toast(Mall.errorText(err), "error")); }

  $("receipts-refresh").addEventListener("click", (e) => Mall.act(e.currentTarget, () => loadReceipts()));
  $("receipts-more").addEventListener("click", (e) => Mall.act(e.currentTarget, () => loadReceipts(true)));

  // --- today's promotions --------------------------------------------------------------------------------
  function showDeals(deals) {
    const list = $("deals");
    if (!deals.length) {
      list.replaceChildren(Mall.h("li", {class: "muted"}, Mall.t("till.deals.none")));
      return;
    }
    list.replaceChildren(...deals.map((d) => Mall.h("li", {},
      Mall.h("div", {}, Mall.h("span", {class: "benefit"}, benefitText(d.benefit)), " · ", d.title),
      d.text ? Mall.h("div", {class: "muted"}, d.text) : null,
      Mall.h("div", {class: "muted"}, [
        d.min_spend_fen ? Mall.t("till.deals.min_spend", {amount: Mall.yuan(d.min_spend_fen)}) : null,
        Mall.t("till.deals.until", {time: Mall.when("datetime", d.ends_at)}),
        d.scope === "mall" ? Mall.t("till.deals.mall") : null,
      ].filter(Boolean).join(" · ")))));
  }

  // --- start ------------------------------------------------------------------------------------------------
  (async function start() {
    try {
      const [day] = await Promise.all([Mall.api("GET", "/api/v1/merchant/till"), loadReceipts()]);
      showStores(day.stores);
      showDeals(day.deals);
    } catch (err) {
      Mall.failed($("deals"), err);
    }
    Mall.ready();
  })();
})();
