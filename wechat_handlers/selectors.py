"""Callback reads: the auto-reply rules of an app, and the inbox search for staff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from scrm.db import paginate
from wechat_handlers.models import AutoReplyRule, InboxMessage
from wechat_handlers.rules import ReplyRule


def active_rules(session: Session, appid: str) -> tuple[ReplyRule, ...]:
    """The active rules that apply to `appid` (its own and the brand-wide ones), as cacheable values."""
    rows = session.scalars(
        select(AutoReplyRule).where(
            AutoReplyRule.is_active.is_(True), or_(AutoReplyRule.appid == appid, AutoReplyRule.appid.is_(None))
        )
    )
    return tuple(
        ReplyRule(
            id=r.id, trigger=r.trigger, pattern=r.pattern, reply_type=r.reply_type, reply=r.reply, priority=r.priority
        )
        for r in rows
    )


def replayed_with_another_body(session: Session, *, appid: str, replay_key: str, body_digest: str) -> bool:
    """Whether this signed query (``pipeline.replay_digest``) was already accepted with a different body: a replay,
    not a WeChat retry."""
    stored = session.scalar(
        select(InboxMessage.body_digest).where(InboxMessage.appid == appid, InboxMessage.replay_key == replay_key)
    )
    return stored is not None and stored != body_digest


def list_rules(session: Session, *, appid: str | None, limit: int, offset: int) -> tuple[list[AutoReplyRule], int]:
    query = select(AutoReplyRule).order_by(AutoReplyRule.priority, AutoReplyRule.id)
    if appid is not None:
        query = query.where(AutoReplyRule.appid == appid)
    return paginate(session, query, limit=limit, offset=offset)


def search_inbox(
    session: Session,
    *,
    appid: str | None = None,
    openid: str | None = None,
    msg_type: str | None = None,
    event: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    limit: int,
    offset: int,
) -> tuple[list[InboxMessage], int]:
    """Inbox rows matching every given filter, newest first."""
    query = select(InboxMessage)
    if appid:
        query = query.where(InboxMessage.appid == appid)
    if openid:
        query = query.where(InboxMessage.openid == openid)
    if msg_type:
        query = query.where(InboxMessage.msg_type == msg_type)
    if event:
        query = query.where(func.lower(InboxMessage.event) == event.lower())
    if received_from:
        query = query.where(InboxMessage.received_at >= received_from)
    if received_to:
        query = query.where(InboxMessage.received_at < received_to)
    return paginate(session, query.order_by(InboxMessage.id.desc()), limit=limit, offset=offset)
