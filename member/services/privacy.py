"""PIPL erasure: pseudonymise a member so no phone, name, openid, unionid or profile text remains, while ids,
ledgers and other members' links (referrals, scores) stay intact. Receivers of `member_erased` scrub their rows."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from member import signals
from member.models import Member, MessageConsent, MessageDelivery, PhoneCode, WeChatIdentity
from scrm import audit
from scrm.clock import utcnow

ERASED_PREFIX = "erased-"


def _merged_sources(session: Session, member_id: int) -> list[Member]:
    """Every member merged (directly or through other merges) into `member_id`: the same person's older rows."""
    found: list[Member] = []
    frontier = [member_id]
    while frontier:
        rows = session.scalars(select(Member).where(Member.merged_into_id.in_(frontier))).all()
        found.extend(rows)
        frontier = [row.id for row in rows]
    return found


def _blank(member: Member) -> None:
    member.phone = None
    member.phone_verified_at = None
    member.phone_verified_method = None
    member.name = None
    member.gender = None
    member.birthday = None
    member.region = None
    member.avatar_url = None
    member.custom_fields = {}
    member.unionid = None


def erase_member(session: Session, member: Member, *, actor: audit.Actor) -> Member:
    """Pseudonymise `member` (and the rows merged into it); idempotent. Points, orders and referral edges keep
    their member ids, so totals and other members' graphs do not change."""
    now = utcnow()
    people = [member, *_merged_sources(session, member.id)]
    ids = [person.id for person in people]
    identities = session.scalars(select(WeChatIdentity).where(WeChatIdentity.member_id.in_(ids))).all()
    renamed: list[tuple[str, str, str]] = []
    for identity in identities:
        if identity.openid.startswith(ERASED_PREFIX):
            continue
        pseudonym = f"{ERASED_PREFIX}{identity.id}"
        renamed.append((identity.appid, identity.openid, pseudonym))
        identity.openid = pseudonym
        identity.unionid = None
    session.flush()
    for appid, openid, pseudonym in renamed:
        session.execute(
            update(MessageConsent)
            .where(MessageConsent.appid == appid, MessageConsent.openid == openid)
            .values(openid=pseudonym)
        )
        session.execute(
            update(MessageDelivery)
            .where(MessageDelivery.appid == appid, MessageDelivery.openid == openid)
            .values(openid=pseudonym)
        )
    session.execute(delete(PhoneCode).where(PhoneCode.member_id.in_(ids)))
    for person in people:
        _blank(person)
        person.erased_at = person.erased_at or now
    session.flush()
    signals.member_erased.send(member.id, session=session, openids=renamed, at=now)
    audit.record(session, actor, "member.erase", target_type="member", target_id=member.id)
    return member
