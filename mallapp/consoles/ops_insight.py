"""The operations console's insight pages: the dashboard (/console/ops/), the member reports as charts, and
footfall and dwell over the floor plan. Each page's script reads the JSON API (docs/consoles.md,
"Operations: dashboard, reports, footfall"); nothing here computes a figure.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mallapp.consoles import web

bp = Blueprint("ops_insight_console", __name__, url_prefix="/console/ops")

REPORTS = "/api/v1/ops/reports"


@web.page(bp, "/", audience="ops", requirement="ops", title="console_ops_insight.dashboard.title", section="ops",
          order=10, template="console/ops_insight/dashboard.html", data=("/api/v1/ops/dashboard",))
def dashboard() -> dict[str, Any]:
    return {"page_config": {}}


# The seven reads are fetched in parallel by the page's script (Promise.all).
@web.page(bp, "/reports", audience="ops", requirement="ops", title="console_ops_insight.reports.title", section="ops",
          order=11, template="console/ops_insight/reports.html",
          data=(f"{REPORTS}/t-tiers", f"{REPORTS}/valuable-share", f"{REPORTS}/rfm", f"{REPORTS}/lifecycle",
                f"{REPORTS}/cohorts", f"{REPORTS}/frequent-visitors-and-big-spenders", f"{REPORTS}/lifetime-value"))
def reports() -> dict[str, Any]:
    return {"page_config": {}}


@web.page(bp, "/footfall", audience="ops", requirement="ops", title="console_ops_insight.footfall.title",
          section="ops", order=12, template="console/ops_insight/footfall.html",
          data=("/api/v1/ops/floors", "/api/v1/ops/floor-plan?floor={floor}", "/api/v1/ops/footfall",
                "/api/v1/ops/footfall/hours?floor={floor}"))
def footfall() -> dict[str, Any]:
    return {"page_config": {}}
