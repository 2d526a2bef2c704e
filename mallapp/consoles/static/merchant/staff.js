/* The merchant's staff: add (a generated password is shown once), change role, deactivate or activate, reset a
 * password (shown once; the old one and every session stop working), unlock after too many wrong passwords. */
"use strict";

(async function () {
  const base = "/api/v1/merchant/staff";
  const table = document.getElementById("staff");
  const card = document.getElementById("secret-card");
  const me = Mall.config.caller.username;

  function reveal(username, password) {
    document.getElementById("secret-title").textContent = Mall.t("merchant.staff.new_password_title", {username});
    document.getElementById("secret").textContent = password;
    card.hidden = false;
    card.scrollIntoView({block: "nearest"});
  }
  document.getElementById("secret-done").addEventListener("click", () => {
    document.getElementById("secret").textContent = "";
    card.hidden = true;
  });

  function actions(member) {
    const button = (text, fn, attrs) => {
      const el = Mall.h("button", {type: "button", ...(attrs || {})}, Mall.t(text));
      el.addEventListener("click", () => Mall.act(el, fn));
      return el;
    };
    const name = member.username;
    return Mall.h("div", {class: "actions"},
      button("merchant.staff.reset_password", async () => {
        if (!window.confirm(Mall.t("merchant.staff.reset_confirm", {username: name}))) return;
        const done = await Mall.api("POST", `${base}/${member.id}/password`, {});
        reveal(name, done.password);
      }),
      button("merchant.staff.unlock", async () => {
        await Mall.api("POST", `${base}/${member.id}/unlock`);
        Mall.toast(Mall.t("merchant.staff.unlocked", {username: name}));
      }),
      name === me ? null : member.active
        ? button("merchant.staff.deactivate", async () => {
          if (!window.confirm(Mall.t("merchant.staff.deactivate_confirm", {username: name}))) return;
          await Mall.api("PATCH", `${base}/${member.id}`, {active: false});
          await load();
        }, {class: "danger"})
        : button("merchant.staff.activate", async () => {
          await Mall.api("PATCH", `${base}/${member.id}`, {active: true});
          await load();
        }));
  }

  function roleSelect(member) {
    const select = Mall.h("select", {"aria-label": Mall.t("merchant.staff.change_role") + " " + member.username,
                                     disabled: member.username === me},
      ["manager", "cashier"].map((r) => Mall.h("option", {value: r, selected: r === member.role}, Mall.t("console.role." + r))));
    select.addEventListener("change", async () => {
      try {
        await Mall.api("PATCH", `${base}/${member.id}`, {role: select.value});
        Mall.toast(Mall.t("merchant.staff.role_changed", {username: member.username}));
      } catch (err) {
        select.value = member.role;
        Mall.toast(Mall.errorText(err), "error");
      }
    });
    return select;
  }

  async function load() {
    const answer = await Mall.api("GET", base);
    Mall.table(table, [
      {title: "merchant.staff.col_username", value: (s) => s.username},
      {title: "merchant.staff.col_role", value: roleSelect},
      {title: "merchant.staff.col_active", value: (s) => Mall.h("span", {class: "badge " + (s.active ? "ok" : "bad")},
        Mall.t(s.active ? "merchant.staff.active" : "merchant.staff.inactive"))},
      {title: "merchant.staff.col_created", value: (s) => Mall.when("date", s.created_at)},
      {title: "console.actions", value: actions},
    ], answer.staff, {rowData: (s) => ({username: s.username})});
  }

  Mall.form(document.getElementById("add-form"), async (values, form) => {
    const added = await Mall.api("POST", base, {username: values.username || "", role: values.role,
                                                password: values.password || undefined});
    form.reset();
    Mall.toast(Mall.t("merchant.staff.added", {username: added.username}));
    if (added.password) reveal(added.username, added.password);
    await load();
  }, {codes: {"staff.username_taken": "username", "staff.invalid_username": "username", "staff.weak_password": "password"}});

  try {
    await load();
  } catch (err) {
    Mall.failed(table.parentElement, err);
  }
  Mall.ready();
})();
