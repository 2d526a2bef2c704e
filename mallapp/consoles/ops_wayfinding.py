"""Operations' walkable graph page: the graph drawn per floor over the floor's outline, the summary and the
checks' findings, import and export of the GeoJSON file, closing and reopening an edge, and trying a route.

The page reads and writes through ``/api/v1/ops/wayfinding/...``, ``/api/v1/stores`` and ``/api/v1/routes``;
what a role may change is the API's decision. The page only hides the controls a viewer could not use
(``may_edit``). docs/consoles.md describes it, docs/wayfinding.md the file format and the endpoints.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from mallapp.consoles import web

bp = Blueprint("ops_wayfinding_console", __name__, url_prefix="/console/ops")


@web.page(bp, "/wayfinding", audience="ops", requirement="ops", title="ops_wayfinding.title", section="ops",
          order=88, template="console/ops_wayfinding/graph.html",
          data=("/api/v1/ops/floors", "/api/v1/ops/wayfinding/graph/summary", "/api/v1/ops/wayfinding/graph",
                "/api/v1/stores?limit=100"))
def wayfinding() -> dict[str, Any]:
    may_edit = g.ops_user.may("ops_admin")
    return {"may_edit": may_edit, "page_config": {"may_edit": may_edit}}
