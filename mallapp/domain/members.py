"""Members: who they are in WeChat and in the mall."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp import i18n
from mallapp.db import Base, UTCDateTime, get_or_404
from mallapp.domain import points
from mallapp.errors import Conflict, InvalidInput, NotFound

GENDERS = ("unknown", "male", "female")
# Referral codes are read aloud and typed: no 0/O, 1/I/L.
_REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (CheckConstraint("gender IN ('unknown', 'male', 'female')", name="gender"),
                      CheckConstraint("locale IN ('zh-CN', 'en')", name="locale"),
                      # The service desk finds a member by the full number or its last four digits
                      # (mallapp.domain.desk.search): both are indexed, so neither search scans the table.
                      Index("ix_members_phone", "phone"),
                      Index("ix_members_phone_last4", "phone_last4"),
                      # Nickname substrings: a trigram index on PostgreSQL (migration 0017 creates pg_trgm).
                      Index("ix_members_nickname_trgm", "nickname", postgresql_using="gin",
                            postgresql_ops={"nickname": "gin_trgm_ops"}))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    nickname: Mapped[str | None] = mapped_column(String(40))
    gender: Mapped[str] = mapped_column(String(8), default="unknown")
    birthday: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(20))
    # The phone's last four digits, kept by set_phone (and erased with it): the desk's "last four" search.
    phone_last4: Mapped[str | None] = mapped_column(String(4))
    referral_code: Mapped[str] = mapped_column(String(8), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    # Set by segmentation; the points rules look up a multiplier for it.
    tier: Mapped[str | None] = mapped_column(String(16))
    # The language the member reads their messages in (mallapp.i18n.LOCALES); None: never chosen, the
    # default (zh-CN).
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def new_referral_code() -> str:
    return "".join(secrets.choice(_REFERRAL_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class EarningProfile:
    """What the points rules need to know about a member."""

    tier: str | None
    birthday: date | None
    referred_by_id: int | None = None


_EARNING_PROFILE = select(Member.tier, Member.birthday, Member.referred_by_id).where(Member.id == bindparam("member"))


def earning_profile(session: Session, member_id: int) -> EarningProfile:
    """The member's tier, birthday and referrer, or NotFound (a lean read for the purchase path)."""
    row = session.execute(_EARNING_PROFILE, {"member": member_id}).first()
    if row is None:
        raise NotFound("member not found", code="member.not_found")
    return EarningProfile(row.tier, row.birthday, row.referred_by_id)


def get(session: Session, member_id: int) -> Member:
    """Return the member or raise NotFound."""
    return get_or_404(session, Member, member_id, code="member.not_found", message="member not found")


def get_many(session: Session, member_ids: Iterable[int]) -> list[Member]:
    """The members with these ids that exist, in id order (chunked: an IN list stays short)."""
    ids = sorted(set(member_ids))
    found: list[Member] = []
    for start in range(0, len(ids), 1000):
        found.extend(session.scalars(select(Member).where(Member.id.in_(ids[start:start + 1000])).order_by(Member.id)))
    return found


def delivery_details(session: Session, member_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Each member's (openid, locale): the address of a WeChat message and the language to write it in."""
    ids = list(set(member_ids))
    if not ids:
        return {}
    return {row.id: (row.openid, row.locale or i18n.DEFAULT) for row in
            session.execute(select(Member.id, Member.openid, Member.locale).where(Member.id.in_(ids)))}


def locale_of(member: Member) -> str:
    """The language the member reads: their choice, else the default (zh-CN)."""
    return member.locale or i18n.DEFAULT


def sign_in(session: Session, *, openid: str, unionid: str | None, now: datetime,
            referral_code: str | None = None, locale: str | None = None) -> tuple[Member, bool]:
    """Find the member for an openid or create one; return (member, created).

    ``locale`` is the phone's language (wx.getSystemInfo().language: ``zh_CN``, ``en``...): it becomes the
    member's locale when they have none yet (one they chose is kept; a language we do not speak is ignored).

    A new member is linked to the member whose ``referral_code`` it brings; an unknown code links no one
    (``referred_by_id`` stays None) rather than refusing the sign-in, which would waste the wx.login code.
    """
    member = session.scalar(select(Member).where(Member.openid == openid))
    if member is not None:
        if unionid and member.unionid != unionid:
            member.unionid = unionid
        if member.locale is None and i18n.normalise(locale):
            member.locale = i18n.normalise(locale)
        return member, False
    referrer_id = None
    if referral_code:
        referrer_id = session.scalar(select(Member.id).where(Member.referral_code == referral_code.upper()))
    for _ in range(5):
        member = Member(openid=openid, unionid=unionid, referral_code=new_referral_code(),
                        referred_by_id=referrer_id, locale=i18n.normalise(locale), created_at=now)
        try:
            with session.begin_nested():
                session.add(member)
                session.flush()
        except IntegrityError:
            # Either the same openid signed in concurrently, or a referral code collided.
            existing = session.scalar(select(Member).where(Member.openid == openid))
            if existing is not None:
                return existing, False
            continue
        points.open_account(session, member.id)
        return member, True
    raise Conflict("could not allocate a referral code, try again", code="member.retry")


def update_profile(session: Session, member: Member, changes: dict[str, Any]) -> Member:
    """Apply a validated profile change; the birthday can be set once because it earns double points."""
    if "birthday" in changes:
        new = changes["birthday"]
        if member.birthday is not None and new != member.birthday:
            raise Conflict("the birthday is already set and cannot be changed", code="member.birthday_locked")
        member.birthday = new
    if "nickname" in changes:
        member.nickname = changes["nickname"]
    if "gender" in changes:
        member.gender = changes["gender"]
    if "locale" in changes:
        locale = changes["locale"]
        if locale not in i18n.LOCALES:
            problem = f"one of {', '.join(i18n.LOCALES)}"
            raise InvalidInput(f"locale: {problem}", code="request.invalid",
                               details={"problems": [{"field": "locale", "problem": problem}]})
        member.locale = locale
    session.flush()
    return member


def set_phone(session: Session, member: Member, *, country_code: str, pure_number: str) -> Member:
    """Record the phone number WeChat verified for the member, in +<country><number> form."""
    member.phone = f"+{country_code or '86'}{pure_number}"
    member.phone_last4 = last4(member.phone)
    session.flush()
    return member


def last4(phone: str | None) -> str | None:
    """The last four digits of a phone number (what the desk's short search and the mask show)."""
    if phone is None:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else None


def masked_phone(phone: str | None) -> str | None:
    """The phone number as staff who only need to recognise the guest see it: its last four digits (``*******1234``).

    Always seven stars, whatever the number's length, so the mask tells nothing of the country either.
    """
    if phone is None:
        return None
    return "*******" + phone[-4:]


def is_birthday(member: Member | EarningProfile, day: date) -> bool:
    """True on the member's birthday; a 29 February birthday is kept on 28 February otherwise."""
    if member.birthday is None:
        return False
    month, dom = member.birthday.month, member.birthday.day
    if (month, dom) == (2, 29):
        try:
            date(day.year, 2, 29)
        except ValueError:
            dom = 28
    return (day.month, day.day) == (month, dom)
