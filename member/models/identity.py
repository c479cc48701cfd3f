"""Members and their WeChat identities: one member, many (appid, openid) pairs, joined by unionid or verified phone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scrm.db import Base, created_at, intpk

MEMBER_ROLES = ("consumer", "employee", "kol")
APP_KINDS = ("oa", "miniprogram")


class Member(Base):
    """A person the brand knows; identities, points, orders and referrals hang off the member."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("role IN ('consumer', 'employee', 'kol')", name="role"),
        CheckConstraint("gender IS NULL OR gender IN ('male', 'female', 'other')", name="gender"),
    )

    id: Mapped[intpk]
    #: WeChat's Open Platform id, the same across the brand's apps; absent for unbound apps.
    unionid: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: E.164, set only once WeChat or an SMS code verified it; unique among members.
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    phone_verified_at: Mapped[datetime | None]
    #: How the phone was verified: "wechat" (getuserphonenumber) or "sms" (one-time code).
    phone_verified_method: Mapped[str | None] = mapped_column(String(8))
    name: Mapped[str | None] = mapped_column(String(80))
    gender: Mapped[str | None] = mapped_column(String(8))
    birthday: Mapped[date | None]
    region: Mapped[str | None] = mapped_column(String(80))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(16), default="consumer")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: How the member first reached us: "oa_follow", "miniprogram", "oauth", "legacy", "staff".
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[created_at]
    last_active_at: Mapped[datetime | None]
    #: The latest paid order; the loyalty half keeps it current, rule-based tags read it.
    last_order_at: Mapped[datetime | None]
    #: new / active / silent / churned, recomputed by the lifecycle job.
    lifecycle_stage: Mapped[str | None] = mapped_column(String(8))
    #: Set when this member was merged into another (the survivor); the row stays for unmerge.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    erased_at: Mapped[datetime | None]

    identities: Mapped[list[WeChatIdentity]] = relationship(back_populates="member", lazy="raise_on_sql")


class WeChatIdentity(Base):
    """One WeChat user as seen by one of the brand's apps (official account or mini-program)."""

    __tablename__ = "wechat_identities"
    __table_args__ = (
        UniqueConstraint("appid", "openid"),
        CheckConstraint("app_kind IN ('oa', 'miniprogram')", name="app_kind"),
        Index("ix_wechat_identities_member_id", "member_id"),
    )

    id: Mapped[intpk]
    appid: Mapped[str] = mapped_column(String(32))
    openid: Mapped[str] = mapped_column(String(64))
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    app_kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    #: Official accounts only: whether the user follows now, and how they came.
    subscribed: Mapped[bool] = mapped_column(default=False)
    subscribe_scene: Mapped[str | None] = mapped_column(String(40))
    qr_scene_str: Mapped[str | None] = mapped_column(String(64))
    first_subscribed_at: Mapped[datetime | None]
    subscribed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    last_interaction_at: Mapped[datetime | None]
    created_at: Mapped[created_at]

    member: Mapped[Member] = relationship(back_populates="identities", lazy="raise_on_sql")
