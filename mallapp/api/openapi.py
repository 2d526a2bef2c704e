"""Build the OpenAPI 3.1 document from the app's declared operations and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mallapp.api.core import Operation
from mallapp.api.error_index import error_index
from mallapp.errors import Unconfigured

_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content"}
_ERROR_STATUS = {400: "Bad request", 401: "Missing, expired or revoked credentials",
                 403: "The caller may not do this", 404: "Not found", 409: "Conflicts with what already happened",
                 413: "Body too large", 422: "A business rule refused it", 429: "Too many requests",
                 502: "WeChat or another upstream failed"}
# Any operation that reads Redis or the database can answer 503 while one of them is unreachable
# (mallapp.api.outages); documented once, generically, on every such operation rather than per code.
_UNAVAILABLE_TEXT = "Redis or the database cannot be reached right now; retry after Retry-After seconds"
_UNCONFIGURED_TEXT = "or an outside system this call needs is not configured on this installation"


def operations(app: Flask) -> list[tuple[str, Operation]]:
    """Every (OpenAPI path, operation) the app serves, in URL-map order."""
    found = []
    for rule in app.url_map.iter_rules():
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is not None:
            found.append((re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), op))
    return found


_DETAILS = ("safe to show; a text for the code in zh-CN and English is errors.<code> of the catalogues "
            "(mallapp/locales), whose {placeholders} name keys of details")
# details.problems of request.invalid / request.invalid_query (mallapp.api.core._problems), and of
# wayfinding.invalid_graph (a feature's id in place of a field; mallapp.domain.wayfinding.features.problem).
_PROBLEMS = {
    "type": "array", "description": "one entry per defect of the body or query",
    "items": {"type": "object", "required": ["problem"], "anyOf": [{"required": ["field"]}, {"required": ["feature"]}],
              "properties": {
        "field": {"type": "string", "description": "dotted path of the field (items.0.name), or body"},
        "feature": {"type": ["string", "null"], "description": (
            "wayfinding.invalid_graph: the id of the GeoJSON feature at fault, null for the graph as a whole "
            "(docs/wayfinding.md, The checks); kind is then one of wayfinding_admin.problem.<kind>")},
        "problem": {"type": "string", "description": "what is wrong, English, for the developer"},
        "kind": {"type": "string", "description": (
            "stable and machine-readable: pydantic's error type (missing, extra_forbidden, greater_than, "
            "string_too_long, int_type, literal_error, timezone_aware, value_error, ...) or the API's own "
            "(duplicate_key, null_not_allowed, day_or_instant); problems.<kind> of the catalogues says it to a "
            "person, and an unknown kind falls back to problem")},
        "limit": {"type": ["number", "string"], "description": (
            "the bound the kind names, when there is one: gt, ge, lt, le, min_length, max_length, multiple_of "
            "(a number, or text for a date), or the expected choices of literal_error / enum")}}}}


def build(app: Flask, version: str) -> dict[str, Any]:
    ops = operations(app)
    models: set[type[BaseModel]] = set()
    for _, op in ops:
        models.update(m for m in (op.body, op.response) if m is not None)
    keyed = [(m, "validation" if any(op.body is m for _, op in ops) else "serialization") for m in models]
    refs, defs = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "stable, dotted, machine-readable"},
            "message": {"type": "string"},
            "details": {"type": "object", "description": _DETAILS, "properties": {"problems": _PROBLEMS}}}}}}

    paths: dict[str, dict[str, Any]] = {}
    for path, op in ops:
        spec: dict[str, Any] = {"summary": op.summary, "operationId": f"{op.method.lower()}_{path}",
                                "responses": {}}
        if op.auth:
            # Any one of the schemes will do.
            spec["security"] = [{scheme: []} for scheme in _SECURITY[op.auth]]
        converters = {name: conv for conv, name in re.findall(r"<(?:([^:<>]+):)?([^<>]+)>", op.rule)}
        params = [{"name": name, "in": "path", "required": True, "schema": _path_schema(converters.get(name, ""))}
                  for name in re.findall(r"{([^}]+)}", path)]
        if op.query is not None:
            qschema = op.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in qschema.get("required", []),
                               "schema": prop, **({"description": prop["description"]}
                                                  if "description" in prop else {})})
        for name, text in op.headers.items():
            params.append({"name": name, "in": "header", "required": text.startswith("required"),
                           "description": text, "schema": {"type": "string"}})
        if params:
            spec["parameters"] = params
        if op.body is not None:
            spec["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(op.body, "validation")]}}}
        ok: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": refs[(op.response, "serialization")]}}
        spec["responses"][str(op.status)] = ok
        for status, text in sorted(op.also.items()):
            spec["responses"][str(status)] = {**ok, "description": text}
        statuses = {400} if (op.body or op.query) else set()
        if "{" in path:  # no such thing at that URL (http.not_found), before the view or from it
            statuses.add(404)
        if op.auth:
            statuses |= {401, 403}
        if op.body:
            statuses.add(413)
        errors = documented_errors(op)
        statuses |= {_status_of(code) for code in errors}
        for status in sorted(statuses - {503}):  # 503: below, with the outages every operation can meet
            codes = [c for c in errors if _status_of(c) == status]
            desc = _ERROR_STATUS[status] + (f" (codes: {', '.join(codes)})" if codes else "")
            spec["responses"][str(status)] = {"description": desc, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        if not op.raw:  # the raw ones (the document, the API page, /healthz's own answer) need neither
            spec["responses"]["503"] = _unavailable([c for c in errors if _status_of(c) == 503])
        paths.setdefault(path, {})[op.method.lower()] = spec

    return {
        "openapi": "3.1.0",
        "info": {"title": "mallapp API", "version": version,
                 "description": "The JSON API behind the mall's WeChat mini-program, its merchants and operations. "
                                "Every error is {\"error\": {\"code\", \"message\"}} with a 4xx or 5xx status."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "memberBearer": {"type": "http", "scheme": "bearer",
                             "description": "the token from POST /api/v1/auth/wechat"},
            "merchantBearer": {"type": "http", "scheme": "bearer",
                               "description": "the merchant's API key (mk_...); it may call every merchant endpoint"},
            "staffBearer": {"type": "http", "scheme": "bearer",
                            "description": "a merchant staff token from POST /api/v1/merchant/auth (st_...): "
                                           "a cashier's calls the till endpoints, a manager's every merchant "
                                           "endpoint"},
            "opsBearer": {"type": "http", "scheme": "bearer",
                          "description": "an ops user's token from POST /api/v1/ops/auth (ot_...)"},
            "gatewaySignature": {"type": "apiKey", "in": "header", "name": "X-Gateway-Signature",
                                 "description": "HMAC-SHA256 of the batch under the gateway's key, with "
                                                "X-Gateway-Key-Id, X-Gateway-Timestamp and X-Gateway-Nonce "
                                                "(see beacons/README.md)"}}},
    }


_SECURITY = {"member": ("memberBearer",), "merchant": ("merchantBearer", "staffBearer"),
             "merchant_manager": ("merchantBearer", "staffBearer"), "ops": ("opsBearer",),
             "ops_admin": ("opsBearer",), "ops_marketing": ("opsBearer",), "ops_desk": ("opsBearer",), "gateway": ("gatewaySignature",)}
# Refusals an auth kind adds to every operation declared with it.
_AUTH_ERRORS = {"merchant_manager": ("merchant.role_required",)}


def _path_schema(converter: str) -> dict[str, Any]:
    """A path parameter's schema from its Werkzeug converter: ``int`` takes digits only (no sign)."""
    if converter.split("(")[0] == "int":
        return {"type": "integer", "minimum": 0}
    return {"type": "string"}


def documented_errors(op: Operation) -> tuple[str, ...]:
    """The error codes the document lists for ``op``: its own and those its auth kind adds."""
    return (*op.errors, *_AUTH_ERRORS.get(op.auth, ()))


def _unavailable(unconfigured: list[str]) -> dict[str, Any]:
    """The 503 every operation can give: its codes are those raised as 503 (not the class's bare default),
    then the ``unconfigured`` codes the operation itself lists (an outside system not set up here)."""
    index = error_index()
    codes = sorted(code for code, cls in index.classes.items()
                   if cls.status == 503 and not issubclass(cls, Unconfigured)
                   and any(".py:" in site for site in index.sites[code]))
    also = f"; {_UNCONFIGURED_TEXT} (codes: {', '.join(unconfigured)})" if unconfigured else ""
    return {"description": f"{_UNAVAILABLE_TEXT} (codes: {', '.join(codes)}){also}",
            "headers": {"Retry-After": {"description": "seconds to wait before trying again",
                                        "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _status_of(code: str) -> int:
    """The status a documented error code answers with: its raise site's class (mallapp.api.error_index)."""
    return error_index().status(code)
