"""A member sees everything the mall holds about them (GET /me/data) and erases the account (DELETE /me)."""

from __future__ import annotations

from factories import api_error
from sqlalchemy import func, select

from mallapp.domain import members, privacy
from mallapp.domain.members import Member
from mallapp.domain.points import PointsEntry
from mallapp.domain.privacy import MemberDeletion

ME = "/api/v1/me"


def _with_history(rt, client, member) -> int:
    """The member: a nickname, a phone, a check-in, a follow-free inbox message; returns the member id."""
    headers = member["headers"]
    assert client.patch(ME, json={"nickname": "Lin", "birthday": "1990-05-04"}, headers=headers).status_code == 200
    assert client.post("/api/v1/checkins", json={}, headers=headers).status_code in (200, 201)
    member_id = client.get(ME, headers=headers).get_json()["id"]
    with rt.sessions.begin() as s:
        members.set_phone(s, s.get_one(Member, member_id), country_code="86", pure_number="13812341234")
    return member_id


def test_the_export_holds_the_profile_and_every_kind_of_record(rt, client, member):
    member_id = _with_history(rt, client, member)
    data = client.get(f"{ME}/data", headers=member["headers"])
    assert data.status_code == 200, data.get_json()
    body = data.get_json()
    assert body["profile"]["id"] == member_id and body["profile"]["nickname"] == "Lin"
    assert body["profile"]["phone"] == "+8613812341234" and body["profile"]["birthday"] == "1990-05-04"
    sections = body["sections"]
    assert {"points_entries", "purchases", "coupons", "checkins", "mall_visits", "zone_visits", "notifications",
            "follows", "queue_tickets", "reservations", "subscribe_quotas"} <= set(sections)
    assert len(sections["checkins"]) == 1 and sections["points_entries"][0]["reason"] == "checkin"
    assert all(row["member_id"] == member_id for rows in sections.values() for row in rows)


def test_deleting_the_account_erases_it_keeps_the_ledger_and_revokes_every_token(rt, client, members_api, member):
    member_id = _with_history(rt, client, member)
    second = members_api.sign_in(openid="o-member-1")  # a second device
    done = client.delete(ME, headers=member["headers"])
    assert done.status_code == 200, done.get_json()
    record = done.get_json()
    assert record["member_id"] == member_id and record["erased_by"] == "member" and record["replayed"] is False
    assert {"openid", "nickname", "phone", "birthday", "referral_code"} <= set(record["fields"])
    for headers in (member["headers"], second["headers"]):
        api_error(client.get(ME, headers=headers), "auth.invalid_token")
    with rt.sessions.begin() as s:
        row = s.get_one(Member, member_id)
        assert row.openid == f"erased:{member_id}" and (row.nickname, row.phone, row.birthday) == (None, None, None)
        assert not row.referral_code.startswith(tuple("23456789ABCDEFGHJKMNPQRSTUVWXYZ"))
        # The ledger stays, as an anonymous record (the database refuses to change it anyway).
        assert s.scalar(select(func.count()).where(PointsEntry.member_id == member_id)) == 1
        assert s.scalar(select(func.count()).select_from(MemberDeletion)) == 1
    # The same WeChat user signing in again is a new member.
    again = members_api.sign_in(openid="o-member-1")
    assert again["new_member"] is True and again["member"]["id"] != member_id


def test_erasing_twice_answers_the_first_record(rt, client, member):
    member_id = _with_history(rt, client, member)
    first = client.delete(ME, headers=member["headers"]).get_json()
    with rt.sessions.begin() as s:
        record, replayed = privacy.erase(s, member_id, rt.now())
    assert replayed is True and record["fields"] == first["fields"] and record["deleted"] == first["deleted"]
    with rt.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(MemberDeletion)) == 1
