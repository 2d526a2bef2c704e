"""The member's own data (the PIPL's right of access) and the erasure of the member's account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint
from pydantic import Field

from mallapp.adapters import wechat
from mallapp.api.core import Out, current_member_id, operation, runtime, transaction
from mallapp.domain import auth, privacy

bp = Blueprint("privacy", __name__, url_prefix="/api/v1")


class MyDataOut(Out):
    """Everything the mall holds about the member: the profile, then one list of rows per kind of record."""

    profile: dict[str, Any]
    sections: dict[str, list[dict[str, Any]]] = Field(
        description="by record kind (points_entries, purchases, coupons, checkins, mall_visits, notifications, "
                    "follows, queue_tickets, reservations, ...): the member's rows, every column")


class DeletionOut(Out):
    member_id: int
    erased_at: datetime
    erased_by: str
    fields: list[str] = Field(description="the profile fields cleared")
    deleted: dict[str, int] = Field(description="rows deleted, by table")
    replayed: bool = Field(description="true when the account had been erased before; nothing changed")


@operation(bp, "/me/data", "GET", summary="Everything the mall holds about the member (a copy to keep)",
           auth="member", response=MyDataOut)
def my_data() -> MyDataOut:
    with transaction() as session:
        data = privacy.export(session, current_member_id())
    profile = data.pop("profile")
    return MyDataOut(profile=profile, sections=data)


@operation(bp, "/me", "DELETE",
           summary="Erase the member's account: personal data cleared or deleted, the ledger kept anonymous, "
                   "every token revoked", auth="member", response=DeletionOut)
def delete_me() -> DeletionOut:
    rt = runtime()
    member_id = current_member_id()
    with transaction() as session:
        record, replayed = privacy.erase(session, member_id, rt.now())
    # After the commit: a rolled-back erasure leaves the member signed in.
    auth.revoke_member_tokens(rt.redis, member_id)
    wechat.forget_session_key(rt.redis, member_id)
    return DeletionOut(**record, replayed=replayed)
