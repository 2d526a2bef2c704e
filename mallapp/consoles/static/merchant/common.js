/* What the merchant console's pages share: a benefit and a status as the reader reads them, and the mall's days
 * turned into instants (a deal is valid from the start of its first day to the end of its last, mall time). */
"use strict";

(function () {
  const tz = Mall.config.tz;
  const parts = new Intl.DateTimeFormat("en-US", {timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
                                                  day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
  const dayFormat = new Intl.DateTimeFormat("en-CA", {timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit"});

  /** How far the mall's clock is ahead of UTC at the instant ms (milliseconds). */
  function offsetMs(ms) {
    const p = Object.fromEntries(parts.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
  }

  /** "2026-03-12" -> the ISO instant of 00:00 that day in the mall. */
  function dayStart(day) {
    const [y, m, d] = day.split("-").map(Number);
    const wall = Date.UTC(y, m - 1, d);
    let at = wall - offsetMs(wall);
    at = wall - offsetMs(at);
    return new Date(at).toISOString();
  }

  /** The mall's day (YYYY-MM-DD) of an instant. */
  function dayOf(value) { return dayFormat.format(value instanceof Date ? value : new Date(value)); }

  function addDays(day, n) {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
  }

  /** A deal's last valid day (its ends_at is the start of the day after). */
  function lastDay(endsAt) { return dayOf(new Date(Date.parse(endsAt) - 1)); }

  function benefitText(benefit) {
    const b = benefit || {};
    const amount = b.amount_fen === undefined ? undefined : Mall.yuan(b.amount_fen);
    return Mall.t("merchant.benefit." + b.kind, {amount, percent: b.percent, gift: b.gift, points: b.points,
                                                  hours: b.hours});
  }

  const BADGES = {live: "ok", pending_approval: "warn", paused: "warn", rejected: "bad"};
  function statusBadge(status) {
    return Mall.h("span", {class: "badge " + (BADGES[status] || ""), "data-status": status},
                  Mall.t("merchant.status." + status));
  }

  /** A field problem made here (an amount that is no amount), shown like the API's by Mall.form. */
  function fieldError(field, text) {
    return new Mall.ApiError(400, {error: {code: "request.invalid", message: text,
                                           details: {problems: [{field, problem: text}]}}});
  }

  window.Merchant = {dayStart, dayOf, addDays, lastDay, benefitText, statusBadge, fieldError};
})();
