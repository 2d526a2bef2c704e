/* Ops users and their roles (GET/POST /api/v1/ops/users, PATCH /api/v1/ops/users/<id>, POST .../unlock): create
 * one (a generated password shown once, or one typed), change a role, deactivate / reactivate, unlock after wrong
 * passwords. The API refuses to leave no active admin (ops.last_admin), shown beside the row's action. */
"use strict";

(function () {
  const {h, t} = Mall;
  const page = Mall.config.page;
  const list = document.getElementById("list");
  const secret = document.getElementById("secret");
  const ROLES = ["admin", "marketing", "desk", "viewer"];

  document.getElementById("secret-done").addEventListener("click", () => {
    document.getElementById("secret-password").textContent = "";
    secret.hidden = true;
  });

  function actions(u) {
    const change = (body, done) => async () => {
      await Mall.api("PATCH", `/api/v1/ops/users/${u.id}`, body);
      Mall.toast(t(done, {name: u.username}));
      await load();
    };
    const role = h("select", {"aria-label": t("ops_people.user.role_of", {name: u.username})},
      ROLES.map((r) => h("option", {value: r, selected: r === u.role}, t("console.role." + r))));
    role.addEventListener("change", async () => {
      const ok = await Mall.act(role, async () => { await change({role: role.value}, "ops_people.users.role_changed")(); return true; });
      if (!ok) role.value = u.role;
    });
    return h("div", {class: "row-actions"}, role,
      h("button", {type: "button", class: u.active ? "danger" : null, onclick: (e) => Mall.act(e.currentTarget, async () => {
        if (u.active && !window.confirm(t("ops_people.users.deactivate_confirm", {name: u.username}))) return;
        await change({active: !u.active}, u.active ? "ops_people.users.deactivated" : "ops_people.users.reactivated")();
      })}, t(u.active ? "ops_people.users.deactivate" : "ops_people.users.reactivate")),
      h("button", {type: "button", onclick: (e) => Mall.act(e.currentTarget, async () => {
        await Mall.api("POST", `/api/v1/ops/users/${u.id}/unlock`);
        Mall.toast(t("ops_people.users.unlocked", {name: u.username}));
      })}, t("ops_people.users.unlock")));
  }

  async function load() {
    const found = await Mall.api("GET", "/api/v1/ops/users");
    Mall.table(list, [
      {title: "ops_people.user.username", value: (u) => u.username + (u.id === page.me ? " " + t("ops_people.users.me") : "")},
      {title: "ops_people.user.role", value: (u) => t("console.role." + u.role)},
      {title: "ops_people.user.status", value: (u) => People.badge(u.active, "ops_people.active", "ops_people.deactivated")},
      {title: "ops_people.user.created_at", value: (u) => Mall.when("date", u.created_at)},
      {title: "console.actions", value: actions},
    ], found.users, {rowData: (u) => ({userId: String(u.id)})});
  }

  const form = document.getElementById("create");
  Mall.form(form, async (values) => {
    const body = {username: values.username || "", role: values.role};
    if (values.password) body.password = values.password;
    const created = await Mall.api("POST", "/api/v1/ops/users", body);
    if (created.password) {
      document.getElementById("secret-title").textContent = t("ops_people.users.password_for", {name: created.username});
      document.getElementById("secret-password").textContent = created.password;
      secret.hidden = false;
    } else {
      Mall.toast(t("ops_people.users.created", {name: created.username}));
    }
    form.reset();
    await load();
  }, {codes: {"ops.weak_password": "password", "ops.username_taken": "username"}});

  load().catch((err) => Mall.failed(list.parentElement, err)).finally(() => Mall.ready());
})();
