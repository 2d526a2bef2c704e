/* The floor plan's drawing: the SVG map of one floor in metres (the API's own coordinates, y growing downwards
 * as on the screen) and the conversion between screen pixels and metres. plan.js owns the state and the
 * pointer; FloorMap(svg, state) draws what the state says: the floor's outline, zones (the one being edited
 * with its draft corners), stores, gateways (squares) and beacons (circles) coloured by fleet health, and the
 * corners of a zone being drawn. Markers and labels are sized in screen pixels, whatever the zoom. */
"use strict";

window.FloorMap = function (svg, state) {
  const {t} = Mall;
  const HEALTH = {never_seen: "never", silent: "silent", battery_low: "battery"};

  // --- geometry ------------------------------------------------------------------------------------------
  const round = (v) => Math.round(v * 10) / 10;
  const fmt = (v) => round(v).toFixed(1);

  const toMetres = (event) => Mall.svgPoint(svg, event);
  const pxPerMetre = () => Mall.svgScale(svg);

  function screenDistance(a, b) { return Math.hypot(a[0] - b[0], a[1] - b[1]) * pxPerMetre(); }

  function centroid(points) {
    const n = points.length || 1;
    return [points.reduce((s, p) => s + p[0], 0) / n, points.reduce((s, p) => s + p[1], 0) / n];
  }

  function fit() {
    const points = [];
    const floor = currentFloor();
    if (floor) points.push(...floor.outline);
    for (const zone of state.plan.zones) points.push(...zone.polygon);
    for (const thing of [...state.plan.stores, ...state.plan.beacons, ...state.plan.gateways]) points.push([thing.x, thing.y]);
    state.vb = Mall.fitBox(points);
  }

  function zoomAt(mx, my, factor) {
    state.vb = Mall.zoomBox(state.vb, mx, my, factor);
    render();
  }

  // --- drawing -------------------------------------------------------------------------------------------
  const s = Mall.svg;

  const points = (list) => list.map(([x, y]) => `${x},${y}`).join(" ");
  const health = (problems) => (problems && problems.length ? HEALTH[problems[0]] : "ok");
  const currentFloor = () => state.floors.find((f) => f.number === state.floor);
  const isSelected = (kind, id) => state.selected && state.selected.kind === kind && state.selected.id === id;

  function render() {
    const vb = state.vb;
    svg.setAttribute("viewBox", `${vb.x} ${vb.y} ${vb.w} ${vb.h}`);
    const k = 1 / pxPerMetre();  // metres per screen pixel: markers and labels keep their size on screen
    const layers = [];
    const floor = currentFloor();
    if (floor && floor.outline.length) layers.push(s("polygon", {class: "outline", points: points(floor.outline)}));
    for (const zone of state.plan.zones) {
      const corners = state.zone && state.zone.id === zone.id ? state.draft : zone.polygon;
      const [cx, cy] = centroid(corners);
      layers.push(s("g", {class: `zone kind-${zone.kind}${isSelected("zone", zone.id) ? " selected" : ""}`,
                          "data-kind": "zone", "data-id": zone.id, role: "button",
                          "aria-label": t("ops_floor.plan.zone_named", {name: zone.name})},
        s("polygon", {points: points(corners)}),
        s("text", {x: cx, y: cy, "font-size": 12 * k, "text-anchor": "middle", "dominant-baseline": "middle"}, zone.name)));
    }
    for (const store of state.plan.stores) {
      layers.push(s("g", {class: "store", "data-kind": "store", "data-id": store.id},
        s("circle", {cx: store.x, cy: store.y, r: 3 * k}),
        s("text", {x: store.x + 5 * k, y: store.y - 5 * k, "font-size": 11 * k}, store.name)));
    }
    for (const gateway of state.plan.gateways) {
      const size = 12 * k;
      layers.push(s("rect", {class: `marker gateway health-${health(gateway.problems)}${isSelected("gateway", gateway.id) ? " selected" : ""}`,
                             x: gateway.x - size / 2, y: gateway.y - size / 2, width: size, height: size, rx: 2 * k,
                             "data-kind": "gateway", "data-id": gateway.id, role: "button",
                             "aria-label": t("ops_floor.plan.gateway_named", {name: gateway.name})}));
    }
    for (const beacon of state.plan.beacons) {
      const name = beacon.label || `${beacon.major}/${beacon.minor}`;
      layers.push(s("circle", {class: `marker beacon health-${health(beacon.problems)}${isSelected("beacon", beacon.id) ? " selected" : ""}`,
                               cx: beacon.x, cy: beacon.y, r: 7 * k, "data-kind": "beacon", "data-id": beacon.id,
                               role: "button", "aria-label": t("ops_floor.plan.beacon_named", {name})}));
      layers.push(s("text", {x: beacon.x + 9 * k, y: beacon.y + 4 * k, "font-size": 11 * k}, name));
    }
    if (state.mode === "draw" || (state.mode === "zone" && state.draft.length)) {
      const draft = s("g", {class: "draft"}, s("polyline", {points: points(
        state.mode === "zone" && state.draft.length > 2 ? [...state.draft, state.draft[0]] : state.draft)}));
      state.draft.forEach(([x, y], index) => {
        draft.append(s("circle", {class: "vertex", cx: x, cy: y, r: 6 * k, "data-kind": state.mode === "zone" ? "vertex" : "corner",
                                  "data-index": index, role: "button",
                                  "aria-label": t("ops_floor.plan.corner", {n: index + 1})}));
      });
      layers.push(draft);
    }
    if (state.mode === "place" && state.placing) {
      layers.push(s("circle", {class: "placing-at", cx: state.placing[0], cy: state.placing[1], r: 9 * k}));
    }
    svg.replaceChildren(...layers);
  }

  return {round, fmt, toMetres, pxPerMetre, screenDistance, fit, zoomAt, render, currentFloor};
};
