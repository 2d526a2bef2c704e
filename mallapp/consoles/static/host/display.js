/* The caller display for a TV: each band's last called number, large, and the few before it. Numbers only:
 * the screen faces the guests. Read again every few seconds; a newly called number flashes. */
"use strict";

(function () {
  const h = Mall.h;
  const bandsEl = document.getElementById("caller-bands");
  const storeEl = document.getElementById("caller-store");
  const clockEl = document.getElementById("caller-clock");
  const fullButton = document.getElementById("full-screen");
  const lastShown = {};  // band code -> the number it showed last, to flash a new call
  let loaded = false;

  function bandColumn(band) {
    const [last, ...before] = band.calls;
    const fresh = last && loaded && lastShown[band.code] !== last.ticket_no;
    lastShown[band.code] = last ? last.ticket_no : null;
    return h("section", {class: "caller-band", dataset: {band: band.code}},
      h("h2", {class: "caller-band-name"}, Host.bandName(band)),
      h("div", {class: "caller-now" + (fresh ? " fresh" : ""), "data-testid": "last-called-" + band.code},
        last ? last.ticket_no : "—"),
      h("p", {class: "caller-label"}, Mall.t(last ? "host.display.please" : "host.display.none_yet")),
      h("div", {class: "caller-before"},
        h("span", {class: "caller-label"}, Mall.t("host.display.before")),
        before.length ? before.map((c) => h("span", {class: "caller-old"}, c.ticket_no)) : h("span", {class: "caller-old"}, "—")),
      h("p", {class: "caller-waiting"}, Mall.t("host.display.waiting", {n: band.waiting})));
  }

  function render(data) {
    storeEl.textContent = data.store_name;
    clockEl.textContent = Mall.when("time", data.now);
    bandsEl.replaceChildren(...(data.bands.length ? data.bands.map(bandColumn)
      : [h("p", {class: "caller-label"}, Mall.t("host.display.no_queue"))]));
    bandsEl.style.setProperty("--bands", String(Math.max(1, data.bands.length)));
    loaded = true;
    document.body.dataset.stale = "";
  }

  function offline(err) {
    if (!loaded) { Mall.failed(bandsEl, err); return; }
    document.body.dataset.stale = "1";  // keep the last numbers up; the dimmed clock says they may be old
  }

  fullButton.addEventListener("click", () => {
    const root = document.documentElement;
    if (root.requestFullscreen) root.requestFullscreen().catch(() => {});
  });
  document.addEventListener("fullscreenchange", () => { fullButton.hidden = !!document.fullscreenElement; });

  (async function start() {
    try {
      const store = await Host.store(() => {});
      if (!store) {
        bandsEl.replaceChildren(h("p", {class: "caller-label"}, Mall.t("host.store.none")));
        return;
      }
      await Host.poll(() => Mall.api("GET", `/api/v1/merchant/stores/${store.id}/queue/calls?per_band=4`),
                      render, offline).refresh();
    } catch (err) {
      Mall.failed(bandsEl, err);
    } finally {
      Mall.ready();
    }
  })();
})();
