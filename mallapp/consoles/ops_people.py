"""The operations console's people pages: the member desk, campaigns, the deal review queue, merchants, ops users.

Each page is a shell; its script reads and changes everything through the ops API (``/api/v1/ops/...``) with
the caller's session, so the roles, rules and errors are the API's. A page's requirement is that of the API
calls it exists for (docs/service-desk.md, "Ops roles"): any ops user reads members and campaigns, the desk
adjusts points and hands gifts over, marketing builds campaigns, admins review deals and manage merchants
and ops users. What a role may do on a page it can read (adjust points, build a campaign) is told to the
script from the same grants (``ops.GRANTS`` through ``OpsCaller.may``) so it does not offer what the API
would refuse.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from mallapp.consoles import web
from mallapp.domain import ops

bp = Blueprint("ops_people_console", __name__, url_prefix="/console/ops")


def _may(*requirements: str) -> dict[str, bool]:
    caller: ops.OpsCaller = g.ops_user
    return {requirement: caller.may(requirement) for requirement in requirements}


@web.page(bp, "/members", audience="ops", requirement="ops", title="ops_people.desk.title", section="ops", order=30,
          template="console/ops_people/members.html",
          data=("/api/v1/ops/members?q=8000",))  # last four digits: ~100 members share them
def members() -> dict[str, Any]:
    return {"page_config": {"may": _may("ops_desk")}}


@web.page(bp, "/members/<int:member_id>", audience="ops", requirement="ops", title="ops_people.record.title",
          section="ops", order=31, nav=False, template="console/ops_people/member.html",
          data=("/api/v1/ops/members/{member_id}", "/api/v1/ops/members/{member_id}/points"))
def member(member_id: int) -> dict[str, Any]:
    return {"page_config": {"member_id": member_id, "may": _may("ops_desk")}}


@web.page(bp, "/campaigns", audience="ops", requirement="ops", title="ops_people.campaigns.title", section="ops",
          order=40, template="console/ops_people/campaigns.html", data=("/api/v1/ops/campaigns",))
def campaigns() -> dict[str, Any]:
    return {"page_config": {"may": _may("ops_marketing")}}


@web.page(bp, "/campaigns/new", audience="ops", requirement="ops_marketing", title="ops_people.builder.title",
          section="ops", order=41, nav=False, template="console/ops_people/campaign_new.html",
          data=("/api/v1/ops/stores", "/api/v1/ops/deals?status=live"))
def campaign_new() -> None:
    return None


@web.page(bp, "/campaigns/<int:campaign_id>", audience="ops", requirement="ops", title="ops_people.report.title",
          section="ops", order=42, nav=False, template="console/ops_people/campaign.html",
          data=("/api/v1/ops/campaigns/{campaign_id}", "/api/v1/ops/campaigns/{campaign_id}/report"))
def campaign(campaign_id: int) -> dict[str, Any]:
    return {"page_config": {"campaign_id": campaign_id, "may": _may("ops_marketing")}}


@web.page(bp, "/deals", audience="ops", requirement="ops_admin", title="ops_people.deals.title", section="ops",
          order=45, template="console/ops_people/deals.html",
          data=("/api/v1/ops/deals?status=pending_approval", "/api/v1/ops/merchants", "/api/v1/ops/stores"))
def deals() -> None:
    return None


@web.page(bp, "/merchants", audience="ops", requirement="ops_admin", title="ops_people.merchants.title",
          section="ops", order=50, template="console/ops_people/merchants.html",
          data=("/api/v1/ops/merchants", "/api/v1/ops/stores?include_inactive=true"))
def merchants() -> None:
    return None


@web.page(bp, "/users", audience="ops", requirement="ops_admin", title="ops_people.users.title", section="ops",
          order=55, template="console/ops_people/users.html", data=("/api/v1/ops/users",))
def users() -> dict[str, Any]:
    return {"page_config": {"me": g.ops_user.id}}
