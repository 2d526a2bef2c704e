/* The member reports as charts: T1–T4 and their movements, the pyramid, the 80/20 share, the >10 visits and
 * >10,000 yuan shares, RFM, the lifecycle, six-month retention cohorts and the lifetime-value distribution.
 * Each from its GET /api/v1/ops/reports/... endpoint (seven reads in parallel), for the month picked. */
"use strict";

(function () {
  const R = "/api/v1/ops/reports/";
  const TIERS = ["T1", "T2", "T3", "T4"];
  const STATES = ["new", "active", "weakening", "lost", "reactivated"];
  const PALETTE = ["#c7000b", "#3370ff", "#2ea121", "#de7802", "#7f3bf5", "#14c0ff", "#f5c400", "#8f959e"];
  const form = document.getElementById("month-form");
  const monthInput = document.getElementById("month");
  const main = document.getElementById("reports");
  const L = Insight.label;
  const $ = (id) => document.getElementById(id);

  function fill(id, head, rows) {
    $(id).replaceChildren(
      Mall.h("thead", {}, Mall.h("tr", {}, head.map((c, i) => Mall.h("th", {class: i ? "num" : null}, c)))),
      Mall.h("tbody", {}, rows.length ? rows : Mall.h("tr", {class: "empty"},
        Mall.h("td", {colspan: head.length}, Mall.t("console.empty")))));
  }
  const row = (...cells) => Mall.h("tr", {}, cells.map((c, i) => c instanceof Node ? c : Mall.h("td", {class: i ? "num" : null}, c)));
  const share = (x) => Mall.percent(x);
  const month = (iso) => iso.slice(0, 7);

  function bars(id, names, values, color) {
    Mall.chart($(id), {
      tooltip: {trigger: "axis"}, grid: {left: 120, right: 24, top: 16, bottom: 24},
      xAxis: {type: "value", minInterval: 1}, yAxis: {type: "category", data: names, inverse: true},
      series: [{type: "bar", data: values, itemStyle: {color: color || PALETTE[0]}, label: {show: true, position: "right"}}],
    });
  }

  function tTiers(body) {
    const keys = [...TIERS, "none"];
    bars("t-tiers-chart", keys.map((k) => L("tier", k)), keys.map((k) => body.counts[k] || 0));
    fill("t-tiers-table", [Insight.t("reports.to_tier"), Insight.t("members")],
         keys.map((k) => row(L("tier", k), Mall.number(body.counts[k] || 0))));
    const matrix = body.transitions;
    if (!matrix) {
      $("transitions-chart").replaceChildren(Mall.h("p", {class: "muted"}, Insight.t("reports.no_previous")));
      fill("transitions-table", [Insight.t("reports.from_tier")], []);
      return;
    }
    let max = 0;
    const data = [];
    keys.forEach((from, y) => keys.forEach((to, x) => {
      const n = (matrix[from] || {})[to] || 0;
      max = Math.max(max, n);
      data.push([x, y, n]);
    }));
    Mall.chart($("transitions-chart"), {
      tooltip: {position: "top"}, grid: {left: 120, right: 24, top: 16, bottom: 64},
      xAxis: {type: "category", data: keys.map((k) => L("tier", k)), name: Insight.t("reports.to_tier"),
              nameLocation: "middle", nameGap: 40, splitArea: {show: true}},
      yAxis: {type: "category", data: keys.map((k) => L("tier", k)), inverse: true, splitArea: {show: true}},
      visualMap: {min: 0, max: Math.max(1, max), show: false, inRange: {color: ["#ffffff", "#c7000b"]}},
      series: [{type: "heatmap", data, label: {show: true}}],
    });
    fill("transitions-table", [`${Insight.t("reports.from_tier")} → ${Insight.t("reports.to_tier")}`, ...keys.map((k) => L("tier", k))],
         keys.map((from) => Mall.h("tr", {}, Mall.h("td", {}, L("tier", from)),
           keys.map((to) => Insight.heatCell(Mall.number((matrix[from] || {})[to] || 0), (matrix[from] || {})[to] || 0, max)))));
  }

  function groupTable(id, group, rows) {
    fill(id, ["", Insight.t("members"), Insight.t("spend"), Insight.t("share_of_spend")],
         rows.map((g) => row(L(group, g.key), Mall.number(g.members), Mall.yuan(g.spend_fen), share(g.share_of_spend))));
  }

  function valuable(body) {
    const levels = body.pyramid.filter((g) => g.key !== "none");
    Mall.chart($("pyramid-chart"), {
      tooltip: {trigger: "item"},
      series: [{type: "funnel", sort: "ascending", left: "10%", width: "80%", gap: 2, minSize: "12%",
                label: {show: true, position: "inside", formatter: (p) => `${p.name}\n${Mall.number(p.value)}`},
                data: levels.map((g, i) => ({name: L("pyramid", g.key), value: g.members, itemStyle: {color: PALETTE[i]}}))}],
    });
    groupTable("pyramid-table", "pyramid", body.pyramid);
    $("top-20-share").textContent = share(body.top_20_share);
    $("t1-t2-share").textContent = share(body.t1_t2_share);
    Mall.chart($("valuable-chart"), {
      tooltip: {trigger: "item", formatter: (p) => `${p.name}: ${Mall.yuan(p.value)} (${p.percent}%)`},
      legend: {bottom: 0},
      series: [{type: "pie", radius: ["35%", "65%"], label: {formatter: (p) => `${p.name}\n${p.percent}%`},
                data: body.pyramid.map((g, i) => ({name: L("pyramid", g.key), value: g.spend_fen,
                                                   itemStyle: {color: PALETTE[i]}}))}],
    });
  }

  function thresholds(body) {
    const f = body.frequent_visitors, b = body.big_spenders;
    $("frequent-label").textContent = Insight.t("reports.frequent", {count: Mall.number(f.threshold_visits)});
    $("big-label").textContent = Insight.t("reports.big_spenders", {amount: Mall.yuan(b.threshold_fen)});
    $("frequent").textContent = Mall.number(f.members);
    $("big-spenders").textContent = Mall.number(b.members);
    $("frequent-shares").textContent = [Insight.t("reports.of_members", {share: share(f.share_of_members)}),
                                        Insight.t("reports.of_visiting", {share: share(f.share_of_visiting)})].join(" · ");
    $("big-shares").textContent = [Insight.t("reports.of_members", {share: share(b.share_of_members)}),
                                   Insight.t("reports.of_buying", {share: share(b.share_of_buying)}),
                                   Insight.t("reports.of_spend", {share: share(b.share_of_spend)})].join(" · ");
    const names = [$("frequent-label").textContent, $("big-label").textContent];
    Mall.chart($("thresholds-chart"), {
      tooltip: {trigger: "axis", valueFormatter: (v) => (v === null ? "—" : v.toFixed(1) + "%")},
      legend: {bottom: 0}, grid: {left: 48, right: 16, top: 16, bottom: 56},
      xAxis: {type: "category", data: [Insight.t("reports.of_members", {share: ""}).trim(),
                                       Insight.t("reports.of_spend", {share: ""}).trim()]},
      yAxis: {type: "value", max: 100, axisLabel: {formatter: "{value}%"}},
      series: [
        {name: names[0], type: "bar", data: [pct(f.share_of_members), null], itemStyle: {color: PALETTE[1]}},
        {name: names[1], type: "bar", data: [pct(b.share_of_members), pct(b.share_of_spend)], itemStyle: {color: PALETTE[0]}},
      ],
    });
  }
  const pct = (x) => (x === null || x === undefined ? null : Math.round(x * 1000) / 10);

  function rfm(body) {
    bars("rfm-chart", body.segments.map((g) => L("rfm", g.key)), body.segments.map((g) => g.members), PALETTE[1]);
    groupTable("rfm-table", "rfm", body.segments);
  }

  function lifecycle(body) {
    const states = [...STATES, ...Object.keys(body.counts).filter((s) => !STATES.includes(s))];
    Mall.chart($("lifecycle-chart"), {
      tooltip: {trigger: "item"},
      series: [{type: "funnel", sort: "none", left: "10%", width: "80%", gap: 2, minSize: "15%",
                label: {show: true, position: "inside", formatter: (p) => `${p.name} ${Mall.number(p.value)}`},
                data: states.map((s, i) => ({name: L("lifecycle_state", s), value: body.counts[s] || 0,
                                             itemStyle: {color: PALETTE[i % PALETTE.length]}}))}],
    });
    fill("lifecycle-table", ["", Insight.t("members")],
         states.map((s) => row(L("lifecycle_state", s), Mall.number(body.counts[s] || 0))));
    fill("flows-table", [Insight.t("reports.from_state"), Insight.t("reports.to_state"), Insight.t("reports.cause"),
                         Insight.t("members")],
         body.flows.map((f) => Mall.h("tr", {}, Mall.h("td", {}, L("lifecycle_state", f.from_state)),
                                      Mall.h("td", {}, L("lifecycle_state", f.to_state)), Mall.h("td", {}, L("cause", f.cause)),
                                      Mall.h("td", {class: "num"}, Mall.number(f.members)))));
  }

  function cohorts(body) {
    const n = body.retention_months;
    const after = Array.from({length: n}, (_, i) => Insight.t("reports.after", {n: i + 1}));
    const data = [];
    body.cohorts.forEach((c, y) => c.active_after.forEach((v, x) => {
      if (v !== null && c.members) data.push([x, y, Math.round((v / c.members) * 1000) / 10]);
    }));
    Mall.chart($("cohorts-chart"), {
      tooltip: {position: "top", formatter: (p) => `${month(body.cohorts[p.value[1]].month)} · ${after[p.value[0]]}: ${p.value[2]}%`},
      grid: {left: 80, right: 24, top: 16, bottom: 32},
      xAxis: {type: "category", data: after, splitArea: {show: true}},
      yAxis: {type: "category", data: body.cohorts.map((c) => month(c.month)), inverse: true, splitArea: {show: true}},
      visualMap: {min: 0, max: 100, show: false, inRange: {color: ["#ffffff", "#3370ff"]}},
      series: [{type: "heatmap", data, label: {show: true, formatter: (p) => p.value[2] + "%"}}],
    });
    fill("cohorts-table", [Insight.t("reports.cohort_month"), Insight.t("members"), ...after, Insight.t("reports.retention")],
         body.cohorts.map((c) => Mall.h("tr", {}, Mall.h("td", {}, month(c.month)), Mall.h("td", {class: "num"}, Mall.number(c.members)),
           c.active_after.map((v) => (v === null ? Mall.h("td", {class: "num muted"}, "—")
             : Insight.heatCell(Mall.number(v), c.members ? v / c.members : 0, 1))),
           Mall.h("td", {class: "num"}, share(c.share)))));
  }

  function lifetimeValue(body) {
    const q = body.quantiles || {};
    $("ltv-summary").textContent = Insight.t("reports.ltv_members", {count: Mall.number(body.members),
      mean: Mall.yuan(body.mean_fen), median: q.p50 === undefined ? "—" : Mall.yuan(q.p50)});
    const names = body.histogram.map((b) => (b.to_fen === null ? Insight.t("reports.bin_open", {from: Mall.yuan(b.from_fen)})
                                              : `${Mall.yuan(b.from_fen)} – ${Mall.yuan(b.to_fen)}`));
    Mall.chart($("ltv-chart"), {
      tooltip: {trigger: "axis"}, grid: {left: 56, right: 16, top: 16, bottom: 72},
      xAxis: {type: "category", data: names, axisLabel: {rotate: 35, fontSize: 10}},
      yAxis: {type: "value", minInterval: 1},
      series: [{type: "bar", barCategoryGap: "2%", data: body.histogram.map((b) => b.members), itemStyle: {color: PALETTE[2]}}],
    });
    fill("ltv-table", [Insight.t("reports.bin"), Insight.t("members")],
         body.histogram.filter((b) => b.members).map((b, i) => row(names[body.histogram.indexOf(b)], Mall.number(b.members))));
  }

  async function load(monthValue) {
    const q = monthValue ? "?month=" + encodeURIComponent(monthValue) : "";
    const names = ["t-tiers", "valuable-share", "frequent-visitors-and-big-spenders", "rfm", "lifecycle", "cohorts",
                   "lifetime-value"];
    const [t, v, th, r, l, c, ltv] = await Promise.all(names.map((name) => Mall.api("GET", R + name + q)));
    main.hidden = false;
    $("not-computed").hidden = true;
    monthInput.value = month(t.month);
    $("as-of").textContent = Insight.t("reports.as_of", {month: month(t.month), day: Mall.when("date", t.as_of + "T12:00:00Z")});
    tTiers(t); valuable(v); thresholds(th); rfm(r); lifecycle(l); cohorts(c); lifetimeValue(ltv);
  }

  function notComputed(err) {
    if (err instanceof Mall.ApiError && err.code === "reports.not_computed") {
      main.hidden = true;
      $("not-computed").hidden = false;
      return true;
    }
    return false;
  }

  Mall.form(form, async (values) => {
    try {
      await load(values.month);
    } catch (err) {
      if (!notComputed(err)) throw err;
    }
    history.replaceState(null, "", values.month ? "?month=" + encodeURIComponent(values.month) : "?");
  });

  const asked = Insight.param("month");
  load(asked).catch(async (err) => {
    // A month typed into the address and refused (?month=2026-13): the latest month, the error by the picker.
    if (!asked || !(err instanceof Mall.ApiError) || err.status !== 400) throw err;
    await load(null);
    monthInput.value = asked;
    Mall.showError(form, err);
  }).then(Mall.ready, (err) => {
    if (!notComputed(err)) Mall.failed(main, err);
    Mall.ready();
  });
})();
