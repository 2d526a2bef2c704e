/* The walkable graph page: one floor of the graph ops imported, drawn as an SVG in metres (the file's own
 * coordinates; y grows downwards as on the screen, as on the floor-plan page) over the floor's outline.
 *
 * Nodes are marked by kind (the legend), walking edges are lines (closed ones dashed red), and the edges that
 * change floor are badges beside their landing ("↑L2"). Pan by dragging the background, zoom with the wheel or
 * the buttons. Clicking a node or an edge shows it in the side panel: a node can be a route's start or goal, an
 * admin can close or reopen an edge (confirmed first; the API's refusal appears beside the button). An admin
 * imports a GeoJSON file (the refusal's problems are listed by feature id and highlighted on the map); anyone
 * exports the current file and tries a route, drawn per floor with its steps in the page's language.
 * The graph's rules are the API's: this page only draws what GET /api/v1/ops/wayfinding/graph answers. */
"use strict";

(function () {
  const {h, t, api} = Mall;
  const cfg = Mall.config.page;
  const lang = Mall.config.locale;
  const GRAPH = "/api/v1/ops/wayfinding/graph";
  const CLICK_PX = 5;  // a press that moves less than this is a click, not a pan
  const svg = document.getElementById("wf-map");
  const picker = document.getElementById("wf-floor");
  const summaryEl = document.getElementById("wf-summary");
  const selectionEl = document.getElementById("wf-selection");
  const resultEl = document.getElementById("wf-result");
  const routeForm = document.getElementById("wf-route");
  const routeAnswer = document.getElementById("wf-route-answer");
  const importForm = document.getElementById("wf-import");

  const state = {floors: [], floor: null, nodes: new Map(), edges: [], summary: null, stores: [], version: 0,
                 vb: {x: -5, y: -5, w: 60, h: 40}, selected: null, highlight: new Set(), route: null};

  // --- the file's features as nodes and edges (display only: the API has already checked them) ------------
  function nodeKind(p) {
    if (p.highway === "elevator") return "lift";
    if (p.highway === "steps") return p.conveying ? "escalator" : "stairs";
    if (p.ramp === "yes") return "ramp";
    if (p.entrance) return "entrance";
    if (p.door === "yes" && p["mall:store"]) return "door";
    if (p.amenity || p["mall:amenity"]) return "amenity";
    return "junction";
  }

  function edgeKind(p) {
    if (p.highway === "elevator") return "lift";
    if (p.highway === "steps") return p.conveying ? "escalator" : "stairs";
    if (p.ramp === "yes" || p.incline) return "ramp";
    return "walk";
  }

  function readGraph(doc) {
    const nodes = new Map();
    const edges = [];
    for (const f of doc.features || []) {
      const p = f.properties || {};
      if (f.geometry && f.geometry.type === "Point") {
        const [x, y] = f.geometry.coordinates;
        nodes.set(String(f.id), {id: String(f.id), floor: Number(p.level), x, y, kind: nodeKind(p), props: p});
      }
    }
    for (const f of doc.features || []) {
      const p = f.properties || {};
      if (!f.geometry || f.geometry.type !== "LineString") continue;
      const a = nodes.get(p["mall:from"]), b = nodes.get(p["mall:to"]);
      if (!a || !b) continue;
      edges.push({id: String(f.id), a, b, kind: edgeKind(p), change: a.floor !== b.floor, closed: p["mall:closed"] === "yes",
                  coords: f.geometry.coordinates, props: p});
    }
    state.nodes = nodes;
    state.edges = edges;
    state.version = doc["mall:version"] || 0;
  }

  const floorName = (number) => {
    const floor = state.floors.find((f) => f.number === number);
    return floor ? floor.name : (number > 0 ? `L${number}` : `B${-number}`);
  };
  const nodeName = (node) => (lang === "en" && node.props["name:en"]) || node.props.name || "";
  const fmt = (v) => (Math.round(v * 10) / 10).toFixed(1);
  const edgeLength = (edge) => {
    if (edge.props["mall:length_m"] !== undefined) return Number(edge.props["mall:length_m"]);
    let total = 0;
    for (let i = 1; i < edge.coords.length; i++) {
      total += Math.hypot(edge.coords[i][0] - edge.coords[i - 1][0], edge.coords[i][1] - edge.coords[i - 1][1]);
    }
    return total;
  };
  const problemText = (p) => (Mall.has(`wayfinding_admin.problem.${p.kind}`) ? t(`wayfinding_admin.problem.${p.kind}`) : p.problem);

  // --- geometry: screen <-> metres through the SVG's own matrix ---------------------------------------------
  const toMetres = (event) => Mall.svgPoint(svg, event);
  const pxPerMetre = () => Mall.svgScale(svg);

  function fit() {
    const pts = [];
    const floor = state.floors.find((f) => f.number === state.floor);
    if (floor && floor.outline) pts.push(...floor.outline);
    for (const node of state.nodes.values()) if (node.floor === state.floor) pts.push([node.x, node.y]);
    state.vb = Mall.fitBox(pts);
  }

  function zoomAt(mx, my, factor) {
    state.vb = Mall.zoomBox(state.vb, mx, my, factor);
    render();
  }

  // --- drawing ------------------------------------------------------------------------------------------------
  const s = Mall.svg;

  const pts = (list) => list.map(([x, y]) => `${x},${y}`).join(" ");
  const isSelected = (kind, id) => state.selected && state.selected.kind === kind && state.selected.id === id;

  function mark(node, k) {
    const r = 6 * k, [x, y] = [node.x, node.y];
    switch (node.kind) {
      case "junction": return s("circle", {cx: x, cy: y, r: 3.5 * k});
      case "amenity": return s("circle", {cx: x, cy: y, r});
      case "door": case "lift": return s("rect", {x: x - r, y: y - r, width: 2 * r, height: 2 * r, rx: k});
      case "entrance": return s("polygon", {points: pts([[x, y - 1.2 * r], [x + r, y + 0.8 * r], [x - r, y + 0.8 * r]])});
      default: return s("polygon", {points: pts([[x, y - r], [x + r, y], [x, y + r], [x - r, y]])});  // stairs, escalator, ramp
    }
  }

  function render() {
    const vb = state.vb;
    svg.setAttribute("viewBox", `${vb.x} ${vb.y} ${vb.w} ${vb.h}`);
    const k = 1 / pxPerMetre();  // metres per screen pixel: marks and labels keep their size on screen
    const layers = [];
    const floor = state.floors.find((f) => f.number === state.floor);
    if (floor && floor.outline && floor.outline.length) layers.push(s("polygon", {class: "outline", points: pts(floor.outline)}));
    const badges = new Map();  // landing id -> floor-change edges drawn beside it so far
    for (const edge of state.edges) {
      const flags = `${edge.closed ? " closed" : ""}${state.highlight.has(edge.id) ? " problem" : ""}${isSelected("edge", edge.id) ? " selected" : ""}`;
      const label = t("ops_wayfinding.edge_named", {id: edge.id});
      if (!edge.change) {
        if (edge.a.floor !== state.floor) continue;
        layers.push(s("g", {class: `edge kind-${edge.kind}${flags}`, "data-kind": "edge", "data-id": edge.id, role: "button", "aria-label": label},
          s("polyline", {class: "hit", points: pts(edge.coords), "stroke-width": 12}),
          s("polyline", {class: "line", points: pts(edge.coords)})));
        continue;
      }
      for (const [here, there] of [[edge.a, edge.b], [edge.b, edge.a]]) {
        if (here.floor !== state.floor) continue;
        const n = badges.get(here.id) || 0;
        badges.set(here.id, n + 1);
        const [bx, by] = [here.x + 10 * k, here.y - (16 + 18 * n) * k];
        const text = `${there.floor > here.floor ? "↑" : "↓"}${floorName(there.floor)}`;
        layers.push(s("line", {class: "tether", x1: here.x, y1: here.y, x2: bx, y2: by + 7 * k}));
        layers.push(s("g", {class: `change kind-${edge.kind}${flags}`, "data-kind": "edge", "data-id": edge.id, role: "button", "aria-label": label},
          s("rect", {x: bx, y: by, width: 34 * k, height: 15 * k, rx: 3 * k}),
          s("text", {x: bx + 17 * k, y: by + 11 * k, "font-size": 10 * k, "text-anchor": "middle"}, text)));
      }
    }
    if (state.route) {
      for (const leg of state.route.legs) {
        if (leg.floor !== state.floor) continue;
        layers.push(s("polyline", {class: "route", points: pts(leg.polyline), "data-testid": "route-line"}));
        const last = leg.polyline[leg.polyline.length - 1];
        if (leg.change) {
          layers.push(s("text", {class: "route-note", x: last[0] + 8 * k, y: last[1] + 14 * k, "font-size": 11 * k},
            `${leg.change.direction === "up" ? "↑" : "↓"}${leg.change.to_floor_name}`));
        }
      }
      const {start, end} = state.route;
      if (start.floor === state.floor) layers.push(s("circle", {class: "route-start", cx: start.x, cy: start.y, r: 8 * k}));
      if (end.floor === state.floor) layers.push(s("circle", {class: "route-end", cx: end.x, cy: end.y, r: 8 * k}));
    }
    for (const node of state.nodes.values()) {
      if (node.floor !== state.floor) continue;
      const name = nodeName(node);
      const flags = `${state.highlight.has(node.id) ? " problem" : ""}${isSelected("node", node.id) ? " selected" : ""}`;
      // The name beside the mark, outside its group: the group is the mark alone (what a click lands on).
      if (name && node.kind !== "junction") layers.push(s("text", {x: node.x + 8 * k, y: node.y + 14 * k, "font-size": 10 * k}, name));
      layers.push(s("g", {class: `node kind-${node.kind}${flags}`, "data-kind": "node", "data-id": node.id, role: "button",
                          "aria-label": t("ops_wayfinding.node_named", {id: node.id})}, mark(node, k)));
    }
    svg.replaceChildren(...layers);
  }

  // --- the side panels ----------------------------------------------------------------------------------------
  function facts(rows) {
    return h("dl", {class: "facts"}, rows.filter(Boolean).flatMap(([label, value]) => [h("dt", {}, t(label)), h("dd", {}, value)]));
  }

  function featureLink(id) {
    if (!id) return h("span", {class: "muted"}, "—");
    const exists = state.nodes.has(id) || state.edges.some((e) => e.id === id);
    return exists ? h("button", {type: "button", class: "link", onclick: () => show(id)}, h("code", {}, id)) : h("code", {}, id);
  }

  function problemList(problems, testid) {
    return h("ul", {class: "wf-problems", "data-testid": testid},
      problems.map((p) => h("li", {}, featureLink(p.feature), " ", problemText(p),
        p.store ? ` (${p.store})` : null)));
  }

  function showSummary() {
    const sm = state.summary;
    const rows = sm.floors.map((f) => ({...f}));
    const table = h("table", {class: "wf-counts"});
    Mall.table(table, [
      {title: "ops_wayfinding.floor", value: (f) => f.floor_name},
      {title: "ops_wayfinding.nodes", value: (f) => Mall.number(f.nodes), num: true},
      {title: "ops_wayfinding.edges", value: (f) => Mall.number(f.edges), num: true},
      {title: "ops_wayfinding.closed_edges", value: (f) => Mall.number(f.closed_edges), num: true},
    ], rows, {empty: "ops_wayfinding.no_graph"});
    summaryEl.replaceChildren(
      h("h2", {}, t("ops_wayfinding.summary")),
      facts([["ops_wayfinding.version", h("span", {"data-testid": "graph-version"}, String(sm.version))],
             ["ops_wayfinding.changed_at", Mall.when("datetime", sm.changed_at || sm.imported_at)],
             sm.change ? ["ops_wayfinding.change", Mall.has(`ops_wayfinding.changes.${sm.change}`) ? t(`ops_wayfinding.changes.${sm.change}`) : sm.change] : null]),
      table,
      h("h3", {}, t("ops_wayfinding.problems"), ` (${sm.problems.length})`),
      sm.problems.length ? problemList(sm.problems, "summary-problems") : h("p", {class: "muted"}, t("ops_wayfinding.none")),
      h("h3", {}, t("ops_wayfinding.warnings"), ` (${sm.warnings.length})`),
      sm.warnings.length ? problemList(sm.warnings, "summary-warnings") : h("p", {class: "muted"}, t("ops_wayfinding.none")));
  }

  function showSelection(extra) {
    const sel = state.selected;
    if (!sel) { selectionEl.hidden = true; return; }
    let body = [];
    if (sel.kind === "node") {
      const node = state.nodes.get(sel.id);
      body = [h("h2", {}, nodeName(node) || node.id), facts([
        ["ops_wayfinding.id", h("code", {}, node.id)],
        ["ops_wayfinding.kind_label", t(`ops_wayfinding.kind.${node.kind}`)],
        ["ops_wayfinding.floor", floorName(node.floor)],
        ["ops_wayfinding.position", `x ${fmt(node.x)} m, y ${fmt(node.y)} m`],
        node.props["mall:store"] ? ["ops_wayfinding.unit", node.props["mall:store"]] : null]),
      h("div", {class: "row-buttons"},
        h("button", {type: "button", onclick: () => useNode("from", node.id)}, t("ops_wayfinding.route.set_from")),
        h("button", {type: "button", onclick: () => useNode("to", node.id)}, t("ops_wayfinding.route.set_to")))];
    } else {
      const edge = state.edges.find((e) => e.id === sel.id);
      const ends = `${edge.a.id} (${floorName(edge.a.floor)}) → ${edge.b.id} (${floorName(edge.b.floor)})`;
      body = [h("h2", {}, t("ops_wayfinding.edge_named", {id: edge.id})), facts([
        ["ops_wayfinding.kind_label", t(`ops_wayfinding.edge_kind.${edge.kind}`)],
        ["ops_wayfinding.ends", ends],
        ["ops_wayfinding.length", `${fmt(edgeLength(edge))} m`],
        ["ops_wayfinding.state", h("span", {class: `badge ${edge.closed ? "bad" : "ok"}`, "data-testid": "edge-state"},
                                   t(edge.closed ? "ops_wayfinding.edge_closed" : "ops_wayfinding.edge_open"))]])];
      if (cfg.may_edit) {
        const slot = h("div", {class: "field-error", role: "alert", "data-testid": "edge-error"});
        const button = h("button", {type: "button", class: edge.closed ? "primary" : "danger"},
                         t(edge.closed ? "ops_wayfinding.reopen" : "ops_wayfinding.close"));
        button.addEventListener("click", () => toggleEdge(edge, button, slot));
        body.push(h("div", {class: "row-buttons"}, button), slot);
      }
    }
    if (extra) body.push(extra);
    selectionEl.replaceChildren(...body);
    selectionEl.hidden = false;
  }

  function select(kind, id, extra) {
    state.selected = kind ? {kind, id} : null;
    render();
    showSelection(extra);
  }

  /** Go to a feature: its floor, then select it. */
  function show(id) {
    const node = state.nodes.get(id);
    const edge = state.edges.find((e) => e.id === id);
    const floor = node ? node.floor : edge ? edge.a.floor : null;
    if (floor === null) return;
    if (floor !== state.floor) setFloor(floor);
    select(node ? "node" : "edge", id);
  }

  function setFloor(number) {
    state.floor = number;
    picker.value = String(number);
    fit();
    render();
  }

  // --- loading ------------------------------------------------------------------------------------------------
  async function loadGraph() {
    const [doc, summary] = await Promise.all([api("GET", GRAPH), api("GET", `${GRAPH}/summary`)]);
    readGraph(doc);
    state.summary = summary;
    const known = new Map(state.floors.map((f) => [f.number, f]));
    for (const f of summary.floors) if (!known.has(f.floor)) known.set(f.floor, {number: f.floor, name: f.floor_name, outline: []});
    for (const node of state.nodes.values()) if (!known.has(node.floor)) known.set(node.floor, {number: node.floor, name: floorName(node.floor), outline: []});
    state.floors = [...known.values()].sort((a, b) => a.number - b.number);
    const current = state.floor;
    picker.replaceChildren(...state.floors.map((f) => h("option", {value: f.number}, f.name)));
    if (current === null || !known.has(current)) state.floor = (known.get(1) || state.floors[0] || {number: 1}).number;
    picker.value = String(state.floor);
    if (state.selected && !(state.selected.kind === "node" ? state.nodes.has(state.selected.id) : state.edges.some((e) => e.id === state.selected.id))) {
      state.selected = null;
    }
    showSummary();
  }

  async function start() {
    const [floors, stores] = await Promise.all([api("GET", "/api/v1/ops/floors"), api("GET", `/api/v1/stores?limit=100&lang=${lang}`)]);
    state.floors = floors.floors.map((f) => ({number: f.number, name: f.name, outline: f.outline}));
    state.stores = stores.stores;
    const options = state.stores.map((st) => h("option", {value: st.id},
      `${(lang === "en" && st.name_en) || st.name} · ${st.unit || st.floor_name}`));
    routeForm.elements.from_store.replaceChildren(...options.map((o) => o.cloneNode(true)));
    routeForm.elements.to_store.replaceChildren(...options);
    await loadGraph();
    fit();
    render();
  }

  picker.addEventListener("change", () => setFloor(Number(picker.value)));

  // --- pointer: pan, click; wheel and buttons zoom --------------------------------------------------------------
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    const target = event.target.closest("[data-kind]");
    drag = {pointer: event.pointerId, kind: target ? target.dataset.kind : null, id: target ? target.dataset.id : null,
            sx: event.clientX, sy: event.clientY, k: 1 / pxPerMetre(), vb: {...state.vb}, moved: false};
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.pointer) return;
    if (!drag.moved && Math.hypot(event.clientX - drag.sx, event.clientY - drag.sy) < CLICK_PX) return;
    drag.moved = true;
    state.vb = {...drag.vb, x: drag.vb.x - (event.clientX - drag.sx) * drag.k, y: drag.vb.y - (event.clientY - drag.sy) * drag.k};
    render();
  });
  svg.addEventListener("pointerup", (event) => {
    if (!drag || event.pointerId !== drag.pointer) return;
    const done = drag;
    drag = null;
    if (!done.moved) select(done.kind, done.id);
  });
  svg.addEventListener("pointercancel", () => { drag = null; });
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [mx, my] = toMetres(event);
    zoomAt(mx, my, event.deltaY < 0 ? 1 / 1.2 : 1.2);
  }, {passive: false});
  const centre = () => [state.vb.x + state.vb.w / 2, state.vb.y + state.vb.h / 2];
  document.getElementById("wf-zoom-in").addEventListener("click", () => zoomAt(...centre(), 1 / 1.5));
  document.getElementById("wf-zoom-out").addEventListener("click", () => zoomAt(...centre(), 1.5));
  document.getElementById("wf-fit").addEventListener("click", () => { fit(); render(); });
  window.addEventListener("resize", () => render());

  // --- close / reopen an edge ---------------------------------------------------------------------------------
  async function toggleEdge(edge, button, slot) {
    const closing = !edge.closed;
    if (!window.confirm(t(closing ? "ops_wayfinding.close_confirm" : "ops_wayfinding.reopen_confirm", {id: edge.id}))) return;
    button.disabled = true;
    slot.replaceChildren();
    try {
      const answer = await api("PATCH", `${GRAPH}/edges/${encodeURIComponent(edge.id)}`, {closed: closing});
      Mall.toast(t(closing ? "ops_wayfinding.closed_done" : "ops_wayfinding.reopened_done", {id: edge.id, version: answer.version}));
      await loadGraph();
      render();
      const warned = answer.warnings.length ? h("div", {class: "card warning"}, h("strong", {}, t("ops_wayfinding.warnings")),
                                                problemList(answer.warnings, "edge-warnings")) : null;
      select("edge", edge.id, warned);
    } catch (err) {
      button.disabled = false;
      const problems = err instanceof Mall.ApiError && err.details && err.details.problems;
      slot.replaceChildren(h("p", {}, Mall.errorText(err)), problems && problems.length ? problemList(problems, "edge-problems") : null);
      state.highlight = new Set((problems || []).map((p) => p.feature).filter(Boolean));
      render();
    }
  }

  // --- import and export --------------------------------------------------------------------------------------
  function showResult(title, kind, ...children) {
    resultEl.className = `card ${kind}`;
    resultEl.replaceChildren(h("h2", {}, title), ...children);
    resultEl.hidden = false;
  }

  if (importForm) {
    importForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      Mall.clearErrors(importForm);
      const slot = importForm.querySelector('[data-error-for="file"]');
      const file = importForm.elements.file.files[0];
      if (!file) { slot.textContent = t("ops_wayfinding.import_pick"); return; }
      let doc;
      try {
        doc = JSON.parse(await file.text());
      } catch (e) {
        slot.textContent = t("ops_wayfinding.import_not_json", {name: file.name});
        return;
      }
      const button = importForm.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const answer = await api("PUT", GRAPH, doc);
        state.highlight = new Set();
        await loadGraph();
        fit();
        render();
        showSelection();
        showResult(t("ops_wayfinding.imported", {version: answer.version, nodes: answer.nodes, edges: answer.edges}), "ok",
          answer.warnings.length ? problemList(answer.warnings, "import-warnings") : null);
        importForm.reset();
      } catch (err) {
        const problems = err instanceof Mall.ApiError && err.code === "wayfinding.invalid_graph" && err.details.problems;
        if (!problems) { Mall.showError(importForm, err); return; }
        state.highlight = new Set(problems.map((p) => p.feature).filter(Boolean));
        render();
        showResult(t("ops_wayfinding.import_refused", {name: file.name, count: err.details.count}), "warning",
          h("p", {}, Mall.errorText(err)), problemList(problems, "import-problems"));
      } finally {
        button.disabled = false;
      }
    });
  }

  document.getElementById("wf-export").addEventListener("click", (event) => Mall.act(event.currentTarget, async () => {
    const doc = await api("GET", GRAPH);
    const blob = new Blob([JSON.stringify(doc, null, 1)], {type: "application/geo+json"});
    const link = h("a", {href: URL.createObjectURL(blob), download: `mall-graph-v${doc["mall:version"] || 0}.geojson`});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }));

  // --- trying a route -----------------------------------------------------------------------------------------
  const els = routeForm.elements;
  function syncRouteFields() {
    els.from_store.hidden = els.from_kind.value !== "store";
    els.from_bay.hidden = els.from_kind.value !== "bay";
    els.from_node.hidden = els.from_kind.value !== "node";
    els.to_store.hidden = els.to_kind.value !== "store";
    els.to_amenity.hidden = els.to_kind.value !== "amenity";
    els.to_node.hidden = els.to_kind.value !== "node";
  }
  els.from_kind.addEventListener("change", syncRouteFields);
  els.to_kind.addEventListener("change", syncRouteFields);

  function useNode(end, id) {
    els[`${end}_kind`].value = "node";
    els[`${end}_node`].value = id;
    syncRouteFields();
    Mall.toast(t(end === "from" ? "ops_wayfinding.route.from_set" : "ops_wayfinding.route.to_set", {id}));
  }

  function clearRoute() {
    state.route = null;
    routeAnswer.replaceChildren();
    render();
  }
  document.getElementById("wf-route-clear").addEventListener("click", clearRoute);

  function place(end, values) {
    const kind = values[`${end}_kind`];
    const value = (values[`${end}_${kind}`] || "").trim();
    if (!value) return null;
    return `${kind}:${value}`;
  }

  Mall.form(routeForm, async (values) => {
    clearRoute();
    const from = place("from", values), to = place("to", values);
    if (!from || !to) {
      for (const [end, given] of [["from", from], ["to", to]]) {
        if (!given) routeForm.querySelector(`[data-error-for="${end}"]`).textContent = t("ops_wayfinding.route.missing");
      }
      return;
    }
    const query = new URLSearchParams({from, to, profile: values.profile || "fastest", lang});
    const route = await api("GET", `/api/v1/routes?${query}`);
    state.route = route;
    setFloor(route.start.floor);
    routeAnswer.replaceChildren(
      h("p", {class: "wf-route-summary", "data-testid": "route-summary"}, route.summary),
      h("div", {class: "wf-legs row-buttons"}, route.legs.map((leg, i) => h("button", {type: "button",
        "aria-label": t("ops_wayfinding.route.leg", {n: i + 1, floor: leg.floor_name}),
        onclick: () => setFloor(leg.floor)}, `${i + 1}. ${leg.floor_name}`))),
      h("ol", {class: "wf-steps", "data-testid": "route-steps"}, route.steps.map((step) => h("li", {}, step.text))));
  }, {codes: {"routes.store_not_found": "_form", "routes.bay_not_found": "from"}});

  syncRouteFields();
  start().then(() => Mall.ready()).catch((err) => {
    Mall.failed(document.querySelector(".wf-layout"), err);
    Mall.ready();
  });
})();
