"""What each member agreed to receive (subscribe-message consent) and what WeChat reported delivering."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, created_at, intpk


class MessageConsent(Base):
    """A user's answer to a subscribe-message prompt for one template (WeChat's one-time subscriptions)."""

    __tablename__ = "message_consents"
    __table_args__ = (
        UniqueConstraint("appid", "openid", "template_id"),
        CheckConstraint("status IN ('accept', 'reject', 'ban', 'filter')", name="status"),
    )

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    appid: Mapped[str] = mapped_column(String(32))
    openid: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(8))
    #: One-time subscriptions allow one message per acceptance; sends consume it.
    remaining_sends: Mapped[int] = mapped_column(default=0)
    #: 1 = H5 page, 2 = in-chat, 0 = mini-program (WeChat's PopupScene).
    popup_scene: Mapped[int | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]


class MessageDelivery(Base):
    """The delivery state WeChat reports for a template, subscribe or mass message."""

    __tablename__ = "message_deliveries"
    __table_args__ = (UniqueConstraint("appid", "msg_id"),)

    id: Mapped[intpk]
    appid: Mapped[str] = mapped_column(String(32))
    msg_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # template | subscribe | mass
    openid: Mapped[str | None] = mapped_column(String(64))
    template_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(40))
    #: The whole report (mass sends carry counts: TotalCount, SentCount, ErrorCount …).
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]
