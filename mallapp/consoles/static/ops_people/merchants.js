/* Merchants with their stores (GET /api/v1/ops/merchants, /api/v1/ops/stores); create one (its API key shown
 * once), disable / enable, rotate the key (shown once), auto-approval of their deals (PATCH /api/v1/ops/merchants/<id>). */
"use strict";

(function () {
  const {h, t} = Mall;
  const list = document.getElementById("list");
  const secret = document.getElementById("secret");

  function showKey(merchant, key) {
    document.getElementById("secret-title").textContent = t("ops_people.merchants.key_for", {name: merchant.name});
    document.getElementById("secret-key").textContent = key;
    secret.hidden = false;
    secret.scrollIntoView({block: "nearest"});
  }
  document.getElementById("secret-done").addEventListener("click", () => {
    document.getElementById("secret-key").textContent = "";
    secret.hidden = true;
  });

  function actions(m) {
    const patch = (body, done) => async () => {
      await Mall.api("PATCH", `/api/v1/ops/merchants/${m.id}`, body);
      Mall.toast(t(done, {name: m.name}));
      await load();
    };
    return h("div", {class: "row-actions"},
      h("label", {class: "checks"}, h("input", {type: "checkbox", checked: m.auto_approve_deals,
        "aria-label": t("ops_people.merchant.auto_approve_for", {name: m.name}),
        onchange: (e) => Mall.act(e.currentTarget, patch({auto_approve_deals: e.currentTarget.checked},
                                                          "ops_people.merchants.saved"))}),
        t("ops_people.merchant.auto_approve")),
      h("button", {type: "button", class: m.active ? "danger" : null,
        onclick: (e) => Mall.act(e.currentTarget, async () => {
          if (m.active && !window.confirm(t("ops_people.merchants.disable_confirm", {name: m.name}))) return;
          await patch({active: !m.active}, m.active ? "ops_people.merchants.disabled" : "ops_people.merchants.enabled")();
        })}, t(m.active ? "ops_people.merchants.disable" : "ops_people.merchants.enable")),
      h("button", {type: "button", onclick: (e) => Mall.act(e.currentTarget, async () => {
        if (!window.confirm(t("ops_people.merchants.rotate_confirm", {name: m.name}))) return;
        const rotated = await Mall.api("POST", `/api/v1/ops/merchants/${m.id}/key`);
        showKey(rotated, rotated.api_key);
        await load();
      })}, t("ops_people.merchants.rotate")));
  }

  async function load() {
    const [m, s] = await Promise.all([Mall.api("GET", "/api/v1/ops/merchants"),
                                      Mall.api("GET", "/api/v1/ops/stores?include_inactive=true")]);
    const byMerchant = {};
    for (const store of s.stores) {
      if (store.merchant_id !== null) (byMerchant[store.merchant_id] = byMerchant[store.merchant_id] || []).push(store);
    }
    Mall.table(list, [
      {title: "ops_people.merchant.id", value: (x) => String(x.id)},
      {title: "ops_people.merchant.name", value: (x) => x.name},
      {title: "ops_people.merchant.stores", value: (x) => (byMerchant[x.id] || []).map((st) =>
        `${st.name}${st.unit ? " · " + st.unit : ""}${st.active ? "" : " (" + t("ops_people.inactive") + ")"}`).join("、") || "—"},
      {title: "ops_people.merchant.status", value: (x) => People.badge(x.active, "ops_people.active", "ops_people.disabled")},
      {title: "ops_people.merchant.key_hint", value: (x) => x.key_hint + "…"},
      {title: "ops_people.merchant.created_at", value: (x) => Mall.when("date", x.created_at)},
      {title: "console.actions", value: actions},
    ], m.merchants, {rowData: (x) => ({merchantId: String(x.id)})});
  }

  const form = document.getElementById("create");
  let key = Mall.newKey();  // one merchant, one key: a retried submit finds the merchant it created
  form.addEventListener("input", () => { key = Mall.newKey(); });
  Mall.form(form, async (values) => {
    const created = await Mall.api("POST", "/api/v1/ops/merchants", {name: values.name || ""}, {idempotencyKey: key});
    if (created.api_key) showKey(created, created.api_key);
    else Mall.toast(t("ops_people.merchants.already_created", {name: created.name}));
    form.reset();
    key = Mall.newKey();
    await load();
  });

  load().catch((err) => Mall.failed(list.parentElement, err)).finally(() => Mall.ready());
})();
