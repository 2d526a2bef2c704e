/* Fleet health and the alerts feed. The beacons and gateways with their battery, last seen time and problems
 * (filtered here, by problem); the open alerts (GET /api/v1/ops/alerts), asked again every 30 s without a page
 * reload; "acknowledge" (the desk or an admin) takes an alert off the open feed. */
"use strict";

(function () {
  const {h, t, api} = Mall;
  const cfg = Mall.config.page;
  const filter = document.getElementById("problem-filter");
  const feed = document.getElementById("alerts");
  const fleet = {beacons: [], gateways: []};

  function badges(problems) {
    if (!problems.length) return h("span", {class: "badge ok"}, t("ops_floor.health.ok"));
    return problems.map((p) => h("span", {class: "badge " + (p === "battery_low" ? "warn" : "bad")}, t("ops_floor.problem." + p), " "));
  }

  function shown(row) {
    const wanted = filter.value;
    if (!wanted) return true;
    if (wanted === "any") return row.problems.length > 0;
    return row.problems.includes(wanted);
  }

  function floorLink(row) {
    return h("a", {href: `/console/ops/floor-plan?floor=${row.floor}`}, t("ops_floor.fleet.on_floor", {floor: row.floor}));
  }

  function drawFleet() {
    Mall.table(document.getElementById("beacons"), [
      {title: "ops_floor.beacon.label", value: (b) => b.label || "—"},
      {title: "ops_floor.beacon.identity", value: (b) => `${b.major}/${b.minor}`},
      {title: "ops_floor.fleet.where", value: floorLink},
      {title: "ops_floor.fleet.battery", num: true, value: (b) => (b.health.battery_mv ? `${Mall.number(b.health.battery_mv)} mV` : "—")},
      {title: "ops_floor.fleet.last_seen", value: (b) => Mall.when("datetime", b.health.last_seen_at)},
      {title: "ops_floor.fleet.problems", value: (b) => badges(b.problems)},
    ], fleet.beacons.filter(shown), {empty: "ops_floor.fleet.none", rowData: (b) => ({beaconId: b.id})});
    Mall.table(document.getElementById("gateways"), [
      {title: "ops_floor.gateway.name", value: (g) => g.name},
      {title: "ops_floor.fleet.where", value: floorLink},
      {title: "ops_floor.fleet.last_seen", value: (g) => Mall.when("datetime", g.last_seen_at)},
      {title: "ops_floor.fleet.problems", value: (g) => badges(g.problems)},
    ], fleet.gateways.filter(shown), {empty: "ops_floor.fleet.none", rowData: (g) => ({gatewayId: g.id})});
  }

  function drawAlerts(alerts) {
    if (!alerts.length) {
      feed.replaceChildren(h("li", {class: "muted"}, t("ops_floor.alerts.none")));
      return;
    }
    feed.replaceChildren(...alerts.map((alert) => h("li", {dataset: {alertId: alert.id}},
      h("span", {class: "badge " + (alert.problem === "battery_low" ? "warn" : "bad")}, t("ops_floor.problem." + alert.problem)),
      h("span", {class: "what"}, t("ops_floor.alerts.subject_" + alert.subject, {name: alert.label}),
        h("br"), h("span", {class: "muted small"}, t("ops_floor.alerts.raised", {when: Mall.when("datetime", alert.raised_at)}))),
      cfg.may_acknowledge ? h("button", {type: "button", onclick: (event) => acknowledge(event.currentTarget, alert)},
                              t("ops_floor.alerts.acknowledge")) : null)));
  }

  async function acknowledge(button, alert) {
    await Mall.act(button, async () => {
      await api("POST", `/api/v1/ops/alerts/${alert.id}/acknowledge`);
      Mall.toast(t("ops_floor.alerts.acknowledged", {name: alert.label}));
      await loadAlerts();
    });
  }

  async function loadAlerts() {
    const answer = await api("GET", "/api/v1/ops/alerts");
    drawAlerts(answer.alerts);
  }

  async function loadFleet() {
    const [beacons, gateways] = await Promise.all([api("GET", "/api/v1/ops/beacons"), api("GET", "/api/v1/ops/gateways")]);
    fleet.beacons = beacons.beacons;
    fleet.gateways = gateways.gateways;
    drawFleet();
  }

  filter.addEventListener("change", drawFleet);

  Promise.all([loadAlerts(), loadFleet()]).then(() => {
    Mall.ready();
    // The feed follows the clock's beacon-health job without a reload; a failed refresh waits for the next one.
    setInterval(() => {
      Promise.all([loadAlerts(), loadFleet()]).catch((err) => Mall.toast(Mall.errorText(err), "error"));
    }, (cfg.refresh_s || 30) * 1000);
  }).catch((err) => {
    Mall.failed(document.querySelector(".two-col"), err);
    Mall.ready();
  });
})();
