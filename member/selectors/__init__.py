"""Member reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from member.models import Member, WeChatIdentity


def get_identity(session: Session, *, appid: str, openid: str) -> WeChatIdentity | None:
    return session.scalar(select(WeChatIdentity).where(WeChatIdentity.appid == appid, WeChatIdentity.openid == openid))


def get_member(session: Session, member_id: int) -> Member | None:
    return session.get(Member, member_id)


def list_identities(session: Session, member_id: int) -> list[WeChatIdentity]:
    return list(
        session.scalars(select(WeChatIdentity).where(WeChatIdentity.member_id == member_id).order_by(WeChatIdentity.id))
    )
