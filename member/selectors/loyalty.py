"""Loyalty reads: ledger pages, coupons, orders, tiers, and the member's loyalty summary for the sections."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from member.models import (
    Coupon,
    CouponTemplate,
    LoyaltyAccount,
    LoyaltySettings,
    Member,
    Order,
    OrderRefund,
    PointsEntry,
    Tier,
    TierChange,
)

RECENT = 20


def account(session: Session, member_id: int) -> LoyaltyAccount | None:
    return session.get(LoyaltyAccount, member_id)


def points_query(member_id: int) -> Select[Any]:
    return select(PointsEntry).where(PointsEntry.member_id == member_id).order_by(PointsEntry.id.desc())


def coupons_query(member_id: int, *, state: str | None = None) -> Select[Any]:
    query = select(Coupon).where(Coupon.member_id == member_id).order_by(Coupon.id.desc())
    return query if state is None else query.where(Coupon.state == state)


def orders_query(member_id: int) -> Select[Any]:
    return select(Order).where(Order.member_id == member_id).order_by(Order.paid_at.desc(), Order.id.desc())


def tiers_query(*, active_only: bool = False) -> Select[Any]:
    query = select(Tier).order_by(Tier.rank)
    return query.where(Tier.is_active.is_(True)) if active_only else query


def templates_query() -> Select[Any]:
    return select(CouponTemplate).order_by(CouponTemplate.id)


def with_tier_code(query: Select[Any], tier_code: str) -> Select[Any]:
    """Narrow a member search (a query over `members`) to members whose current tier has `tier_code`."""
    holders = (
        select(LoyaltyAccount.member_id).join(Tier, Tier.id == LoyaltyAccount.tier_id).where(Tier.code == tier_code)
    )
    return query.where(Member.id.in_(holders))


def get_order(session: Session, order_id: int) -> Order | None:
    return session.get(Order, order_id)


def get_settings_row(session: Session) -> LoyaltySettings | None:
    return session.get(LoyaltySettings, 1)


def templates_by_id(session: Session, ids: set[int]) -> dict[int, CouponTemplate]:
    if not ids:
        return {}
    return {t.id: t for t in session.scalars(select(CouponTemplate).where(CouponTemplate.id.in_(ids)))}


def refunds_of(session: Session, order_ids: list[int]) -> dict[int, list[OrderRefund]]:
    out: dict[int, list[OrderRefund]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        rows = session.scalars(select(OrderRefund).where(OrderRefund.order_id.in_(order_ids)).order_by(OrderRefund.id))
        for refund in rows:
            out[refund.order_id].append(refund)
    return out


def summary(session: Session, member_id: int) -> dict[str, Any]:
    """What the member centre shows: balance, pending points, tier, and counts of usable coupons and orders."""
    row = account(session, member_id)
    tier = None if row is None or row.tier_id is None else session.get(Tier, row.tier_id)
    coupons = session.scalar(select(func.count()).where(Coupon.member_id == member_id, Coupon.state == "available"))
    orders = session.scalar(select(func.count()).where(Order.member_id == member_id))
    return {
        "points_balance": row.points_balance if row else 0,
        "points_pending": row.points_pending if row else 0,
        "tier_code": tier.code if tier else None,
        "tier_name": tier.name if tier else None,
        "tier_period_end": _iso(row.tier_period_end) if row else None,
        "available_coupons": int(coupons or 0),
        "orders": int(orders or 0),
    }


def staff_view(session: Session, member_id: int) -> dict[str, Any]:
    """The summary plus recent ledger entries, coupons, orders and the tier history."""
    return {
        **summary(session, member_id),
        "recent_points": [entry_view(e) for e in session.scalars(points_query(member_id).limit(RECENT))],
        "recent_coupons": coupon_views(session, list(session.scalars(coupons_query(member_id).limit(RECENT)))),
        "recent_orders": [order_view(o) for o in session.scalars(orders_query(member_id).limit(RECENT))],
        "tier_history": tier_history(session, member_id),
    }


def export_view(session: Session, member_id: int) -> dict[str, Any]:
    """Everything the loyalty tables hold about the member (PIPL export)."""
    orders = list(session.scalars(orders_query(member_id)))
    refunds = refunds_of(session, [o.id for o in orders])
    return {
        **summary(session, member_id),
        "points_entries": [entry_view(e) for e in session.scalars(points_query(member_id))],
        "coupons": coupon_views(session, list(session.scalars(coupons_query(member_id)))),
        "orders": [
            {**order_view(o), "items": o.items, "refunds": [refund_view(r) for r in refunds[o.id]]} for o in orders
        ],
        "tier_history": tier_history(session, member_id, limit=None),
    }


def tier_history(session: Session, member_id: int, *, limit: int | None = RECENT) -> list[dict[str, Any]]:
    query = select(TierChange).where(TierChange.member_id == member_id).order_by(TierChange.id.desc())
    if limit is not None:
        query = query.limit(limit)
    changes = list(session.scalars(query))
    tier_ids = {t for c in changes for t in (c.from_tier_id, c.to_tier_id) if t is not None}
    codes = {t.id: t.code for t in session.scalars(select(Tier).where(Tier.id.in_(tier_ids)))} if tier_ids else {}
    return [
        {
            "from_tier": codes.get(c.from_tier_id) if c.from_tier_id else None,
            "to_tier": codes.get(c.to_tier_id) if c.to_tier_id else None,
            "reason": c.reason,
            "source": c.source,
            "at": _iso(c.at),
        }
        for c in changes
    ]


def entry_view(entry: PointsEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "delta": entry.delta,
        "state": entry.state,
        "reason": entry.reason,
        "source": entry.source,
        "available_at": _iso(entry.available_at),
        "expires_at": _iso(entry.expires_at),
        "created_at": _iso(entry.created_at),
    }


def coupon_views(session: Session, coupons: list[Coupon]) -> list[dict[str, Any]]:
    templates = templates_by_id(session, {c.template_id for c in coupons})
    return [coupon_view(c, templates[c.template_id]) for c in coupons]


def coupon_view(coupon: Coupon, template: CouponTemplate) -> dict[str, Any]:
    return {
        "id": coupon.id,
        "template_code": template.code,
        "name": template.name,
        "kind": template.kind,
        "amount_off_fen": template.amount_off_fen,
        "percent_off": template.percent_off,
        "min_spend_fen": template.min_spend_fen,
        "state": coupon.state,
        "valid_from": _iso(coupon.valid_from),
        "expires_at": _iso(coupon.expires_at),
        "granted_at": _iso(coupon.granted_at),
        "redeemed_at": _iso(coupon.redeemed_at),
    }


def order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "source": order.source,
        "external_id": order.external_id,
        "amount_fen": order.amount_fen,
        "refunded_fen": order.refunded_fen,
        "status": order.status,
        "paid_at": _iso(order.paid_at),
        "points_earned": order.points_earned,
        "points_reversed": order.points_reversed,
    }


def refund_view(refund: OrderRefund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "external_id": refund.external_id,
        "amount_fen": refund.amount_fen,
        "points_reversed": refund.points_reversed,
        "points_shortfall": refund.points_shortfall,
        "refunded_at": _iso(refund.refunded_at),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
