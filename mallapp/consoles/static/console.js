/* What every console page shares: its configuration, texts, the API with the session's CSRF token, dates in
 * the mall's time zone, amounts in yuan, forms whose errors appear next to their fields, tables and charts.
 *
 * A page's own script runs after this one (defer order) and calls Mall.ready() once its data is on screen:
 * the browser tests wait for <body data-ready> and fail on a page that never gets there. */
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("mall-config").textContent);
  const texts = window.MALL_TEXTS || {};

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {code: "http." + status, message: "HTTP " + status};
      super(error.message);
      this.status = status;
      this.code = error.code;
      this.details = error.details || {};
    }
  }

  /** The catalogue's text for key, its {placeholders} filled; the key itself when the catalogue has none. */
  function t(key, params) {
    const text = texts[key];
    if (text === undefined) return key;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  }

  function has(key) { return texts[key] !== undefined; }

  /** The sentence for an API error, in the reader's language. */
  function errorText(err) {
    if (!(err instanceof ApiError)) return t("console.error.network");
    const key = "errors." + err.code;
    return has(key) ? t(key, err.details) : err.message;
  }

  /** A validation problem ({field, problem, kind, limit}) as the reader's sentence. */
  function problemText(problem) {
    const key = "problems." + problem.kind;
    return problem.kind && has(key) ? t(key, {limit: problem.limit}) : problem.problem;
  }

  /** Call the JSON API. Resolves to the parsed body (null for 204); rejects with an ApiError. */
  async function api(method, path, body, options) {
    const headers = {"Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && config.csrf) headers["X-CSRF-Token"] = config.csrf;
    if (options && options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    let response;
    try {
      response = await fetch(path, {method, headers, credentials: "same-origin",
                                    body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (e) {
      throw new ApiError(0, {error: {code: "network", message: String(e)}});
    }
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
    if (!response.ok) {
      if (response.status === 401 && config.caller) {
        // The session ended (signed out elsewhere, expired): back to the sign-in page, then here again.
        location.href = "/console/sign-in?audience=" + config.caller.audience + "&next=" +
          encodeURIComponent(location.pathname + location.search);
      }
      throw new ApiError(response.status, parsed);
    }
    return parsed;
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // --- dates and amounts, always in the mall's time zone -----------------------------------------------
  const intlLocale = config.locale === "zh-CN" ? "zh-CN" : "en-GB";
  const formats = {
    datetime: new Intl.DateTimeFormat(intlLocale, {timeZone: config.tz, month: "short", day: "numeric",
                                                    hour: "2-digit", minute: "2-digit", hour12: false}),
    date: new Intl.DateTimeFormat(intlLocale, {timeZone: config.tz, year: "numeric", month: "short", day: "numeric"}),
    time: new Intl.DateTimeFormat(intlLocale, {timeZone: config.tz, hour: "2-digit", minute: "2-digit", hour12: false}),
  };
  function when(kind, value) {
    if (value === null || value === undefined || value === "") return "—";
    const at = value instanceof Date ? value : new Date(value);
    return isNaN(at) ? String(value) : formats[kind].format(at);
  }

  /** Fen as yuan: 1250 -> "¥12.50". */
  function yuan(fen) {
    if (fen === null || fen === undefined) return "—";
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(fen);
    const whole = Math.floor(abs / 100).toLocaleString("en-US");
    return sign + "¥" + whole + "." + String(abs % 100).padStart(2, "0");
  }

  /** Yuan typed by a person ("12", "12.5", "12.50") as integer fen, or null when it is not an amount. */
  function fen(text) {
    const match = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(String(text));
    if (!match) return null;
    return parseInt(match[1], 10) * 100 + parseInt((match[2] || "0").padEnd(2, "0"), 10);
  }

  function number(value) {
    return value === null || value === undefined ? "—" : Number(value).toLocaleString(intlLocale);
  }

  function percent(share, digits) {
    return share === null || share === undefined ? "—" : (share * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  /** Today's date in the mall (YYYY-MM-DD), by the server's clock. */
  function today() { return config.today; }

  // --- building the page ----------------------------------------------------------------------------------
  /** An element: h("td", {class: "num"}, "12", otherNode). Text is always text, never parsed as HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** An SVG element, as h() makes an HTML one: svg("circle", {cx: 1, cy: 2, r: 0.5}, titleNode). */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) el.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** A map's viewBox {x, y, w, h} zoomed by ``factor`` about the point (mx, my), its width kept in 2..5000 m. */
  function zoomBox(vb, mx, my, factor) {
    const w = Math.min(Math.max(vb.w * factor, 2), 5000);
    const k = w / vb.w;
    return {x: mx - (mx - vb.x) * k, y: my - (my - vb.y) * k, w, h: vb.h * k};
  }

  /** Where a pointer event falls in an SVG map's own units (metres on the floor plans): [x, y]. */
  function svgPoint(svgEl, event) {
    const point = svgEl.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const at = point.matrixTransform(svgEl.getScreenCTM().inverse());
    return [at.x, at.y];
  }

  /** Screen pixels per unit of an SVG map at its current zoom. */
  function svgScale(svgEl) {
    const ctm = svgEl.getScreenCTM();
    return ctm && ctm.a ? ctm.a : 1;
  }

  /** The viewBox {x, y, w, h} that shows these [x, y] points with a margin (at least 10 units a side). */
  function fitBox(points) {
    if (!points.length) return {x: -5, y: -5, w: 60, h: 40};
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const w = Math.max(x1 - x0, 10), height = Math.max(y1 - y0, 10), pad = 0.12 * Math.max(w, height);
    return {x: (x0 + x1) / 2 - w / 2 - pad, y: (y0 + y1) / 2 - height / 2 - pad, w: w + 2 * pad, h: height + 2 * pad};
  }

  /** Fill a <table> (or the element's <table>) from rows: columns = [{title: key, value: row => text|Node, num}]. */
  function table(target, columns, rows, options) {
    const el = target.tagName === "TABLE" ? target : target.querySelector("table") || target.appendChild(h("table"));
    el.replaceChildren(
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {class: c.num ? "num" : null}, t(c.title))))),
      h("tbody", {}, rows.length ? rows.map((row) => h("tr", {dataset: options && options.rowData ? options.rowData(row) : {}},
        columns.map((c) => h("td", {class: c.num ? "num" : null}, c.value(row)))))
        : h("tr", {class: "empty"}, h("td", {colspan: columns.length}, t((options && options.empty) || "console.empty")))));
    return el;
  }

  // --- forms ----------------------------------------------------------------------------------------------
  /** The form's named values as an object (checkboxes true/false, empty inputs left out). */
  function values(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      if (el.type === "checkbox") out[el.name] = el.checked;
      else if (el.type === "radio") { if (el.checked) out[el.name] = el.value; }
      else if (el.multiple) out[el.name] = Array.from(el.selectedOptions, (o) => o.value);
      else if (el.value !== "") out[el.name] = el.value;
    }
    return out;
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  }

  /** Show an API error on a form: each validation problem next to its field ([data-error-for=field]); a domain
   * error next to the field that codes[code] names, else at the form's top ([data-error-for=_form]). */
  function showError(form, err, codes) {
    clearErrors(form);
    const place = (field, text) => {
      let slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
      if (!slot) slot = form.querySelector('[data-error-for="_form"]');
      if (!slot) { toast(text, "error"); return; }
      slot.textContent = slot.textContent ? slot.textContent + " " + text : text;
      const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    };
    const problems = err instanceof ApiError && err.details && err.details.problems;
    if (problems && problems.length) {
      for (const problem of problems) {
        const field = String(problem.field).split(".")[0];
        place(field, problemText(problem));
      }
      return;
    }
    const field = err instanceof ApiError && codes && codes[err.code];
    place(field || "_form", errorText(err));
  }

  /** Run submit(values, form) on submission with the button disabled; its error is shown on the form. */
  function form(el, submit, options) {
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      const buttons = el.querySelectorAll("button[type=submit]");
      buttons.forEach((b) => { b.disabled = true; });
      clearErrors(el);
      try {
        await submit(values(el), el);
      } catch (err) {
        showError(el, err, options && options.codes);
        if (!(err instanceof ApiError)) console.warn(err);
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  let toastTimer = null;
  function toast(text, kind) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.className = "show " + (kind || "ok");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.className = ""; }, 4000);
  }

  /** A button's action with its error as a toast (for actions outside a form: approve, call, seat). */
  async function act(button, action) {
    button.disabled = true;
    try {
      return await action();
    } catch (err) {
      toast(errorText(err), "error");
      if (!(err instanceof ApiError)) console.warn(err);
      return undefined;
    } finally {
      button.disabled = false;
    }
  }

  /** An ECharts chart in el, in the reader's language, resized with the window. */
  function chart(el, option) {
    const instance = window.echarts.getInstanceByDom(el) ||
      window.echarts.init(el, null, {locale: config.locale === "zh-CN" ? "ZH" : "EN", renderer: "canvas"});
    instance.setOption(option, true);
    if (!el.dataset.resizes) {
      el.dataset.resizes = "1";
      window.addEventListener("resize", () => instance.resize());
    }
    return instance;
  }

  /** Say the page has its data (the browser tests wait for it). */
  function ready() { document.body.dataset.ready = "1"; }

  /** Show a load failure in place of the data, and still say the page is done (the tests then see the error). */
  function failed(target, err) {
    target.replaceChildren(h("p", {class: "card warning", role: "alert"}, errorText(err)));
    if (!(err instanceof ApiError)) console.error(err);
  }

  window.Mall = {config, t, has, api, ApiError, errorText, problemText, newKey, when, yuan, fen, number, percent,
                 today, h, svg, svgPoint, svgScale, fitBox, zoomBox, table, values, form, showError, clearErrors, toast, act, chart, ready, failed};
})();
