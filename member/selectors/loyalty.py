"""Loyalty reads: ledger pages, coupons, orders, tiers, and the member's loyalty summary for the sections."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session, aliased

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
from member.selectors.json_rows import folds_lists, json_rows

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


def _summary_query(member_id: int) -> Select[Any]:
    # The account and its tier are outer-joined to a one-row base (a member without an account still gets a row),
    # the two counts are scalar subqueries.
    coupons = select(func.count()).where(Coupon.member_id == member_id, Coupon.state == "available").scalar_subquery()
    orders = select(func.count()).where(Order.member_id == member_id).scalar_subquery()
    one = select(literal(1).label("one")).subquery()
    return (
        select(
            LoyaltyAccount.points_balance,
            LoyaltyAccount.points_pending,
            LoyaltyAccount.tier_period_end,
            Tier.code,
            Tier.name,
            coupons.label("coupons"),
            orders.label("orders"),
        )
        .select_from(one)
        .outerjoin(LoyaltyAccount, LoyaltyAccount.member_id == member_id)
        .outerjoin(Tier, Tier.id == LoyaltyAccount.tier_id)
    )


def _summary_of(row: Any) -> dict[str, Any]:
    return {
        "points_balance": row.points_balance or 0,
        "points_pending": row.points_pending or 0,
        "tier_code": row.code,
        "tier_name": row.name,
        "tier_period_end": _iso(row.tier_period_end),
        "available_coupons": int(row.coupons or 0),
        "orders": int(row.orders or 0),
    }


def summary(session: Session, member_id: int) -> dict[str, Any]:
    """What the member centre shows: balance, pending points, tier, and counts of usable coupons and orders,
    in one round trip."""
    return _summary_of(session.execute(_summary_query(member_id)).one())


def staff_view(session: Session, member_id: int) -> dict[str, Any]:
    """The summary plus recent ledger entries, coupons, orders and the tier history: on PostgreSQL in one round
    trip (each list a JSON array beside the summary), elsewhere one query each."""
    if not folds_lists(session):
        return {
            **summary(session, member_id),
            "recent_points": [entry_view(e) for e in session.scalars(points_query(member_id).limit(RECENT))],
            "recent_coupons": recent_coupons(session, member_id),
            "recent_orders": [order_view(o) for o in session.scalars(orders_query(member_id).limit(RECENT))],
            "tier_history": tier_history(session, member_id),
        }
    points = json_rows(points_query(member_id).limit(RECENT), "-id")
    coupons = json_rows(_recent_coupons_query(member_id, RECENT), "-id")
    orders = json_rows(orders_query(member_id).limit(RECENT), "-paid_at", "-id")
    changes = json_rows(_tier_history_query(member_id, RECENT), "-id")
    row = session.execute(
        _summary_query(member_id).add_columns(
            points.column.label("recent_points"),
            coupons.column.label("recent_coupons"),
            orders.column.label("recent_orders"),
            changes.column.label("tier_history"),
        )
    ).one()
    return {
        **_summary_of(row),
        "recent_points": [entry_view(e) for e in points.decode(row.recent_points)],
        # Coupon and template columns do not collide in that query, so one row serves as both.
        "recent_coupons": [coupon_view(c, c) for c in coupons.decode(row.recent_coupons)],
        "recent_orders": [order_view(o) for o in orders.decode(row.recent_orders)],
        "tier_history": [_tier_change_view(c) for c in changes.decode(row.tier_history)],
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


def _recent_coupons_query(member_id: int, limit: int) -> Select[Any]:
    return (
        select(
            Coupon.id,
            Coupon.state,
            Coupon.valid_from,
            Coupon.expires_at,
            Coupon.granted_at,
            Coupon.redeemed_at,
            CouponTemplate.code,
            CouponTemplate.name,
            CouponTemplate.kind,
            CouponTemplate.amount_off_fen,
            CouponTemplate.percent_off,
            CouponTemplate.min_spend_fen,
        )
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(Coupon.member_id == member_id)
        .order_by(Coupon.id.desc())
        .limit(limit)
    )


def recent_coupons(session: Session, member_id: int, *, limit: int = RECENT) -> list[dict[str, Any]]:
    """The member's newest coupons with their templates, in one query."""
    return [coupon_view(row, row) for row in session.execute(_recent_coupons_query(member_id, limit))]


def _tier_history_query(member_id: int, limit: int | None) -> Select[Any]:
    from_tier = aliased(Tier)
    to_tier = aliased(Tier)
    query = (
        select(
            TierChange.id,
            TierChange.reason,
            TierChange.source,
            TierChange.at,
            from_tier.code.label("from_code"),
            to_tier.code.label("to_code"),
        )
        .outerjoin(from_tier, from_tier.id == TierChange.from_tier_id)
        .outerjoin(to_tier, to_tier.id == TierChange.to_tier_id)
        .where(TierChange.member_id == member_id)
        .order_by(TierChange.id.desc())
    )
    return query if limit is None else query.limit(limit)


def _tier_change_view(change: Any) -> dict[str, Any]:
    return {
        "from_tier": change.from_code,
        "to_tier": change.to_code,
        "reason": change.reason,
        "source": change.source,
        "at": _iso(change.at),
    }


def tier_history(session: Session, member_id: int, *, limit: int | None = RECENT) -> list[dict[str, Any]]:
    return [_tier_change_view(change) for change in session.execute(_tier_history_query(member_id, limit))]


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


def coupon_view(coupon: Any, template: Any) -> dict[str, Any]:
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
