/* The sign-in form: POST /console/session, then on to the page that asked for it. */
"use strict";

(function () {
  const page = Mall.config.page;
  Mall.form(document.getElementById("sign-in"), async (values) => {
    const answer = await fetch("/console/session", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({audience: page.audience, username: values.username || "", password: values.password || ""}),
    });
    const body = await answer.json().catch(() => null);
    if (!answer.ok) throw new Mall.ApiError(answer.status, body);
    location.href = page.next || body.next;
  }, {codes: {"ops.bad_credentials": "password", "merchant.bad_credentials": "password",
              "auth.too_many_attempts": "password"}});
  Mall.ready();
})();
