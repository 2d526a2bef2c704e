"""Ops roles: every ops endpoint's decision (which roles may call it), walked with every role.

DECISIONS is the table of docs/service-desk.md ("Ops roles"): each ops endpoint and the requirement it
declares (a key of mallapp.domain.ops.GRANTS). A new ops endpoint fails
test_every_ops_endpoint_has_a_decision until its line is added here (and to the docs' table), and the walk
calls each endpoint as each role: a role the requirement grants gets past the check (whatever the answer
then: 200, 400 or 404), every other role gets 403 with the requirement's code.
"""

from __future__ import annotations

import re

import pytest

from mallapp.api.core import OPS_AUTH
from mallapp.domain import ops

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

# (method, Flask rule) -> requirement. The sign-in (POST /api/v1/ops/auth) needs no token and is not here.
DECISIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/ops/auth/logout"): "ops",
    ("POST", "/api/v1/ops/users/<int:user_id>/unlock"): "ops_admin",
    ("GET", "/api/v1/ops/zones"): "ops",
    ("POST", "/api/v1/ops/zones"): "ops_admin",
    ("GET", "/api/v1/ops/zones/<int:zone_id>"): "ops",
    ("PATCH", "/api/v1/ops/zones/<int:zone_id>"): "ops_admin",
    ("DELETE", "/api/v1/ops/zones/<int:zone_id>"): "ops_admin",
    ("GET", "/api/v1/ops/stores"): "ops",
    ("POST", "/api/v1/ops/stores"): "ops_admin",
    ("GET", "/api/v1/ops/stores/<int:store_id>"): "ops",
    ("PATCH", "/api/v1/ops/stores/<int:store_id>"): "ops_admin",
    ("DELETE", "/api/v1/ops/stores/<int:store_id>"): "ops_admin",
    ("GET", "/api/v1/ops/stores/<int:store_id>/items"): "ops",
    ("POST", "/api/v1/ops/stores/<int:store_id>/items"): "ops_admin",
    ("GET", "/api/v1/ops/items/<int:item_id>"): "ops",
    ("PATCH", "/api/v1/ops/items/<int:item_id>"): "ops_admin",
    ("DELETE", "/api/v1/ops/items/<int:item_id>"): "ops_admin",
    ("GET", "/api/v1/ops/beacons"): "ops",
    ("GET", "/api/v1/ops/alerts"): "ops",
    ("POST", "/api/v1/ops/alerts/<int:alert_id>/acknowledge"): "ops_desk",
    ("POST", "/api/v1/ops/beacons"): "ops_admin",
    ("GET", "/api/v1/ops/beacons/<int:beacon_id>"): "ops",
    ("PATCH", "/api/v1/ops/beacons/<int:beacon_id>"): "ops_admin",
    ("DELETE", "/api/v1/ops/beacons/<int:beacon_id>"): "ops_admin",
    ("GET", "/api/v1/ops/gateways"): "ops",
    ("POST", "/api/v1/ops/gateways"): "ops_admin",
    ("GET", "/api/v1/ops/gateways/<int:gateway_id>"): "ops",
    ("PATCH", "/api/v1/ops/gateways/<int:gateway_id>"): "ops_admin",
    ("POST", "/api/v1/ops/gateways/<int:gateway_id>/key"): "ops_admin",
    ("DELETE", "/api/v1/ops/gateways/<int:gateway_id>"): "ops_admin",
    ("GET", "/api/v1/ops/presence"): "ops",
    ("GET", "/api/v1/ops/floor-plan"): "ops",
    ("GET", "/api/v1/ops/floors"): "ops",
    ("PUT", "/api/v1/ops/floors/<number>"): "ops_admin",
    ("GET", "/api/v1/ops/footfall"): "ops",
    ("GET", "/api/v1/ops/dead-letters"): "ops",
    ("POST", "/api/v1/ops/dead-letters/replay"): "ops_admin",
    ("GET", "/api/v1/ops/deals"): "ops",
    ("POST", "/api/v1/ops/deals"): "ops_marketing",
    ("POST", "/api/v1/ops/deals/<int:deal_id>/approve"): "ops_admin",
    ("POST", "/api/v1/ops/deals/<int:deal_id>/reject"): "ops_admin",
    ("PATCH", "/api/v1/ops/merchants/<int:merchant_id>"): "ops_admin",
    ("GET", "/api/v1/ops/members"): "ops",
    ("GET", "/api/v1/ops/members/<int:member_id>"): "ops",
    ("GET", "/api/v1/ops/members/<int:member_id>/points"): "ops",
    ("POST", "/api/v1/ops/members/<int:member_id>/points-adjustments"): "ops_desk",
    ("GET", "/api/v1/ops/gifts/<pickup_code>"): "ops",
    ("POST", "/api/v1/ops/gifts/<pickup_code>/hand-over"): "ops_desk",
    ("GET", "/api/v1/ops/campaigns"): "ops",
    ("POST", "/api/v1/ops/campaigns"): "ops_marketing",
    ("POST", "/api/v1/ops/campaigns/audience-count"): "ops_marketing",
    ("GET", "/api/v1/ops/campaigns/<int:campaign_id>"): "ops",
    ("POST", "/api/v1/ops/campaigns/<int:campaign_id>/launch"): "ops_marketing",
    ("POST", "/api/v1/ops/campaigns/<int:campaign_id>/cancel"): "ops_marketing",
    ("GET", "/api/v1/ops/campaigns/<int:campaign_id>/report"): "ops",
    ("GET", "/api/v1/ops/reports/new-members"): "ops",
    ("GET", "/api/v1/ops/reports/cohorts"): "ops",
    ("GET", "/api/v1/ops/reports/frequent-visitors-and-big-spenders"): "ops",
    ("GET", "/api/v1/ops/reports/valuable-share"): "ops",
    ("GET", "/api/v1/ops/reports/t-tiers"): "ops",
    ("GET", "/api/v1/ops/reports/lifecycle"): "ops",
    ("GET", "/api/v1/ops/reports/rfm"): "ops",
    ("GET", "/api/v1/ops/reports/lifetime-value"): "ops",
    ("GET", "/api/v1/ops/reports/lapsed"): "ops_marketing",
    ("GET", "/api/v1/ops/reports/lost"): "ops_marketing",
    ("POST", "/api/v1/ops/segments/runs"): "ops_marketing",
    ("GET", "/api/v1/ops/segments/runs"): "ops",
    ("GET", "/api/v1/ops/segments/runs/<int:run_id>"): "ops",
    ("GET", "/api/v1/ops/car-parks"): "ops",
    ("POST", "/api/v1/ops/car-parks"): "ops_admin",
    ("GET", "/api/v1/ops/car-parks/<int:car_park_id>"): "ops",
    ("PATCH", "/api/v1/ops/car-parks/<int:car_park_id>"): "ops_admin",
    ("PUT", "/api/v1/ops/car-parks/<int:car_park_id>/tariff"): "ops_admin",
    ("PUT", "/api/v1/ops/car-parks/<int:car_park_id>/rules"): "ops_admin",
    ("POST", "/api/v1/ops/car-parks/<int:car_park_id>/levels"): "ops_admin",
    ("PATCH", "/api/v1/ops/car-parks/<int:car_park_id>/levels/<int:level_id>"): "ops_admin",
    ("POST", "/api/v1/ops/car-parks/<int:car_park_id>/gates"): "ops_admin",
    ("GET", "/api/v1/ops/car-parks/<int:car_park_id>/bays"): "ops",
    ("POST", "/api/v1/ops/car-parks/<int:car_park_id>/bays"): "ops_admin",
    ("POST", "/api/v1/ops/car-parks/<int:car_park_id>/bays/range"): "ops_admin",
    ("PATCH", "/api/v1/ops/car-parks/<int:car_park_id>/bays/<int:bay_id>"): "ops_admin",
    ("GET", "/api/v1/ops/car-parks/<int:car_park_id>/bays/<int:bay_id>/qr"): "ops",
    ("GET", "/api/v1/ops/car-parks/<int:car_park_id>/bays/qr"): "ops",

    ("GET", "/api/v1/ops/parking/sessions"): "ops",
    ("GET", "/api/v1/ops/parking/sessions/<int:session_id>"): "ops",
    ("GET", "/api/v1/ops/parking/days"): "ops",
    ("GET", "/api/v1/ops/parking/reconciliations"): "ops",
    ("POST", "/api/v1/ops/parking/reconciliations"): "ops_admin",

    # parking coupons (parkcoupons)
    ("GET", "/api/v1/ops/parking/quotas"): "ops",
    ("POST", "/api/v1/ops/merchants/<int:merchant_id>/parking-quota"): "ops_admin",

    # merchants and ops users managed from the ops console (opspeople)
    ("GET", "/api/v1/ops/merchants"): "ops",
    ("POST", "/api/v1/ops/merchants"): "ops_admin",
    ("POST", "/api/v1/ops/merchants/<int:merchant_id>/key"): "ops_admin",
    ("GET", "/api/v1/ops/users"): "ops_admin",
    ("POST", "/api/v1/ops/users"): "ops_admin",
    ("PATCH", "/api/v1/ops/users/<int:user_id>"): "ops_admin",

    # opsinsight: the dashboard and footfall by hour (docs/consoles.md)
    ("GET", "/api/v1/ops/dashboard"): "ops",
    ("GET", "/api/v1/ops/footfall/hours"): "ops",

    # the walkable graph (graph, issue 17; docs/wayfinding.md)
    ("GET", "/api/v1/ops/wayfinding/graph"): "ops",
    ("PUT", "/api/v1/ops/wayfinding/graph"): "ops_admin",
    ("GET", "/api/v1/ops/wayfinding/graph/summary"): "ops",
    ("POST", "/api/v1/ops/wayfinding/graph/nodes"): "ops_admin",
    ("PATCH", "/api/v1/ops/wayfinding/graph/nodes/<node_id>"): "ops_admin",
    ("DELETE", "/api/v1/ops/wayfinding/graph/nodes/<node_id>"): "ops_admin",
    ("POST", "/api/v1/ops/wayfinding/graph/edges"): "ops_admin",
    ("PATCH", "/api/v1/ops/wayfinding/graph/edges/<edge_id>"): "ops_admin",
    ("DELETE", "/api/v1/ops/wayfinding/graph/edges/<edge_id>"): "ops_admin",
}
# The code each requirement refuses with (mallapp.api.core._authenticate_ops).
REFUSAL = {"ops_admin": "ops.admin_required", "ops_marketing": "ops.marketing_required",
           "ops_desk": "ops.desk_required"}
# What each role may do, stated once more in plain words (docs/service-desk.md): the walk checks GRANTS gives it.
ROLE_MAY = {
    "admin": {"ops", "ops_admin", "ops_marketing", "ops_desk"},
    "marketing": {"ops", "ops_marketing"},
    "desk": {"ops", "ops_desk"},
    "viewer": {"ops"},
}


def _ops_endpoints(app) -> dict[tuple[str, str], str | None]:
    found = {}
    for rule in app.url_map.iter_rules():
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is not None and (op.auth in OPS_AUTH or rule.rule.startswith("/api/v1/ops")):
            found[(op.method, rule.rule)] = op.auth
    return found


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_ops_endpoint_has_a_decision(app):
    found = _ops_endpoints(app)
    found.pop(("POST", "/api/v1/ops/auth"))
    assert found == DECISIONS


def test_the_roles_table_is_what_grants_says():
    assert set(ROLE_MAY) == set(ops.ROLES)
    for role, may in ROLE_MAY.items():
        assert {req for req, roles in ops.GRANTS.items() if role in roles} == may, role
    assert sorted(ops.SEES_PHONES) == ["admin", "desk"]


def _url(rule: str) -> str:
    """The rule with each parameter filled by a value that names nothing (an int id, a pick-up code)."""
    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "999999" if m.group(1) == "int" else "NOSUCHCODE", rule)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", ops.ROLES)
def test_each_role_may_call_exactly_what_the_table_grants(client, request, role):
    headers = request.getfixturevalue(f"ops_{role}")["headers"]
    # The logout revokes the token: last.
    walk = sorted(DECISIONS.items(), key=lambda item: item[0][1] == "/api/v1/ops/auth/logout")
    for (method, rule), requirement in walk:
        body = {} if method in ("POST", "PATCH") else None
        response = client.open(_url(rule), method=method, json=body, headers=headers)
        if requirement in ROLE_MAY[role]:
            assert response.status_code not in (401, 403), (role, method, rule, response.get_json())
        else:
            assert response.status_code == 403, (role, method, rule, response.status_code)
            assert response.get_json()["error"]["code"] == REFUSAL[requirement], (role, method, rule)
