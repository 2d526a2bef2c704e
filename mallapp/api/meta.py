"""Health, the OpenAPI document, the interactive API page, and a bare route for benchmarks."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, send_from_directory
from sqlalchemy import text

from mallapp.api import openapi
from mallapp.api.core import Out, operation, runtime

bp = Blueprint("meta", __name__)

_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mallapp API</title>
<link rel="stylesheet" href="/api/v1/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/api/v1/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/v1/docs/init.js"></script></body></html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#ui",
  deepLinking: true, persistAuthorization: true});
"""


class Health(Out):
    status: str
    database: str
    redis: str


class Pong(Out):
    ok: bool


@operation(bp, "/healthz", "GET", summary="Database and Redis reachability, for a load balancer",
           response=Health, raw=True, also={503: "degraded: the database or Redis is down (see which)"})
def healthz() -> Response:
    rt = runtime()
    checks = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # a health check reports, it does not raise
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if healthy else "degraded", **checks).model_dump()
    return current_app.json.response(body), 200 if healthy else 503


@operation(bp, "/api/v1/ping", "GET", summary="A bare JSON answer (liveness; benchmark baseline)", response=Pong)
def ping() -> Pong:
    return Pong(ok=True)


@operation(bp, "/api/v1/openapi.json", "GET", summary="This document", raw=True)
def openapi_json() -> Response:
    from importlib.metadata import version

    return current_app.json.response(openapi.build(current_app, version("mallapp")))


@operation(bp, "/api/v1/docs", "GET", summary="Interactive API page (Swagger UI, served locally)", raw=True)
def docs() -> Response:
    return Response(_DOCS_PAGE, mimetype="text/html")


@operation(bp, "/api/v1/docs/init.js", "GET", summary="The API page's start-up script", raw=True)
def docs_init() -> Response:
    return Response(_DOCS_INIT, mimetype="text/javascript")


@operation(bp, "/api/v1/docs/assets/<path:name>", "GET", summary="Swagger UI's files", raw=True)
def docs_assets(name: str) -> Response:
    # Swagger UI 5's dist files as the flask-swagger-ui package ships them (its blueprint is not used:
    # our page and init.js above load nothing from another host).
    from importlib.resources import files

    return send_from_directory(str(files("flask_swagger_ui") / "dist"), name, max_age=86400)
