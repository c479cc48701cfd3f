"""Orders from the brand's order system: idempotent recording that earns points, refunds that reverse them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from member import signals
from member.errors import MemberNotFound, OrderConflict, OrderNotFound, RefundTooLarge
from member.models import LoyaltySettings, Member, Order, OrderRefund, Tier
from member.services import ledger, tiers
from member.services.loyalty_rules import get_settings, order_points
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.errors import InvalidInput


def record_order(
    session: Session,
    *,
    source: str,
    external_id: str,
    member_id: int,
    amount_fen: int,
    paid_at: datetime,
    items: list[dict] | None = None,
    earn_points: bool = True,
) -> Order:
    """Record a paid order once per (source, external_id), earn its points and raise the tier if it qualifies.

    A replay with the same content returns the first order; different content raises OrderConflict (409).
    """
    order, _created = place_order(
        session,
        source=source,
        external_id=external_id,
        member_id=member_id,
        amount_fen=amount_fen,
        paid_at=paid_at,
        items=items,
        earn_points=earn_points,
    )
    return order


def place_order(
    session: Session,
    *,
    source: str,
    external_id: str,
    member_id: int,
    amount_fen: int,
    paid_at: datetime,
    items: list[dict] | None = None,
    earn_points: bool = True,
    actor: Actor | None = None,
) -> tuple[Order, bool]:
    """`record_order`, also saying whether the order is new, and auditing it when staff (`actor`) sent it."""
    if amount_fen <= 0:
        raise InvalidInput("amount_fen must be positive", details={"fields": {"amount_fen": ["Must be positive."]}})
    existing = _find(session, source, external_id)
    if existing is not None:
        return _replay(existing, member_id=member_id, amount_fen=amount_fen, paid_at=paid_at, items=items), False
    member = session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    # Lock the member's account first: one member's orders, refunds and ledger writes queue up behind it.
    account = ledger.lock_account(session, member_id)
    # Held for the whole call: the session's identity map is weak, so while these locals live, the tier
    # evaluation below reads the settings and the current tier from it instead of querying them again.
    settings = get_settings(session)
    tier = None if account.tier_id is None else session.get(Tier, account.tier_id)
    order = Order(
        source=source,
        external_id=external_id,
        member_id=member_id,
        amount_fen=amount_fen,
        paid_at=paid_at,
        items=items,
        status="paid",
    )
    written = ledger.insert_unless_exists(session, order, conflict_on=("source", "external_id"))
    if written is None:
        # A concurrent delivery of the same order committed first.
        winner = _find(session, source, external_id)
        if winner is None:
            raise OrderConflict(details={"source": source, "external_id": external_id})
        return _replay(winner, member_id=member_id, amount_fen=amount_fen, paid_at=paid_at, items=items), False
    order = written
    # Rule-based tags ("ordered in the last N days") read this, not the orders table.
    if member.last_order_at is None or paid_at > member.last_order_at:
        member.last_order_at = paid_at
    if earn_points:
        _earn_for_order(session, order, settings=settings, tier=tier)
    tiers.evaluate_member(session, member_id=member_id, allow_downgrade=False)
    if actor is not None:
        audit.record(
            session,
            actor,
            "order.record",
            target_type="order",
            target_id=order.id,
            after={"source": source, "external_id": external_id, "member_id": member_id, "amount_fen": amount_fen},
        )
    signals.order_paid.send(member_id, session=session, order=order, points=order.points_earned)
    return order, True


def _earn_for_order(session: Session, order: Order, *, settings: LoyaltySettings, tier: Tier | None) -> None:
    points = order_points(
        order.amount_fen,
        points_per_yuan=settings.points_per_yuan,
        multiplier_pct=tier.points_multiplier_pct if tier is not None else 100,
    )
    if points <= 0:
        return
    available_at = order.paid_at + timedelta(days=settings.pending_days)
    expires_at = available_at + timedelta(days=settings.points_valid_days) if settings.points_valid_days else None
    entry = ledger.earn(
        session,
        member_id=order.member_id,
        points=points,
        key=f"order:{order.id}:earn",
        reason="order",
        source="order",
        available_at=available_at,
        expires_at=expires_at,
        detail={"order_id": order.id},
    )
    order.points_earned = points
    order.points_entry_id = entry.id
    session.flush()


def _find(session: Session, source: str, external_id: str) -> Order | None:
    return session.scalar(select(Order).where(Order.source == source, Order.external_id == external_id))


def _replay(order: Order, *, member_id: int, amount_fen: int, paid_at: datetime, items: list[dict] | None) -> Order:
    differs = [
        name
        for name, same in (
            ("member_id", order.member_id == member_id),
            ("amount_fen", order.amount_fen == amount_fen),
            ("paid_at", order.paid_at == paid_at),
            ("items", (order.items or None) == (items or None)),
        )
        if not same
    ]
    if differs:
        raise OrderConflict(details={"differs": differs, "order_id": order.id})
    return order


def refund_order(
    session: Session,
    *,
    order_id: int,
    external_id: str,
    amount_fen: int,
    refunded_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[OrderRefund, bool]:
    """Refund part or all of an order once per `external_id`; reverses points proportionally.

    Refund rule: the order's points are reversed in proportion to the money refunded, computed on the
    cumulative refunded amount (partial refunds add up exactly; a full refund reverses everything).
    Pending points come off the order's lot. Available points come off the balance; when the member
    has spent them, only what is there is taken (the balance never goes below zero) and the rest is
    recorded as the refund's `points_shortfall` for staff to follow up.

    Returns (refund, created). A replay with the same amount returns the first refund; another amount
    raises OrderConflict (409); more than what is left of the order raises RefundTooLarge (422).
    """
    if amount_fen <= 0:
        raise InvalidInput("amount_fen must be positive", details={"fields": {"amount_fen": ["Must be positive."]}})
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound()
    # Lock order the same way as every other ledger write (account, then rows), so refunds never deadlock.
    ledger.lock_account(session, order.member_id)
    session.refresh(order, with_for_update=True)
    existing = session.scalar(
        select(OrderRefund).where(OrderRefund.order_id == order_id, OrderRefund.external_id == external_id)
    )
    if existing is not None:
        if existing.amount_fen != amount_fen:
            raise OrderConflict(details={"differs": ["amount_fen"], "refund_id": existing.id})
        return existing, False
    left = order.amount_fen - order.refunded_fen
    if amount_fen > left:
        raise RefundTooLarge(details={"fields": {"amount_fen": [f"At most {left}."]}, "refundable_fen": left})
    now = refunded_at or utcnow()
    refund = OrderRefund(order_id=order.id, external_id=external_id, amount_fen=amount_fen, refunded_at=now)
    session.add(refund)
    order.refunded_fen += amount_fen
    order.refunded_at = now
    order.status = "refunded" if order.refunded_fen == order.amount_fen else "partially_refunded"
    session.flush()
    target = order.points_earned * order.refunded_fen // order.amount_fen
    to_reverse = target - order.points_reversed
    if to_reverse > 0 and order.points_entry_id is not None:
        reversal = ledger.reverse(
            session,
            member_id=order.member_id,
            entry_id=order.points_entry_id,
            points=to_reverse,
            key=f"order-refund:{refund.id}:reverse",
            reason="order refund",
            source="order",
            detail={"order_id": order.id, "refund_id": refund.id},
        )
        refund.points_reversed = reversal.reversed
        refund.points_shortfall = reversal.shortfall
        order.points_reversed = target
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "order.refund",
            target_type="order",
            target_id=order.id,
            after=refund_view(refund),
        )
    full = order.refunded_fen == order.amount_fen
    signals.order_refunded.send(order.member_id, session=session, order=order, refund=refund, full=full)
    return refund, True


def refund_view(refund: OrderRefund) -> dict[str, Any]:
    return {
        "refund_id": refund.id,
        "external_id": refund.external_id,
        "amount_fen": refund.amount_fen,
        "points_reversed": refund.points_reversed,
        "points_shortfall": refund.points_shortfall,
    }


#: Past orders written (or deleted) per statement: a statement holds at most 65,535 parameters, one member's
#: history can hold more orders than fit (7 parameters each).
HISTORY_GROUP = 1000


@dataclass(frozen=True)
class PastOrder:
    """An order from before the member was known here (a migrated CRM's history)."""

    external_id: str
    amount_fen: int
    paid_at: datetime
    items: list[dict[str, Any]] | None = None


def record_history(session: Session, *, member_id: int, source: str, orders: Sequence[PastOrder]) -> int:
    """Record past orders once per (source, external_id); returns how many are new.

    History is not a purchase happening now: it earns no points, sends no `order_paid` (nothing such as a
    referral reward may fire on it) and leaves the tier to the next evaluation. It does move the member's
    last order date, which rule-based tags read.
    """
    if not orders:
        return 0
    builder = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = [
        {
            "source": source,
            "external_id": order.external_id,
            "member_id": member_id,
            "amount_fen": order.amount_fen,
            "paid_at": order.paid_at,
            "items": order.items,
            "status": "paid",
        }
        for order in orders
    ]
    added = 0
    for start in range(0, len(rows), HISTORY_GROUP):
        statement = (
            builder(Order)
            .values(rows[start : start + HISTORY_GROUP])
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(Order.id)
        )
        added += len(session.execute(statement).all())
    if added:
        _refresh_last_order_at(session, member_id)
    return added


def remove_history(session: Session, *, member_id: int, source: str, external_ids: Sequence[str]) -> int:
    """Delete past orders recorded by `record_history` (a reversed migration); returns how many went.

    Only untouched history goes: an order that earned points or was refunded here is a live order and stays.
    """
    removed = 0
    for start in range(0, len(external_ids), HISTORY_GROUP):
        removed += session.execute(
            delete(Order)
            .where(
                Order.source == source,
                Order.external_id.in_(list(external_ids[start : start + HISTORY_GROUP])),
                Order.member_id == member_id,
                Order.points_earned == 0,
                Order.refunded_fen == 0,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    if removed:
        _refresh_last_order_at(session, member_id)
    return removed


def move_history(
    session: Session, *, source: str, external_ids: Sequence[str], from_member_id: int, to_member_id: int
) -> int:
    """Give past orders recorded by `record_history` to another member (their records went back to it on an
    unmerge); returns how many moved."""
    moved = 0
    for start in range(0, len(external_ids), HISTORY_GROUP):
        moved += session.execute(
            update(Order)
            .where(
                Order.source == source,
                Order.external_id.in_(list(external_ids[start : start + HISTORY_GROUP])),
                Order.member_id == from_member_id,
            )
            .values(member_id=to_member_id)
            .execution_options(synchronize_session=False)
        ).rowcount
    if moved:
        _refresh_last_order_at(session, from_member_id)
        _refresh_last_order_at(session, to_member_id)
    return moved


def _refresh_last_order_at(session: Session, member_id: int) -> None:
    latest = session.scalar(select(func.max(Order.paid_at)).where(Order.member_id == member_id))
    # A statement, not an attribute set: a Member loaded earlier in this session may hold a stale date, and
    # setting that same value again would write nothing.
    session.execute(
        update(Member)
        .where(Member.id == member_id)
        .values(last_order_at=latest)
        .execution_options(synchronize_session=False)
    )
    loaded = session.identity_map.get(session.identity_key(Member, member_id))
    if loaded is not None:
        set_committed_value(loaded, "last_order_at", latest)
