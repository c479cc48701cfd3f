"""Loyalty tables: the points ledger and its balance row, tiers and tier history, coupons, orders and refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, BigIntPK, created_at, intpk

ENTRY_STATES = ("pending", "available", "expired", "reversed")
#: earn / adjust credits are lots that spending consumes; the rest are debits, except `restate`
#: (the spent part of an expired lot, restated as its own row so the lot can leave the balance whole).
ENTRY_KINDS = ("earn", "adjust", "spend", "reverse", "restate")
THRESHOLD_KINDS = ("spend_fen", "points")
COUPON_KINDS = ("amount", "percent")
COUPON_STATES = ("available", "redeemed", "expired")
ORDER_STATUSES = ("paid", "partially_refunded", "refunded")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ('" + "', '".join(values) + "')"


class LoyaltySettings(Base):
    """The brand's earn and tier rules, one row (id 1), edited by staff."""

    __tablename__ = "loyalty_settings"
    __table_args__ = (
        CheckConstraint("points_per_yuan >= 0", name="points_per_yuan"),
        CheckConstraint("pending_days >= 0 AND points_valid_days >= 0", name="days"),
        CheckConstraint("tier_period_days > 0 AND tier_grace_days >= 0", name="tier_days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    points_per_yuan: Mapped[int] = mapped_column(default=1)
    #: Order points stay pending this long (the refund window) before they can be spent.
    pending_days: Mapped[int] = mapped_column(default=7)
    #: Order points expire this many days after they unlock; 0 means they never expire.
    points_valid_days: Mapped[int] = mapped_column(default=365)
    #: A tier, once reached, holds for this long before a downgrade is considered.
    tier_period_days: Mapped[int] = mapped_column(default=365)
    tier_grace_days: Mapped[int] = mapped_column(default=30)
    updated_at: Mapped[datetime | None]


class Tier(Base):
    """A staff-defined membership tier; the highest rank whose threshold a member meets is theirs."""

    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint(_in("threshold_kind", THRESHOLD_KINDS), name="threshold_kind"),
        CheckConstraint("threshold >= 0", name="threshold"),
        CheckConstraint("points_multiplier_pct >= 0", name="points_multiplier_pct"),
    )

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    rank: Mapped[int] = mapped_column(unique=True)
    #: What the threshold measures over the last 12 months: net spend in fen, or points earned.
    threshold_kind: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int] = mapped_column(BigInteger)
    benefits: Mapped[str | None] = mapped_column(Text)
    #: Order points are multiplied by this percentage (100 = x1, 150 = x1.5).
    points_multiplier_pct: Mapped[int] = mapped_column(default=100)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]


class LoyaltyAccount(Base):
    """One member's materialised balance and tier; the row every ledger write locks first."""

    __tablename__ = "loyalty_accounts"
    __table_args__ = (
        CheckConstraint("points_balance >= 0", name="points_balance"),
        CheckConstraint("points_pending >= 0", name="points_pending"),
    )

    member_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("members.id"), primary_key=True, autoincrement=False)
    #: Σ delta of the member's available entries (kept in step under the row lock; CHECK ≥ 0).
    points_balance: Mapped[int] = mapped_column(default=0)
    #: Σ delta of the member's pending entries.
    points_pending: Mapped[int] = mapped_column(default=0)
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))
    tier_since: Mapped[datetime | None]
    #: The tier holds until then; a downgrade waits for this plus the grace period.
    tier_period_end: Mapped[datetime | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]


class PointsEntry(Base):
    """One append-only ledger entry; `delta` never changes, `state` and a lot's `remaining` do."""

    __tablename__ = "points_entries"
    __table_args__ = (
        CheckConstraint(_in("state", ENTRY_STATES), name="state"),
        CheckConstraint(_in("kind", ENTRY_KINDS), name="kind"),
        CheckConstraint("remaining IS NULL OR (remaining >= 0 AND remaining <= delta)", name="remaining"),
        Index("ix_points_entries_member_id_id", "member_id", "id"),
        Index("ix_points_entries_state_expires_at", "state", "expires_at"),
        Index("ix_points_entries_state_available_at", "state", "available_at"),
    )

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int]
    #: Credits (lots) only: the part not yet spent, reversed or expired.
    remaining: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(120))
    #: Where the entry comes from: "order", "staff", "legacy", "referral", "ledger" …
    source: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    available_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    #: The lot this entry reverses or restates.
    ref_entry_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"))
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[created_at]


class TierChange(Base):
    """Tier history: every change of a member's tier, and why."""

    __tablename__ = "tier_history"
    __table_args__ = (Index("ix_tier_history_member_id_id", "member_id", "id"),)

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    from_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))
    to_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))
    reason: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[created_at]


class CouponTemplate(Base):
    """A kind of coupon staff can grant: its discount, minimum spend, validity and optional stock."""

    __tablename__ = "coupon_templates"
    __table_args__ = (
        CheckConstraint(_in("kind", COUPON_KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'amount' AND amount_off_fen > 0 AND percent_off IS NULL) OR "
            "(kind = 'percent' AND percent_off BETWEEN 1 AND 100 AND amount_off_fen IS NULL)",
            name="discount",
        ),
        CheckConstraint("valid_until IS NOT NULL OR valid_days IS NOT NULL", name="validity"),
        CheckConstraint("total_stock IS NULL OR granted_count <= total_stock", name="stock"),
    )

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(8))
    amount_off_fen: Mapped[int | None] = mapped_column(BigInteger)
    percent_off: Mapped[int | None]
    min_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    #: A granted coupon expires this many days after the grant (or at valid_until, whichever is first).
    valid_days: Mapped[int | None]
    total_stock: Mapped[int | None]
    granted_count: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]


class Coupon(Base):
    """One coupon granted to one member; redeemed at most once."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint(_in("state", COUPON_STATES), name="state"),
        Index("ix_coupons_member_id_id", "member_id", "id"),
        Index("ix_coupons_state_expires_at", "state", "expires_at"),
    )

    id: Mapped[intpk]
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="available")
    reason: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    granted_at: Mapped[created_at]
    redeemed_at: Mapped[datetime | None]
    #: "member" or "staff:<id>".
    redeemed_by: Mapped[str | None] = mapped_column(String(40))


class Order(Base):
    """A paid order reported by the brand's order system; (source, external_id) identifies it."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refunded_fen"),
        Index("ix_orders_member_id_paid_at", "member_id", "paid_at"),
    )

    id: Mapped[intpk]
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(80))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[datetime]
    items: Mapped[list[Any] | None]
    status: Mapped[str] = mapped_column(String(20), default="paid")
    #: Points this order earned, and the cumulative share that refunds asked to reverse.
    points_earned: Mapped[int] = mapped_column(default=0)
    points_reversed: Mapped[int] = mapped_column(default=0)
    points_entry_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"))
    refunded_at: Mapped[datetime | None]
    created_at: Mapped[created_at]


class OrderRefund(Base):
    """A full or partial refund of an order; the points it reversed and what could not be clawed back."""

    __tablename__ = "order_refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "external_id"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
    )

    id: Mapped[intpk]
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    external_id: Mapped[str] = mapped_column(String(80))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    points_reversed: Mapped[int] = mapped_column(default=0)
    #: Points the refund should have reversed but the member had already spent.
    points_shortfall: Mapped[int] = mapped_column(default=0)
    refunded_at: Mapped[datetime]
    created_at: Mapped[created_at]
