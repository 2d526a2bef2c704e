"""Build the OpenAPI 3.1 document from the app's declared operations and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mallapp.api.core import Operation

_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content"}
_ERROR_STATUS = {400: "Bad request", 401: "Missing, expired or revoked credentials",
                 403: "The caller may not do this", 404: "Not found", 409: "Conflicts with what already happened",
                 413: "Body too large", 422: "A business rule refused it", 429: "Too many requests",
                 502: "WeChat or another upstream failed"}


def operations(app: Flask) -> list[tuple[str, Operation]]:
    """Every (OpenAPI path, operation) the app serves, in URL-map order."""
    found = []
    for rule in app.url_map.iter_rules():
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is not None:
            found.append((re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), op))
    return found


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
            "details": {"type": "object"}}}}}

    paths: dict[str, dict[str, Any]] = {}
    for path, op in ops:
        spec: dict[str, Any] = {"summary": op.summary, "operationId": f"{op.method.lower()}_{path}",
                                "responses": {}}
        if op.auth:
            # Any one of the schemes will do.
            spec["security"] = [{scheme: []} for scheme in _SECURITY[op.auth]]
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
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
        statuses = {400} if (op.body or op.query) else set()
        if op.auth:
            statuses |= {401, 403}
        if op.body:
            statuses.add(413)
        errors = (*op.errors, *_AUTH_ERRORS.get(op.auth, ()))
        statuses |= {_status_of(code) for code in errors}
        for status in sorted(statuses):
            codes = [c for c in errors if _status_of(c) == status]
            desc = _ERROR_STATUS[status] + (f" (codes: {', '.join(codes)})" if codes else "")
            spec["responses"][str(status)] = {"description": desc, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
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
             "ops_admin": ("opsBearer",), "gateway": ("gatewaySignature",)}
# Refusals an auth kind adds to every operation declared with it.
_AUTH_ERRORS = {"merchant_manager": ("merchant.role_required",)}

# Error codes whose status is not the family default; the rest follow their prefix.
_CODE_STATUS = {
    "wechat.invalid_code": 400, "wechat.code_used": 409, "wechat.rate_limited": 429, "wechat.unreachable": 502,
    "member.unknown_referral_code": 400, "member.birthday_locked": 409, "points.insufficient": 422,
    "gift.not_found": 404, "points.idempotency_mismatch": 409, "request.idempotency_key_required": 400,
    "checkin.already_today": 409, "checkin.location_required": 400, "checkin.too_far": 422,
    "card.invalid": 400, "card.expired": 400, "purchase.receipt_conflict": 409, "purchase.time_out_of_range": 422,
    "purchase.not_found": 404, "refund.exceeds_purchase": 422, "refund.number_conflict": 409,
    "ops.bad_credentials": 401, "auth.too_many_attempts": 429, "ops.admin_required": 403, "zone.not_found": 404,
    "store.not_found": 404,
    "sale_item.not_found": 404, "beacon.not_found": 404, "gateway.not_found": 404, "zone.invalid_polygon": 400,
    "zone.store_required": 422, "venue.unknown_zone": 422, "venue.unknown_store": 422,
    "venue.unknown_sale_item": 422, "venue.unknown_merchant": 422, "beacon.unknown_uuid": 422,
    "beacon.duplicate": 409, "beacon.item_not_in_store": 422, "store.in_use": 409, "sale_item.in_use": 409,
    "footfall.invalid_range": 400,
}

# Sightings and gateways (mallapp.domain.proximity.ingest).
_CODE_STATUS.update({
    "sightings.unknown_uuid": 422, "sightings.impossible_rssi": 400, "sightings.invalid_beacon": 400,
    "sightings.stale": 422, "sightings.from_future": 422, "sightings.batch_too_large": 413,
    "sightings.rate_limited": 429, "gateway.unsigned": 401, "gateway.bad_key": 401,
    "gateway.stale_signature": 401, "gateway.bad_signature": 401, "gateway.replayed": 409,
})


# Deals and coupons (mallapp.domain.deals, mallapp.domain.coupons).
_CODE_STATUS.update({
    "deal.not_found": 404, "deal.invalid_state": 409, "deal.store_not_yours": 422, "deal.invalid_window": 400,
    "deal.invalid_benefit": 400, "deal.terms_locked": 409, "deal.quota_below_claimed": 422,
    "deal.not_available": 422, "deal.member_not_eligible": 422, "deal.sold_out": 422, "deal.limit_reached": 422,
    "merchant.not_found": 404, "coupon.not_found": 404, "coupon.invalid_qr": 400, "coupon.wrong_merchant": 422,
    "coupon.already_used": 409, "coupon.wrong_store": 422, "coupon.not_yet_valid": 422, "coupon.expired": 422,
})


# Delivery (mallapp.domain.follows, mallapp.domain.notifications).
_CODE_STATUS.update({"notification.not_found": 404})


# Merchant staff (mallapp.domain.staff).
_CODE_STATUS.update({
    "merchant.bad_credentials": 401, "merchant.role_required": 403, "staff.not_found": 404,
    "staff.username_taken": 409, "staff.self_lockout": 409,
})


# Restaurant queues (mallapp.domain.queueing).
_CODE_STATUS.update({
    "queue.closed": 409, "queue.ticket_active": 409, "queue.no_band": 422, "queue.party_too_large": 422,
    "queue.ticket_not_found": 404, "queue.band_not_found": 404, "queue.nobody_waiting": 409,
    "queue.ticket_closed": 409, "queue.busy": 409, "queue.invalid_bands": 400,
})


# Table reservations (mallapp.domain.reservations, mallapp.domain.reservation_admin).
_CODE_STATUS.update({
    "reservation.store_not_found": 404, "reservation.slot_not_found": 404, "reservation.not_found": 404,
    "reservation.slot_not_available": 422, "reservation.party_size_mismatch": 422, "reservation.full": 409,
    "reservation.overlap": 409, "reservation.too_many": 422, "reservation.request_id_reused": 409,
    "reservation.not_changeable": 409, "reservation.not_active": 409, "reservation.not_today": 422,
    "reservation.invalid_range": 400, "reservation.invalid_bands": 400, "reservation.too_many_slots": 400,
    "reservation.slot_in_use": 409, "reservation.capacity_below_booked": 422,
})


def _status_of(code: str) -> int:
    return _CODE_STATUS[code]
