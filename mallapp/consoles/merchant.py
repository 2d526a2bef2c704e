"""The merchant manager's console: deals with their funnel, coupons redeemed, the store's footfall, staff and the
parking-coupon quota. Managers only (a cashier gets the 403 page); every read and change goes through
``/api/v1/merchant/...`` from the page's script (docs/consoles.md, "Merchants")."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mallapp.consoles import web

bp = Blueprint("merchant_console", __name__, url_prefix="/console/merchant")

# Every page: a staff session of a manager, in the merchant section's navigation.
MANAGER: dict[str, Any] = {"audience": "staff", "requirement": "merchant_manager", "section": "merchant"}


@web.page(bp, "/", title="merchant.deals.title", order=10, template="console/merchant/deals.html",
          data=("/api/v1/merchant/deals", "/api/v1/merchant/stores"), **MANAGER)
def deals() -> None:
    return None


@web.page(bp, "/deals/new", title="merchant.deal.new_title", order=11, nav=False,
          template="console/merchant/deal.html", data=("/api/v1/merchant/stores",), **MANAGER)
def new_deal() -> dict[str, Any]:
    return {"page_config": {"deal_id": None}}


@web.page(bp, "/deals/<int:deal_id>", title="merchant.deal.title", order=12, nav=False,
          template="console/merchant/deal.html",
          data=("/api/v1/merchant/deals/{deal_id}", "/api/v1/merchant/stores"), **MANAGER)
def deal(deal_id: int) -> dict[str, Any]:
    return {"page_config": {"deal_id": deal_id}}


@web.page(bp, "/redemptions", title="merchant.redemptions.title", order=20,
          template="console/merchant/redemptions.html", data=("/api/v1/merchant/redemptions",),
          **MANAGER)
def redemptions() -> None:
    return None


@web.page(bp, "/footfall", title="merchant.footfall.title", order=30, template="console/merchant/footfall.html",
          data=("/api/v1/merchant/stores", "/api/v1/merchant/footfall"), **MANAGER)
def footfall() -> None:
    return None


@web.page(bp, "/staff", title="merchant.staff.title", order=40, template="console/merchant/staff.html",
          data=("/api/v1/merchant/staff",), **MANAGER)
def staff() -> None:
    return None


@web.page(bp, "/parking", title="merchant.parking.title", order=50, template="console/merchant/parking.html",
          data=("/api/v1/merchant/parking/quota", "/api/v1/merchant/parking/usage"), **MANAGER)
def parking() -> None:
    return None
