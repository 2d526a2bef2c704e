"""The till: a cashier's tablet page (/console/till/) for posting purchases, redeeming coupons and refunding.

One touch page over the merchant API: who the member is (their card code, scanned by the camera where the
browser allows, or typed; or their full phone number when their phone is dead), the amount in yuan, the
coupon, today's receipts with refunds, today's promotions. The page's script (static/till/till.js) holds no
rule of its own: amounts are checked as amounts, everything else is the API's answer.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mallapp.consoles import web

bp = Blueprint("till_console", __name__, url_prefix="/console/till")


@web.page(bp, "/", audience="staff", requirement="merchant", title="till.title", section="till", order=10,
          template="console/till/till.html",
          data=("/api/v1/merchant/till", "/api/v1/merchant/purchases?limit=20"))
def till() -> dict[str, Any]:
    return {"page_config": {"receipts_page": 20}}
