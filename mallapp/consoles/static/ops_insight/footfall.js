/* Footfall and dwell by zone, floor and time slot: a heat map drawn over the floor plan (the zones' polygons in
 * metres registered with ECharts as a GeoJSON map), a zone × hour heat table and a per-zone summary.
 * Reads GET /api/v1/ops/floors, /floor-plan?floor=, /footfall and /footfall/hours?floor= (the last three in
 * parallel); the time slot and the metric only redraw. */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("period-form");
  const fromHour = $("from-hour"), toHour = $("to-hour"), metric = $("metric"), floorSelect = $("floor");
  const main = $("footfall");
  let loaded = null;   // {floor, plan, footfall, hours}

  for (const select of [fromHour, toHour]) {
    select.replaceChildren(...Insight.HOURS.map((h) => Mall.h("option", {value: h}, Insight.hourLabel(h))));
  }
  fromHour.value = Insight.param("from_hour") || "0";
  toHour.value = Insight.param("to_hour") || "23";

  function slot() {
    const a = Number(fromHour.value), b = Number(toHour.value);
    return [Math.min(a, b), Math.max(a, b)];
  }

  /** Visits and mean dwell (minutes) of a zone within the slot. */
  function within(zoneHours, lo, hi) {
    let visits = 0, dwell = 0;
    for (let h = lo; h <= hi; h++) { visits += zoneHours.visits[h]; dwell += zoneHours.dwell_seconds[h]; }
    return {visits, dwellMinutes: visits ? Math.round(dwell / visits / 6) / 10 : 0};
  }

  function ring(points) {
    const closed = points.map(([x, y]) => [x, y]);
    if (closed.length && (closed[0][0] !== closed.at(-1)[0] || closed[0][1] !== closed.at(-1)[1])) closed.push(closed[0]);
    return closed;
  }

  function draw() {
    if (!loaded) return;
    const [lo, hi] = slot();
    const byZone = new Map(loaded.hours.zones.map((z) => [z.zone_id, z]));
    const key = metric.value === "dwell" ? "dwellMinutes" : "visits";
    const zones = loaded.plan.zones.filter((z) => z.polygon.length >= 3);
    const mapName = "mall-floor-" + loaded.floor.number;
    const features = [];
    if (loaded.floor.outline.length >= 3) {
      features.push({type: "Feature", properties: {name: "outline"},
                     geometry: {type: "Polygon", coordinates: [ring(loaded.floor.outline)]}});
    }
    for (const z of zones) {
      features.push({type: "Feature", properties: {name: String(z.id)}, geometry: {type: "Polygon", coordinates: [ring(z.polygon)]}});
    }
    echarts.registerMap(mapName, {type: "FeatureCollection", features});
    const values = zones.map((z) => {
      const hours = byZone.get(z.id);
      const v = hours ? within(hours, lo, hi) : {visits: 0, dwellMinutes: 0};
      return {name: String(z.id), value: v[key], zone: z, visits: v.visits, dwell: v.dwellMinutes};
    });
    const names = new Map(zones.map((z) => [String(z.id), z.name]));
    const max = Math.max(1, ...values.map((v) => v.value));
    Mall.chart($("floor-map"), {
      tooltip: {trigger: "item", formatter: (p) => (p.data && p.data.zone ? `${p.data.zone.name}<br>${Insight.t("footfall.visits")}: ` +
        `${Mall.number(p.data.visits)}<br>${Insight.t("footfall.mean_dwell")}: ${Insight.t("footfall.minutes", {count: p.data.dwell})}`
        : Insight.t("footfall.outline"))},
      visualMap: {min: 0, max, left: 8, bottom: 8, calculable: true, inRange: {color: ["#fff5f0", "#fc9272", "#c7000b"]},
                  text: [Mall.number(max), "0"]},
      series: [{type: "map", map: mapName, roam: true, aspectScale: 1, selectedMode: false,
                itemStyle: {areaColor: "#f0f1f2", borderColor: "#8f959e"},
                label: {show: true, formatter: (p) => names.get(p.name) || "", fontSize: 11},
                emphasis: {label: {show: true}},
                data: values}],
    });
    // The zone × hour table: the slot's hours, the chosen metric, coloured against the table's largest value.
    const hours = Insight.HOURS.slice(lo, hi + 1);
    const rows = loaded.hours.zones.map((z) => ({z, cells: hours.map((h) => (key === "visits" ? z.visits[h]
      : (z.visits[h] ? Math.round(z.dwell_seconds[h] / z.visits[h] / 6) / 10 : 0))), total: within(z, lo, hi)[key]}));
    const top = Math.max(0, ...rows.flatMap((r) => r.cells));
    $("hours-table").replaceChildren(
      Mall.h("thead", {}, Mall.h("tr", {}, Mall.h("th", {}, Insight.t("footfall.zone")),
        hours.map((h) => Mall.h("th", {class: "num", title: Insight.hourLabel(h)}, String(h).padStart(2, "0"))), Mall.h("th", {class: "num"}, Insight.t("total")))),
      Mall.h("tbody", {}, rows.length ? rows.map((r) => Mall.h("tr", {dataset: {zone: r.z.zone_id}}, Mall.h("td", {}, r.z.name),
        r.cells.map((v) => Insight.heatCell(Mall.number(v), v, top)), Mall.h("td", {class: "num"}, Mall.number(r.total))))
        : Mall.h("tr", {class: "empty"}, Mall.h("td", {colspan: hours.length + 2}, Mall.t("console.empty")))));
  }

  function summary() {
    const onFloor = loaded.footfall.zones.filter((z) => z.floor === loaded.floor.number);
    Mall.table($("summary-table"), [
      {title: "console_ops_insight.footfall.zone", value: (z) => z.name},
      {title: "console_ops_insight.footfall.visits", value: (z) => Mall.number(z.visits), num: true},
      {title: "console_ops_insight.members", value: (z) => Mall.number(z.members), num: true},
      {title: "console_ops_insight.footfall.mean_dwell", num: true,
       value: (z) => Insight.t("footfall.minutes", {count: Math.round(z.mean_dwell_seconds / 6) / 10})},
    ], onFloor, {rowData: (z) => ({zone: z.zone_id})});
  }

  async function load(floors, values) {
    const floor = floors.find((f) => String(f.number) === String(values.floor)) || floors[0];
    const period = `since=${encodeURIComponent(values.since)}&until=${encodeURIComponent(values.until)}`;
    const [plan, footfall, hours] = await Promise.all([
      Mall.api("GET", `/api/v1/ops/floor-plan?floor=${floor.number}`),
      Mall.api("GET", `/api/v1/ops/footfall?${period}`),
      Mall.api("GET", `/api/v1/ops/footfall/hours?floor=${floor.number}&${period}`),
    ]);
    loaded = {floor, plan, footfall, hours};
    floorSelect.value = String(floor.number);
    summary();
    draw();
  }

  async function start() {
    const floors = (await Mall.api("GET", "/api/v1/ops/floors")).floors;
    if (!floors.length) {
      main.hidden = true;
      $("no-floors").hidden = false;
      return;
    }
    floorSelect.replaceChildren(...floors.map((f) => Mall.h("option", {value: f.number}, f.name)));
    const ground = floors.find((f) => f.number === 1) || floors[0];
    $("since").value = Insight.param("since") || Mall.today();
    $("until").value = Insight.param("until") || Mall.today();
    await load(floors, {floor: Insight.param("floor") || ground.number, since: $("since").value, until: $("until").value});
    Mall.form(form, (values) => load(floors, values));
    floorSelect.addEventListener("change", () => form.requestSubmit());
  }

  for (const el of [fromHour, toHour, metric]) el.addEventListener("change", draw);
  start().then(Mall.ready, (err) => { Mall.failed(main, err); Mall.ready(); });
})();
