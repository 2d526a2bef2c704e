/* What the people pages share: labels for the API's codes, the mall's local time for typed dates and times. */
"use strict";

(function () {
  /** The catalogue's text for a code ("ops_people.tier.T1"), or the code itself. */
  function label(prefix, code) {
    if (code === null || code === undefined || code === "") return "—";
    const key = prefix + "." + code;
    return Mall.has(key) ? Mall.t(key) : String(code);
  }

  // The mall's offset from UTC at an instant, in minutes (Intl knows the zone's rules; the browser's zone is not asked).
  function offsetMinutes(tz, instant) {
    const parts = {};
    for (const p of new Intl.DateTimeFormat("en-US", {timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"}).formatToParts(instant)) parts[p.type] = p.value;
    const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
    return Math.round((asUtc - instant.getTime()) / 60000);
  }

  /** A <input type=datetime-local> value, read as the mall's local time, as an ISO instant with its offset; null if empty. */
  function mallInstant(local) {
    if (!local) return null;
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local);
    if (!m) return null;
    const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    const offset = offsetMinutes(Mall.config.tz, new Date(guess));
    const sign = offset >= 0 ? "+" : "-";
    const abs = Math.abs(offset);
    return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:00${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  }

  /** "2026-03-10T10:00" for a datetime-local input, in the mall's zone, from an instant. */
  function mallLocal(instant) {
    const offset = offsetMinutes(Mall.config.tz, instant);
    return new Date(instant.getTime() + offset * 60000).toISOString().slice(0, 16);
  }

  /** A yes/no badge. */
  function badge(ok, yes, no) {
    return Mall.h("span", {class: "badge " + (ok ? "ok" : "bad")}, Mall.t(ok ? yes : no));
  }

  window.People = {label, mallInstant, mallLocal, badge};
})();
