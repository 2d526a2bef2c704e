/* The floor plan: an SVG map in metres (the API's own coordinates, y growing downwards as on the screen) of one
 * floor's outline, zones, stores, beacons and gateways, the markers coloured by fleet health.
 *
 * Pan by dragging the background, zoom with the wheel, a two-finger pinch or the buttons (all only change the
 * viewBox). An admin draws a zone by clicking its corners (double-click, a click on the last or first corner,
 * or "finish" closes it), edits a zone by dragging its corners then saving, moves a beacon or gateway by
 * dragging its marker (a PATCH on release) and registers a beacon with the side form. Screen <-> metres goes through the SVG's own
 * getScreenCTM, so a drop lands exactly where the pointer was; positions are rounded to 0.1 m. Pointer events:
 * a mouse, a pen and a finger all work. Every change is the API's to accept or refuse; its errors appear next
 * to the form field they concern. */
"use strict";

(function () {
  const {h, t, api} = Mall;
  const cfg = Mall.config.page;
  const svg = document.getElementById("plan");
  const picker = document.getElementById("floor-picker");
  const selection = document.getElementById("selection");
  const hint = document.getElementById("mode-hint");
  const zoneForm = document.getElementById("zone-form");
  const beaconForm = document.getElementById("beacon-form");
  const gatewayForm = document.getElementById("gateway-form");
  const buttons = {
    draw: document.getElementById("draw-zone"), finish: document.getElementById("finish-zone"),
    cancel: document.getElementById("cancel-draw"), beacon: document.getElementById("new-beacon"),
    gateway: document.getElementById("new-gateway"),
  };
  const CLICK_PX = 5;      // a press that moves less than this is a click, not a drag
  const CLOSE_PX = 8;      // a corner clicked this close to the last (or first) one closes the zone

  // mode: "view" | "draw" (clicking corners) | "zone" (the zone form is open) | "place" (placeForm, the beacon's
  // or the gateway's registration form, is open: a click on the map fills its position)
  const state = {floors: [], floor: null, plan: null, vb: {x: 0, y: 0, w: 50, h: 30}, mode: "view",
                 draft: [], zone: null, selected: null, placing: null, placeForm: null};
  if (cfg.may_edit) svg.classList.add("editable");

  // The drawing and the screen <-> metres conversion (plan_map.js).
  const {round, fmt, toMetres, pxPerMetre, screenDistance, fit, zoomAt, render} = FloorMap(svg, state);

  // --- the side panel --------------------------------------------------------------------------------------
  function facts(rows) {
    return h("dl", {class: "facts"}, rows.filter(Boolean).flatMap(([label, value]) => [h("dt", {}, t(label)), h("dd", {}, value)]));
  }

  function problemBadges(problems) {
    if (!problems.length) return h("span", {class: "badge ok"}, t("ops_floor.health.ok"));
    return problems.map((p) => h("span", {class: "badge " + (p === "battery_low" ? "warn" : "bad")}, t("ops_floor.problem." + p)));
  }

  function showSelection() {
    const sel = state.selected;
    if (!sel) { selection.hidden = true; return; }
    const plan = state.plan;
    let body = null;
    if (sel.kind === "beacon") {
      const b = plan.beacons.find((x) => x.id === sel.id);
      body = [h("h2", {}, t("ops_floor.plan.beacon_named", {name: b.label || `${b.major}/${b.minor}`})), facts([
        ["ops_floor.beacon.identity", `${b.uuid} · ${b.major}/${b.minor}`],
        ["ops_floor.beacon.position", `x ${fmt(b.x)} m, y ${fmt(b.y)} m`],
        ["ops_floor.fleet.battery", b.health.battery_mv ? `${Mall.number(b.health.battery_mv)} mV` : "—"],
        ["ops_floor.fleet.last_seen", Mall.when("datetime", b.health.last_seen_at)],
        ["ops_floor.fleet.problems", problemBadges(b.problems)],
      ]), cfg.may_edit ? h("p", {class: "muted small"}, t("ops_floor.plan.drag_hint")) : null];
    } else if (sel.kind === "gateway") {
      const g = plan.gateways.find((x) => x.id === sel.id);
      body = [h("h2", {}, t("ops_floor.plan.gateway_named", {name: g.name})), facts([
        ["ops_floor.beacon.position", `x ${fmt(g.x)} m, y ${fmt(g.y)} m`],
        ["ops_floor.fleet.last_seen", Mall.when("datetime", g.last_seen_at)],
        ["ops_floor.fleet.problems", problemBadges(g.problems)],
      ]), cfg.may_edit ? h("p", {class: "muted small"}, t("ops_floor.plan.drag_hint")) : null];
    } else if (sel.kind === "store") {
      const st = plan.stores.find((x) => x.id === sel.id);
      body = [h("h2", {}, st.name), facts([["ops_floor.store.unit", st.unit || "—"],
                                          ["ops_floor.store.category", st.category || "—"]])];
    } else if (sel.kind === "zone") {
      const z = plan.zones.find((x) => x.id === sel.id);
      const store = z.store_id ? plan.stores.find((x) => x.id === z.store_id) : null;
      body = [h("h2", {}, z.name), facts([["ops_floor.zone.kind", t("ops_floor.kind." + z.kind)],
                                         ["ops_floor.zone.store", store ? store.name : "—"],
                                         ["ops_floor.zone.corners", String(z.polygon.length)]])];
    }
    selection.replaceChildren(...[body].flat().filter(Boolean));
    selection.hidden = false;
  }

  function select(kind, id) {
    state.selected = kind ? {kind, id} : null;
    if (kind === "zone" && cfg.may_edit) { openZoneForm(state.plan.zones.find((z) => z.id === id)); return; }
    render();
    showSelection();
  }

  function setHint(key) { hint.textContent = t(key); }

  function setMode(mode) {
    state.mode = mode;
    svg.classList.toggle("drawing", mode === "draw");
    svg.classList.toggle("placing", mode === "place");
    if (buttons.draw) {
      buttons.draw.hidden = mode === "draw";
      buttons.finish.hidden = buttons.cancel.hidden = mode !== "draw";
      buttons.draw.disabled = buttons.beacon.disabled = buttons.gateway.disabled = mode === "zone" || mode === "place";
    }
    if (zoneForm) zoneForm.hidden = mode !== "zone";
    if (beaconForm) beaconForm.hidden = !(mode === "place" && state.placeForm === beaconForm);
    if (gatewayForm) gatewayForm.hidden = !(mode === "place" && state.placeForm === gatewayForm);
    setHint({draw: "ops_floor.plan.hint_draw", zone: "ops_floor.plan.hint_zone", place: "ops_floor.plan.hint_place"}[mode]
            || (cfg.may_edit ? "ops_floor.plan.hint_view_edit" : "ops_floor.plan.hint_view"));
  }

  function options(select, rows, emptyKey, current) {
    select.replaceChildren(h("option", {value: ""}, t(emptyKey)),
      ...rows.map((row) => h("option", {value: String(row.id), selected: String(row.id) === String(current ?? "")}, row.name)));
  }

  // --- zones ----------------------------------------------------------------------------------------------
  function syncPolygonField() {
    zoneForm.elements.polygon.value = state.draft.map(([x, y]) => `${fmt(x)}, ${fmt(y)}`).join("\n");
  }

  function openZoneForm(zone) {
    state.zone = zone || null;
    if (zone) state.draft = zone.polygon.map(([x, y]) => [x, y]);
    Mall.clearErrors(zoneForm);
    document.getElementById("zone-form-title").textContent = t(zone ? "ops_floor.zone.edit" : "ops_floor.zone.new");
    document.getElementById("zone-form-hint").textContent = zone ? t("ops_floor.zone.drag_corners") : "";
    document.getElementById("zone-deactivate").hidden = !zone;
    zoneForm.elements.name.value = zone ? zone.name : "";
    zoneForm.elements.kind.value = zone ? zone.kind : "area";
    options(zoneForm.elements.store_id, state.plan.stores, "ops_floor.zone.no_store", zone && zone.store_id);
    syncPolygonField();
    selection.hidden = true;
    setMode("zone");
    render();
    zoneForm.elements.name.focus();
  }

  function closeForms() {
    state.zone = null;
    state.draft = [];
    state.placing = null;
    state.placeForm = null;
    state.selected = null;
    selection.hidden = true;
    setMode("view");
    render();
  }

  function finishDrawing() {
    if (state.mode !== "draw") return;
    openZoneForm(null);
  }

  // --- loading --------------------------------------------------------------------------------------------
  async function loadPlan(keepView) {
    state.plan = await api("GET", `/api/v1/ops/floor-plan?floor=${state.floor}`);
    if (!keepView) fit();
    render();
    showSelection();
  }

  async function start() {
    const answer = await api("GET", "/api/v1/ops/floors");
    state.floors = answer.floors.length ? answer.floors : [{number: 1, name: "L1", outline: []}];
    const wanted = Number(new URLSearchParams(location.search).get("floor"));
    state.floor = (state.floors.find((f) => f.number === wanted) || state.floors.find((f) => f.number === 1)
                   || state.floors[0]).number;
    picker.replaceChildren(...state.floors.map((f) => h("option", {value: f.number, selected: f.number === state.floor}, f.name)));
    await loadPlan(false);
  }

  picker.addEventListener("change", async () => {
    state.floor = Number(picker.value);
    closeForms();
    try { await loadPlan(false); } catch (err) { Mall.toast(Mall.errorText(err), "error"); }
  });

  // --- pointer: pan, drag, click ----------------------------------------------------------------------------
  let drag = null;
  // Fingers on the map (pointerId -> [clientX, clientY]); two of them pinch: zoom about their midpoint.
  const fingers = new Map();
  let pinch = null;

  function spread() {
    const [a, b] = [...fingers.values()];
    return {distance: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2]};
  }

  function endDrag() {
    if (drag && drag.type === "marker") [drag.thing.x, drag.thing.y] = drag.from;
    drag = null;
  }

  function thingOf(kind, id) {
    return (kind === "beacon" ? state.plan.beacons : state.plan.gateways).find((x) => x.id === id);
  }

  svg.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    if (event.pointerType === "touch") {
      fingers.set(event.pointerId, [event.clientX, event.clientY]);
      if (fingers.size === 2) {
        endDrag();  // a second finger: no drag, a pinch
        const {distance, mid} = spread();
        pinch = {distance, vb: {...state.vb}, at: toMetres({clientX: mid[0], clientY: mid[1]})};
        svg.setPointerCapture(event.pointerId);
        render();
        return;
      }
      if (fingers.size > 2) return;
    }
    const target = event.target.closest("[data-kind]");
    const kind = target ? target.dataset.kind : null;
    drag = {pointer: event.pointerId, type: "pan", kind, id: target ? Number(target.dataset.id) : null,
            index: target ? Number(target.dataset.index) : null, sx: event.clientX, sy: event.clientY,
            k: 1 / pxPerMetre(), vb: {...state.vb}, moved: false};
    if (cfg.may_edit && state.mode === "view" && (kind === "beacon" || kind === "gateway")) {
      const thing = thingOf(kind, drag.id);
      drag.type = "marker";
      drag.thing = thing;
      drag.from = [thing.x, thing.y];
    } else if (cfg.may_edit && state.mode === "zone" && kind === "vertex") {
      drag.type = "vertex";
    }
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });

  svg.addEventListener("pointermove", (event) => {
    if (fingers.has(event.pointerId)) fingers.set(event.pointerId, [event.clientX, event.clientY]);
    if (pinch && fingers.size === 2) {
      const factor = pinch.distance / spread().distance;
      const w = Math.min(Math.max(pinch.vb.w * factor, 2), 5000), k = w / pinch.vb.w;
      const [mx, my] = pinch.at;
      state.vb = {x: mx - (mx - pinch.vb.x) * k, y: my - (my - pinch.vb.y) * k, w, h: pinch.vb.h * k};
      render();
      return;
    }
    if (!drag || event.pointerId !== drag.pointer) return;
    if (!drag.moved && Math.hypot(event.clientX - drag.sx, event.clientY - drag.sy) < CLICK_PX) return;
    drag.moved = true;
    if (drag.type === "pan") {
      state.vb = {...drag.vb, x: drag.vb.x - (event.clientX - drag.sx) * drag.k, y: drag.vb.y - (event.clientY - drag.sy) * drag.k};
    } else if (drag.type === "marker") {
      [drag.thing.x, drag.thing.y] = toMetres(event);
    } else if (drag.type === "vertex") {
      state.draft[drag.index] = toMetres(event);
      syncPolygonField();
    }
    render();
  });

  function liftFinger(event) {
    fingers.delete(event.pointerId);
    if (fingers.size < 2) pinch = null;
  }

  svg.addEventListener("pointerup", (event) => {
    liftFinger(event);
    if (!drag || event.pointerId !== drag.pointer) return;
    const done = drag;
    drag = null;
    const at = toMetres(event);
    if (!done.moved) { click(done, at); return; }
    if (done.type === "marker") moveMarker(done, at);
    if (done.type === "vertex") {
      state.draft[done.index] = [round(at[0]), round(at[1])];
      syncPolygonField();
      render();
    }
  });

  svg.addEventListener("pointercancel", (event) => {
    liftFinger(event);
    endDrag();
    render();
  });

  svg.addEventListener("dblclick", (event) => { event.preventDefault(); finishDrawing(); });

  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [mx, my] = toMetres(event);
    zoomAt(mx, my, event.deltaY < 0 ? 1 / 1.2 : 1.2);
  }, {passive: false});

  function click(pressed, at) {
    if (state.mode === "draw") {
      const corners = state.draft;
      const last = corners[corners.length - 1];
      if (last && screenDistance(last, at) < CLOSE_PX) { finishDrawing(); return; }  // a double-click's second press
      if (corners.length >= 3 && screenDistance(corners[0], at) < CLOSE_PX) { finishDrawing(); return; }
      corners.push([round(at[0]), round(at[1])]);
      render();
      return;
    }
    if (state.mode === "place") {
      state.placing = [round(at[0]), round(at[1])];
      state.placeForm.elements.x.value = fmt(state.placing[0]);
      state.placeForm.elements.y.value = fmt(state.placing[1]);
      render();
      return;
    }
    if (state.mode === "zone") return;  // finish or cancel the zone first
    if (pressed.kind && pressed.kind !== "corner" && pressed.kind !== "vertex") select(pressed.kind, pressed.id);
    else select(null);
  }

  async function moveMarker(done, at) {
    const [x, y] = [round(at[0]), round(at[1])];
    [done.thing.x, done.thing.y] = [x, y];
    render();
    const path = done.kind === "beacon" ? `/api/v1/ops/beacons/${done.id}` : `/api/v1/ops/gateways/${done.id}`;
    try {
      const moved = await api("PATCH", path, {x, y});
      Object.assign(done.thing, moved);
      Mall.toast(t("ops_floor.plan.moved", {x: fmt(moved.x), y: fmt(moved.y)}));
    } catch (err) {
      [done.thing.x, done.thing.y] = done.from;
      Mall.toast(Mall.errorText(err), "error");
    }
    state.selected = {kind: done.kind, id: done.id};
    render();
    showSelection();
  }

  // --- toolbar ----------------------------------------------------------------------------------------------
  function centre() { return [state.vb.x + state.vb.w / 2, state.vb.y + state.vb.h / 2]; }
  document.getElementById("zoom-in").addEventListener("click", () => zoomAt(...centre(), 1 / 1.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoomAt(...centre(), 1.5));
  document.getElementById("zoom-fit").addEventListener("click", () => { fit(); render(); });

  if (cfg.may_edit) {
    buttons.draw.addEventListener("click", () => {
      state.draft = [];
      state.zone = null;
      state.selected = null;
      selection.hidden = true;
      setMode("draw");
      render();
    });
    buttons.finish.addEventListener("click", finishDrawing);
    buttons.cancel.addEventListener("click", closeForms);
    document.getElementById("zone-cancel").addEventListener("click", closeForms);
    document.getElementById("zone-deactivate").addEventListener("click", (event) => Mall.act(event.currentTarget, async () => {
      await api("DELETE", `/api/v1/ops/zones/${state.zone.id}`);
      Mall.toast(t("ops_floor.zone.deactivated"));
      closeForms();
      await loadPlan(true);
    }));

    Mall.form(zoneForm, async (values) => {
      const body = {name: values.name, kind: values.kind, store_id: values.store_id ? Number(values.store_id) : null,
                    polygon: state.draft.map(([x, y]) => [round(x), round(y)])};
      let saved;
      if (state.zone) {
        saved = await api("PATCH", `/api/v1/ops/zones/${state.zone.id}`, body);
      } else {
        if (body.store_id === null) delete body.store_id;
        saved = await api("POST", "/api/v1/ops/zones", {...body, floor: state.floor});
      }
      Mall.toast(t("ops_floor.zone.saved", {name: saved.name}));
      closeForms();
      await loadPlan(true);
    }, {codes: {"zone.invalid_polygon": "polygon", "zone.store_required": "store_id", "venue.unknown_store": "store_id"}});

    function openPlaceForm(form, first) {
      Mall.clearErrors(form);
      form.reset();
      options(form.elements.zone_id, state.plan.zones, "ops_floor.beacon.no_zone", null);
      const [cx, cy] = centre();
      state.placing = [round(cx), round(cy)];
      form.elements.x.value = fmt(cx);
      form.elements.y.value = fmt(cy);
      state.placeForm = form;
      state.selected = null;
      selection.hidden = true;
      setMode("place");
      render();
      form.elements[first].focus();
    }

    buttons.beacon.addEventListener("click", () => {
      beaconForm.elements.uuid.replaceChildren(...cfg.uuids.map((u) => h("option", {value: u}, u)));
      options(beaconForm.elements.store_id, state.plan.stores, "ops_floor.zone.no_store", null);
      openPlaceForm(beaconForm, "major");
    });
    buttons.gateway.addEventListener("click", () => openPlaceForm(gatewayForm, "name"));
    document.getElementById("beacon-cancel").addEventListener("click", closeForms);
    document.getElementById("gateway-cancel").addEventListener("click", closeForms);
    for (const form of [beaconForm, gatewayForm]) {
      for (const name of ["x", "y"]) {
        form.elements[name].addEventListener("input", () => {
          const x = parseFloat(form.elements.x.value), y = parseFloat(form.elements.y.value);
          if (Number.isFinite(x) && Number.isFinite(y)) { state.placing = [x, y]; render(); }
        });
      }
    }
    const number = (value) => (value === undefined ? undefined : Number(value));
    Mall.form(beaconForm, async (values) => {
      const created = await api("POST", "/api/v1/ops/beacons", {
        uuid: values.uuid, major: number(values.major), minor: number(values.minor), label: values.label || "",
        zone_id: number(values.zone_id), store_id: number(values.store_id), floor: state.floor,
        x: number(values.x), y: number(values.y), measured_power: number(values.measured_power)});
      Mall.toast(t("ops_floor.beacon.registered", {name: created.label || `${created.major}/${created.minor}`}));
      closeForms();
      await loadPlan(true);
      select("beacon", created.id);
    }, {codes: {"beacon.duplicate": "identity", "beacon.unknown_uuid": "uuid", "venue.unknown_zone": "zone_id",
                "venue.unknown_store": "store_id", "venue.unknown_sale_item": "store_id",
                "beacon.item_not_in_store": "store_id"}});

    Mall.form(gatewayForm, async (values) => {
      const created = await api("POST", "/api/v1/ops/gateways", {
        name: values.name, zone_id: number(values.zone_id), floor: state.floor, x: number(values.x), y: number(values.y)});
      closeForms();
      await loadPlan(true);
      select("gateway", created.id);
      // The key is in this answer only: shown once, to be configured on the gateway now.
      selection.prepend(h("div", {class: "card warning", role: "alert"},
        h("strong", {}, t("ops_floor.gateway.key_once")), h("br"),
        h("code", {class: "gateway-key", "data-testid": "gateway-key"}, created.key)));
    }, {codes: {"venue.unknown_zone": "zone_id"}});
  }

  window.addEventListener("resize", () => { if (state.plan) render(); });

  start().then(() => { setMode("view"); Mall.ready(); }).catch((err) => {
    Mall.failed(document.querySelector(".plan-layout"), err);
    Mall.ready();
  });
})();
