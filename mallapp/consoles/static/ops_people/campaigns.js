/* Campaigns, newest first (GET /api/v1/ops/campaigns), each linked to its page (result against the control group). */
"use strict";

(function () {
  const {h, t} = Mall;
  const page = Mall.config.page;
  const list = document.getElementById("list");
  const status = document.getElementById("status");
  document.getElementById("new").hidden = !page.may.ops_marketing;

  const columns = [
    {title: "ops_people.campaign.name", value: (c) => h("a", {href: `/console/ops/campaigns/${c.id}`}, c.name)},
    {title: "ops_people.campaign.status", value: (c) => People.label("ops_people.campaign_status", c.status)},
    {title: "ops_people.campaign.timing", value: (c) => People.label("ops_people.timing", c.timing)},
    {title: "ops_people.campaign.control_pct", num: true, value: (c) => c.control_pct + "%"},
    {title: "ops_people.campaign.window_days", num: true, value: (c) => t("ops_people.days", {days: c.window_days})},
    {title: "ops_people.campaign.created_at", value: (c) => Mall.when("datetime", c.created_at)},
  ];

  async function load() {
    const query = status.value ? "?status=" + encodeURIComponent(status.value) : "";
    const found = await Mall.api("GET", "/api/v1/ops/campaigns" + query);
    Mall.table(list, columns, found.campaigns, {empty: "ops_people.campaigns.none"});
  }
  status.addEventListener("change", () => load().catch((err) => Mall.failed(list.parentElement, err)));
  load().catch((err) => Mall.failed(list.parentElement, err)).finally(() => Mall.ready());
})();
