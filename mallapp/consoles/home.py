"""Where a merchant's staff land after signing in: the till, the host's screen and (managers) the merchant console."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from mallapp.consoles import web

bp = Blueprint("staff_console", __name__, url_prefix="/console/staff")


@web.page(bp, "/", audience="staff", requirement="merchant", title="console.staff.title", section="staff",
          order=0, template="console/staff_home.html", nav=False)
def home() -> dict[str, Any]:
    return {"manager": g.staff_role == "manager"}
