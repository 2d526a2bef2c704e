/* What the host's pages share: the restaurant they run (the picker, remembered on this device), the server's
 * clock, band names, and a poll that never overlaps itself. */
"use strict";

window.Host = (function () {
  const page = Mall.config.page || {};
  const caller = Mall.config.caller || {};
  const memoryKey = "mall.host.store." + (caller.merchant_id || "");
  // The server's clock, carried forward by the browser's: the test clock and the mall's day are the server's.
  const serverAt = Date.parse(Mall.config.now);
  const loadedAt = Date.now();

  function now() { return serverAt + (Date.now() - loadedAt); }

  function remembered() {
    try { return parseInt(localStorage.getItem(memoryKey), 10) || null; } catch (e) { return null; }
  }

  function remember(id) {
    try { localStorage.setItem(memoryKey, String(id)); } catch (e) { /* a private window keeps nothing */ }
  }

  /** The restaurant to show: ?store=, else the one this device used last, else the first. With several, the
   * picker appears and onChange(store) runs when the host picks another. Null when the merchant has none. */
  async function store(onChange) {
    const found = (await Mall.api("GET", "/api/v1/merchant/stores")).stores;
    if (!found.length) return null;
    const byId = new Map(found.map((s) => [s.id, s]));
    let chosen = byId.get(page.store) || byId.get(remembered()) || found[0];
    remember(chosen.id);
    const picker = document.getElementById("store-picker");
    if (picker && found.length > 1) {
      picker.replaceChildren(...found.map((s) => Mall.h("option", {value: s.id, selected: s.id === chosen.id}, s.name)));
      picker.closest("label").hidden = false;
      picker.addEventListener("change", () => {
        chosen = byId.get(parseInt(picker.value, 10));
        remember(chosen.id);
        const url = new URL(location.href);
        url.searchParams.set("store", chosen.id);
        history.replaceState(null, "", url);
        onChange(chosen);
      });
    }
    return chosen;
  }

  /** "A · 1–2 人" from a band's code and party sizes, in the reader's language. */
  function bandName(band) {
    return band.max_party === null || band.max_party === undefined
      ? Mall.t("host.band.open_ended", {code: band.code, min: band.min_party})
      : band.min_party === band.max_party
        ? Mall.t("host.band.single", {code: band.code, min: band.min_party})
        : Mall.t("host.band.range", {code: band.code, min: band.min_party, max: band.max_party});
  }

  function minutesSince(iso) { return Math.max(0, Math.floor((now() - Date.parse(iso)) / 60000)); }

  function minutesUntil(iso) { return Math.max(0, Math.ceil((Date.parse(iso) - now()) / 60000)); }

  const pollers = [];

  /** Run load() now and then every ms milliseconds, one at a time; refresh() runs it at once (after an action).
   * A load answered after a newer one started is dropped, so an old answer never paints over a new one. */
  function poll(load, render, onError, ms) {
    let seq = 0;
    let timer = null;
    let running = Promise.resolve();
    let stopped = false;
    async function refresh() {
      if (stopped) return;
      clearTimeout(timer);
      const mine = ++seq;
      running = (async () => {
        try {
          const data = await load();
          if (mine === seq) render(data);
        } catch (err) {
          if (mine === seq) onError(err);
        }
      })();
      await running;
      if (mine === seq && !stopped) timer = setTimeout(refresh, ms || page.poll_ms || 5000);
    }
    async function stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    }
    const poller = {refresh, stop};
    pollers.push(poller);
    return poller;
  }

  /** Stop reading: resolves once no read is in flight (before leaving the page, so none is cut off). */
  function stop() { return Promise.all(pollers.map((p) => p.stop())); }

  return {store, bandName, now, minutesSince, minutesUntil, poll, stop};
})();
