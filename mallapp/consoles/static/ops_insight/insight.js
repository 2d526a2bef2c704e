/* What the ops insight pages share: catalogue labels for the segments' codes, a colour scale for heat tables,
 * and reading a query parameter. Loaded before each page's own script. */
"use strict";

window.Insight = (function () {
  const K = "console_ops_insight.";

  /** The catalogue's name of a code in a group (tier, pyramid, rfm, lifecycle_state, cause); the code itself
   * when the catalogue has none (a code added to the segments later still shows). */
  function label(group, code) {
    const key = K + group + "." + (code === null || code === undefined ? "none" : code);
    return Mall.has(key) ? Mall.t(key) : String(code);
  }

  function t(key, params) { return Mall.t(K + key, params); }

  /** A background colour for value in [0, max]: white to the brand red. */
  function heat(value, max) {
    const share = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
    const mix = (from, to) => Math.round(from + (to - from) * share);
    return `rgb(${mix(255, 199)}, ${mix(255, 0)}, ${mix(255, 11)})`;
  }

  function heatCell(text, value, max) {
    const cell = Mall.h("td", {class: "num heat", style: `background:${heat(value, max)}` +
                                                        (max > 0 && value / max > 0.55 ? ";color:#fff" : "")}, text);
    return cell;
  }

  function param(name) { return new URLSearchParams(location.search).get(name); }

  /** Hours 0..23 as the reader's labels. */
  const HOURS = Array.from({length: 24}, (_, hour) => hour);
  function hourLabel(hour) { return t("hour", {hour: String(hour).padStart(2, "0")}); }

  return {label, t, heat, heatCell, param, HOURS, hourLabel};
})();
