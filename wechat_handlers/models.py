"""The callback inbox (one row per WeChat message, deduplicated) and staff-managed auto-reply rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, created_at, intpk

INBOX_PENDING = "pending"
INBOX_DONE = "done"
INBOX_FAILED = "failed"

RULE_TRIGGERS = ("keyword_exact", "keyword_contains", "follow", "scan", "click", "default")
REPLY_TYPES = ("text", "image", "news")


class InboxMessage(Base):
    """A verified, decrypted callback; the unique (appid, dedup_key) makes WeChat's retries no-ops."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("appid", "dedup_key"),
        # The replay cache: a signed query (timestamp, nonce, signature) is accepted once, in the same commit
        # as the message it carried, so a replay with another body can never be stored.
        UniqueConstraint("appid", "replay_key"),
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
        Index("ix_inbox_appid_openid_received_at", "appid", "openid", "received_at"),
        Index("ix_inbox_received_at", "received_at"),
    )

    id: Mapped[intpk]
    appid: Mapped[str] = mapped_column(String(32))
    #: MsgId, MsgID, or FromUserName+CreateTime+Event+EventKey (WeChat's own dedup advice, refined).
    dedup_key: Mapped[str] = mapped_column(String(400))
    openid: Mapped[str] = mapped_column(String(64))
    msg_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(64))
    event_key: Mapped[str | None] = mapped_column(String(400))
    create_time: Mapped[int]
    #: The decrypted XML exactly as WeChat sent it (the system of record for reprocessing).
    raw_xml: Mapped[str] = mapped_column(Text)
    #: SHA-256 of the signed query's timestamp:nonce:signature, and of the raw request body; a repeat of the
    #: query with the same body is WeChat retrying, with another body it is a replay (None: stored without HTTP).
    replay_key: Mapped[str | None] = mapped_column(String(64))
    body_digest: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=INBOX_PENDING)
    handler: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[created_at]
    handled_at: Mapped[datetime | None]


class AutoReplyRule(Base):
    """A passive reply chosen by keyword, follow, scan scene, menu click, or as the default."""

    __tablename__ = "auto_reply_rules"
    __table_args__ = (
        CheckConstraint("trigger IN ('" + "', '".join(RULE_TRIGGERS) + "')", name="trigger"),
        CheckConstraint("reply_type IN ('" + "', '".join(REPLY_TYPES) + "')", name="reply_type"),
    )

    id: Mapped[intpk]
    #: None: the rule applies to every official account of the brand.
    appid: Mapped[str | None] = mapped_column(String(32), index=True)
    trigger: Mapped[str] = mapped_column(String(24))
    #: The keyword, scene_str or menu key the trigger matches (empty for follow/default).
    pattern: Mapped[str | None] = mapped_column(String(200))
    reply_type: Mapped[str] = mapped_column(String(16))
    #: text: {"content"}; image: {"media_id"}; news: {"articles": [{title, description, url, picurl}]}.
    reply: Mapped[dict[str, Any]]
    priority: Mapped[int] = mapped_column(default=100)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]
