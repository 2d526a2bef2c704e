"""Operations' floor and parking pages: the floor plan drawn and edited on a map, fleet health with the alerts
feed, and the car parks (tariffs, benefit rules, sessions, revenue, reconciliations).

Every page reads and writes through ``/api/v1/ops/...``; what a role may change is the API's decision. The pages
only hide the controls a role could not use (``may_edit``), so a viewer is not shown buttons that would be refused.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from mallapp.api.core import runtime
from mallapp.consoles import web

bp = Blueprint("ops_floor_console", __name__, url_prefix="/console/ops")


def _may(requirement: str) -> bool:
    return g.ops_user.may(requirement)


@web.page(bp, "/floor-plan", audience="ops", requirement="ops", title="ops_floor.plan.title", section="ops",
          order=60, template="console/ops_floor/plan.html",
          data=("/api/v1/ops/floors", "/api/v1/ops/floor-plan?floor={floor}", "/api/v1/ops/alerts"))
def floor_plan() -> dict[str, Any]:
    rt = runtime()
    return {"may_edit": _may("ops_admin"),
            "page_config": {"may_edit": _may("ops_admin"), "uuids": list(rt.settings.beacons.uuids)}}


@web.page(bp, "/fleet", audience="ops", requirement="ops", title="ops_floor.fleet.title", section="ops", order=65,
          template="console/ops_floor/fleet.html",
          data=("/api/v1/ops/beacons", "/api/v1/ops/gateways", "/api/v1/ops/alerts"))
def fleet() -> dict[str, Any]:
    # Acknowledging an alert is the desk's or an admin's (POST /api/v1/ops/alerts/<id>/acknowledge, ops_desk).
    return {"page_config": {"may_acknowledge": _may("ops_desk"), "refresh_s": 30}}


@web.page(bp, "/parking", audience="ops", requirement="ops", title="ops_floor.parking.title", section="ops",
          order=70, template="console/ops_floor/parking.html",
          data=("/api/v1/ops/car-parks", "/api/v1/ops/car-parks/{car_park_id}", "/api/v1/parking/car-parks"))
def parking() -> dict[str, Any]:
    return {"may_edit": _may("ops_admin"), "page_config": {"may_edit": _may("ops_admin")}}


@web.page(bp, "/parking/sessions", audience="ops", requirement="ops", title="ops_floor.sessions.title",
          section="ops", order=75, template="console/ops_floor/sessions.html",
          data=("/api/v1/ops/car-parks", "/api/v1/ops/parking/sessions?limit=50"))
def parking_sessions() -> None:
    return None


@web.page(bp, "/parking/revenue", audience="ops", requirement="ops", title="ops_floor.revenue.title",
          section="ops", order=80, template="console/ops_floor/revenue.html",
          data=("/api/v1/ops/car-parks", "/api/v1/ops/parking/days?car_park={car_park_code}",
                "/api/v1/ops/parking/reconciliations?car_park={car_park_code}"))
def parking_revenue() -> None:
    return None
