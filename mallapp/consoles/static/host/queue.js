/* The host's queue by band: call the next party, seat or skip a number, give a walk-in a number, open and close
 * the queue. The board is read again every few seconds and after every action. */
"use strict";

(function () {
  const h = Mall.h;
  const bandsEl = document.getElementById("bands");
  const stateEl = document.getElementById("queue-state");
  const displayLink = document.getElementById("to-display");
  const walkInForm = document.getElementById("walk-in");
  const walkInResult = document.getElementById("walk-in-result");
  const errors = {};  // band code -> the last action's error, shown beside that band's controls
  let store = null;
  let board = null;
  let poller = null;

  const base = () => `/api/v1/merchant/stores/${store.id}/queue`;

  // The host's own sentence for the refusals a busy evening brings; other codes get the shared error texts.
  function errorText(err, band) {
    const status = err.details && err.details.status;
    const params = {band: band || "", status: status ? Mall.t("host.status." + status) : ""};
    const own = {"queue.nobody_waiting": "host.error.nobody_waiting", "queue.ticket_closed": "host.error.ticket_closed",
                 "queue.ticket_not_found": "host.error.ticket_gone"}[err.code];
    return own ? Mall.t(own, params) : Mall.errorText(err);
  }

  async function act(button, band, action) {
    button.disabled = true;
    delete errors[band];
    try {
      const text = await action();
      if (text) Mall.toast(text);
    } catch (err) {
      errors[band] = errorText(err, band);
      Mall.toast(errors[band], "error");
      // Beside the band's controls now; the board read that follows keeps it there.
      const slot = bandsEl.querySelector(`[data-band="${CSS.escape(band)}"] .band-error`);
      if (slot) slot.textContent = errors[band];
      if (!(err instanceof Mall.ApiError)) console.warn(err);
    } finally {
      button.disabled = false;
      await poller.refresh();
    }
  }

  function call(button, band) {
    return act(button, band.code, async () => {
      const ticket = await Mall.api("POST", `${base()}/call`, {band: band.code, request_id: Mall.newKey()});
      return Mall.t("host.queue.called_toast", {number: ticket.ticket_no});
    });
  }

  function end(button, ticket, what) {
    return act(button, ticket.band, async () => {
      const done = await Mall.api("POST", `${base()}/tickets/${ticket.id}/${what}`);
      return Mall.t(what === "seat" ? "host.queue.seated_toast" : "host.queue.skipped_toast", {number: done.ticket_no});
    });
  }

  function setOpen(button, open, codes) {
    return act(button, codes ? codes[0] : "_all", async () => {
      await Mall.api("POST", `${base()}/${open ? "open" : "close"}`, codes ? {bands: codes} : {});
      return Mall.t(open ? "host.queue.opened_toast" : "host.queue.closed_toast");
    });
  }

  function ticketRow(ticket) {
    const called = ticket.status === "called";
    const facts = [
      h("span", {class: "party"}, Mall.t("host.ticket.party", {n: ticket.party_size})),
      called
        ? h("span", {}, Mall.t("host.ticket.called_at", {time: Mall.when("time", ticket.called_at),
                                                          minutes: Host.minutesUntil(ticket.lapses_at)}))
        : h("span", {}, Mall.t("host.ticket.waited", {minutes: Host.minutesSince(ticket.taken_at)})),
      h("span", {class: "badge" + (ticket.walk_in ? "" : " ok")},
        Mall.t(ticket.walk_in ? "host.ticket.walk_in" : "host.ticket.remote")),
    ];
    return h("li", {class: "ticket " + ticket.status, dataset: {ticketNo: ticket.ticket_no, status: ticket.status}},
      h("span", {class: "ticket-no"}, ticket.ticket_no),
      h("span", {class: "ticket-facts"}, facts),
      h("span", {class: "ticket-actions"},
        h("button", {type: "button", class: called ? "primary" : null,
                     "aria-label": Mall.t("host.ticket.seat_label", {number: ticket.ticket_no}),
                     onclick: (e) => end(e.currentTarget, ticket, "seat")}, Mall.t("host.ticket.seat")),
        h("button", {type: "button", class: "danger",
                     "aria-label": Mall.t("host.ticket.skip_label", {number: ticket.ticket_no}),
                     onclick: (e) => end(e.currentTarget, ticket, "skip")}, Mall.t("host.ticket.skip"))));
  }

  function bandCard(band, tickets) {
    const called = tickets.filter((t) => t.status === "called");
    const waiting = tickets.filter((t) => t.status === "waiting");
    const minutes = Math.round(band.estimated_wait_s / 60);
    return h("section", {class: "card band" + (band.open ? "" : " closed"), dataset: {band: band.code},
                         "aria-label": Host.bandName(band)},
      h("header", {class: "band-head"},
        h("h2", {title: band.label}, Host.bandName(band)),
        h("span", {class: "badge " + (band.open ? "ok" : "warn")}, Mall.t(band.open ? "host.band.open" : "host.band.closed")),
        h("span", {class: "band-figures"}, Mall.t("host.band.waiting", {parties: band.waiting, people: band.people_waiting})),
        band.waiting ? h("span", {class: "muted"}, Mall.t("host.band.estimate", {minutes})) : null,
        h("span", {class: "spacer"}),
        h("button", {type: "button", class: "band-toggle",
                     onclick: (e) => setOpen(e.currentTarget, !band.open, [band.code])},
          Mall.t(band.open ? "host.band.close" : "host.band.reopen"))),
      h("div", {class: "band-call"},
        h("button", {type: "button", class: "primary call",
                     "aria-label": Mall.t("host.queue.call_label", {band: band.code}),
                     onclick: (e) => call(e.currentTarget, band)}, Mall.t("host.queue.call")),
        h("p", {class: "field-error band-error", role: "alert"}, errors[band.code] || "")),
      h("h3", {}, Mall.t("host.band.called", {n: called.length})),
      called.length ? h("ul", {class: "tickets"}, called.map(ticketRow)) : h("p", {class: "muted"}, Mall.t("host.band.none_called")),
      h("h3", {}, Mall.t("host.band.in_line", {n: waiting.length})),
      waiting.length ? h("ul", {class: "tickets"}, waiting.map(ticketRow)) : h("p", {class: "muted"}, Mall.t("host.band.none_waiting")));
  }

  function render(data) {
    board = data;
    const anyOpen = data.bands.some((b) => b.open);
    stateEl.textContent = Mall.t(anyOpen ? "host.queue.taking" : "host.queue.not_taking");
    stateEl.className = "badge " + (anyOpen ? "ok" : "warn");
    bandsEl.replaceChildren(...(data.bands.length
      ? data.bands.map((band) => bandCard(band, data.tickets.filter((t) => t.band === band.code)))
      : [h("p", {class: "card muted"}, Mall.t("host.queue.no_bands"))]),
      errors._all ? h("p", {class: "field-error", role: "alert"}, errors._all) : "");
    document.body.dataset.stale = "";
  }

  function offline(err) {
    if (!board) { Mall.failed(bandsEl, err); return; }
    document.body.dataset.stale = "1";
    Mall.toast(Mall.errorText(err), "error");
  }

  Mall.form(walkInForm, async (values) => {
    walkInResult.textContent = "";
    const size = values.party_size === undefined ? undefined : Number(values.party_size);
    const ticket = await Mall.api("POST", `${base()}/walk-ins`, {party_size: size, request_id: Mall.newKey()});
    walkInResult.textContent = Mall.t("host.walk_in.done", {number: ticket.ticket_no, n: ticket.party_size,
                                                            ahead: ticket.ahead === null ? 0 : ticket.ahead});
    walkInForm.reset();
    await poller.refresh();
  }, {codes: {"queue.no_band": "party_size", "queue.party_too_large": "party_size"}});

  document.getElementById("open-queue").addEventListener("click", (e) => setOpen(e.currentTarget, true, null));
  document.getElementById("close-queue").addEventListener("click", (e) => setOpen(e.currentTarget, false, null));

  function show(chosen) {
    store = chosen;
    board = null;
    for (const key of Object.keys(errors)) delete errors[key];
    displayLink.href = `/console/host/display?store=${store.id}`;
    return poller.refresh();
  }

  (async function start() {
    try {
      poller = Host.poll(() => Mall.api("GET", base()), render, offline);
      const chosen = await Host.store(show);
      if (!chosen) {
        bandsEl.replaceChildren(h("p", {class: "card warning"}, Mall.t("host.store.none")));
        return;
      }
      await show(chosen);
    } catch (err) {
      Mall.failed(bandsEl, err);
    } finally {
      Mall.ready();
    }
  })();
})();
