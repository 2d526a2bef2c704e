/* One campaign: its settings, launch and cancel (marketing), and its result against the control group
 * (GET .../report: conversion and spend per member of each arm, the uplift with its 95% interval), as charts and a table. */
"use strict";

(function () {
  const {h, t} = Mall;
  const page = Mall.config.page;
  const base = `/api/v1/ops/campaigns/${page.campaign_id}`;
  const $ = (id) => document.getElementById(id);

  function audienceText(rules) {
    const parts = [];
    for (const [name, value] of Object.entries(rules || {})) {
      if (value === null || value === undefined || (Array.isArray(value) && !value.length)) continue;
      if (name === "bought_within_days" && !(rules.bought_at_stores || []).length && !(rules.bought_in_categories || []).length) continue;
      parts.push(`${Mall.t("ops_people.audience." + name)}: ${Array.isArray(value) ? value.join(", ") : value}`);
    }
    return parts.length ? parts.join("；") : t("ops_people.audience.everyone");
  }

  function showCampaign(c) {
    $("name").textContent = c.name;
    $("status").textContent = People.label("ops_people.campaign_status", c.status);
    $("status").className = "badge " + ({running: "ok", scheduled: "warn", cancelled: "bad"}[c.status] || "");
    const steps = c.steps.map((s) => t("ops_people.step.summary", {days: s.after_days,
      kind: People.label("ops_people.offer", s.offer.kind), title: s.offer.title}));
    $("facts").replaceChildren(h("dl", {class: "facts"}, [
      ["ops_people.builder.audience", audienceText(c.audience)],
      ["ops_people.builder.steps", steps.join("；")],
      ["ops_people.campaign.timing", People.label("ops_people.timing", c.timing) +
        (c.start_at ? " · " + Mall.when("datetime", c.start_at) : "") +
        (c.lifecycle_state ? " · " + People.label("ops_people.lifecycle", c.lifecycle_state) : "")],
      ["ops_people.campaign.control_pct", c.control_pct + "%"],
      ["ops_people.campaign.window_days", t("ops_people.days", {days: c.window_days})],
      ["ops_people.campaign.launched_at", Mall.when("datetime", c.launched_at)],
    ].flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])));
    $("launch").hidden = !(page.may.ops_marketing && c.status === "draft");
    $("cancel").hidden = !(page.may.ops_marketing && ["draft", "scheduled", "running"].includes(c.status));
  }

  function interval(i, format) {
    if (!i) return t("ops_people.report.not_enough");
    return t("ops_people.report.interval", {estimate: format(i.estimate), low: format(i.low), high: format(i.high)});
  }
  const points = (x) => (x >= 0 ? "+" : "") + (x * 100).toFixed(1) + t("ops_people.report.pp");
  const fenDiff = (x) => (x >= 0 ? "+" : "-") + Mall.yuan(Math.round(Math.abs(x)));

  function showReport(r) {
    $("as-of").textContent = t(r.windows_closed ? "ops_people.report.final" : "ops_people.report.provisional",
                               {at: Mall.when("datetime", r.as_of), days: r.window_days});
    $("uplift").replaceChildren(
      h("div", {class: "card"}, h("div", {class: "kpi-label"}, t("ops_people.report.conversion_uplift")),
        h("div", {class: "kpi"}, r.conversion_uplift ? points(r.conversion_uplift.estimate) : "—"),
        h("div", {class: "kpi-sub"}, interval(r.conversion_uplift, points))),
      h("div", {class: "card"}, h("div", {class: "kpi-label"}, t("ops_people.report.spend_uplift")),
        h("div", {class: "kpi"}, r.spend_uplift_fen ? fenDiff(r.spend_uplift_fen.estimate) : "—"),
        h("div", {class: "kpi-sub"}, interval(r.spend_uplift_fen, fenDiff))));
    const arms = [{arm: "treated", ...r.treated}, {arm: "control", ...r.control}];
    Mall.table($("arms"), [
      {title: "ops_people.report.arm", value: (a) => t("ops_people.report." + a.arm)},
      {title: "ops_people.report.members", num: true, value: (a) => Mall.number(a.members)},
      {title: "ops_people.report.contacted", num: true, value: (a) => Mall.number(a.contacted)},
      {title: "ops_people.report.buyers", num: true, value: (a) => Mall.number(a.buyers)},
      {title: "ops_people.report.purchases", num: true, value: (a) => Mall.number(a.purchases)},
      {title: "ops_people.report.spend", num: true, value: (a) => Mall.yuan(a.spend_fen)},
      {title: "ops_people.report.conversion", num: true, value: (a) => Mall.percent(a.conversion)},
      {title: "ops_people.report.spend_per_member", num: true,
       value: (a) => a.spend_per_member_fen === null ? "—" : Mall.yuan(Math.round(a.spend_per_member_fen))},
    ], arms, {rowData: (a) => ({arm: a.arm})});
    const names = [t("ops_people.report.treated"), t("ops_people.report.control")];
    const bar = (title, values, format) => ({
      title: {text: title, left: "center", textStyle: {fontSize: 14}},
      grid: {left: 60, right: 20, top: 40, bottom: 30},
      tooltip: {trigger: "axis", valueFormatter: format},
      xAxis: {type: "category", data: names},
      yAxis: {type: "value", axisLabel: {formatter: format}},
      series: [{type: "bar", barWidth: "40%", data: values.map((v, i) => ({value: v, itemStyle: {color: i ? "#8f959e" : "#c7000b"}})),
                label: {show: true, position: "top", formatter: (p) => format(p.value)}}],
    });
    Mall.chart($("conversion-chart"), bar(t("ops_people.report.conversion"),
      [r.treated.conversion || 0, r.control.conversion || 0], (v) => (v * 100).toFixed(1) + "%"));
    Mall.chart($("spend-chart"), bar(t("ops_people.report.spend_per_member"),
      [Math.round(r.treated.spend_per_member_fen || 0), Math.round(r.control.spend_per_member_fen || 0)], (v) => Mall.yuan(Math.round(v))));
    $("methods").replaceChildren(Object.entries(r.methods).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  async function load() {
    const [campaign, report] = await Promise.all([Mall.api("GET", base), Mall.api("GET", `${base}/report`)]);
    showCampaign(campaign);
    showReport(report);
  }

  for (const [id, action] of [["launch", "launch"], ["cancel", "cancel"]]) {
    $(id).addEventListener("click", (e) => Mall.act(e.currentTarget, async () => {
      if (action === "cancel" && !window.confirm(t("ops_people.campaign.cancel_confirm"))) return;
      showCampaign(await Mall.api("POST", `${base}/${action}`));
      Mall.toast(t(`ops_people.campaign.${action}_done`));
      await load();
    }));
  }

  load().catch((err) => Mall.failed($("campaign"), err)).finally(() => Mall.ready());
})();
