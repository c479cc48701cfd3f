"""Loyalty follows member merges: points, orders, coupons and tier move to the survivor and back on unmerge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from member import signals
from member.models import Coupon, LoyaltyAccount, Member, MemberMerge, Order, PointsEntry, Tier, TierChange
from member.services import ledger, tiers
from scrm.clock import utcnow

#: `source` of every ledger row a merge or an unmerge writes (tier qualification counts on it).
MERGE_SOURCE = tiers.MERGE_SOURCE
#: Key under which the merge record's `moved` data holds what the merge moved, and what the unmerge gave back.
MOVED_KEY = "loyalty"
RETURNED_KEY = "loyalty_unmerge"
#: How far the unmerge follows a moved lot through later merges and unmerges.
MAX_LOT_HOPS = 16


def lock_pair(session: Session, first_id: int, second_id: int) -> dict[int, LoyaltyAccount]:
    """Lock both members' loyalty accounts, lower member id first, so two merges never deadlock."""
    return {member_id: ledger.lock_account(session, member_id) for member_id in sorted((first_id, second_id))}


def move_lot(
    session: Session,
    *,
    lot: PointsEntry,
    accounts: dict[int, LoyaltyAccount],
    to_member_id: int,
    key_prefix: str,
    reason: str,
) -> PointsEntry | None:
    """Move what is left of `lot` to `to_member_id`: a debit referencing the lot on its member, and a new lot
    on the receiver with the same state, unlock and expiry dates. Both accounts must be locked (`lock_pair`).

    No delta is rewritten. A replay of `key_prefix` returns the first credit and moves nothing; a lot with
    nothing left returns None.
    """
    credit_key = f"{key_prefix}:in:{lot.id}"
    existing = session.scalar(select(PointsEntry).where(PointsEntry.key == credit_key))
    if existing is not None:
        return existing
    session.refresh(lot, with_for_update=True)
    points = lot.remaining or 0
    if points <= 0 or lot.state not in ("pending", "available"):
        return None
    giver, taker = accounts[lot.member_id], accounts[to_member_id]
    detail = {"lot_id": lot.id, "from_member_id": lot.member_id, "to_member_id": to_member_id}
    session.add(
        PointsEntry(
            member_id=lot.member_id,
            kind="spend",
            delta=-points,
            state=lot.state,
            reason=reason,
            source=MERGE_SOURCE,
            key=f"{key_prefix}:out:{lot.id}",
            ref_entry_id=lot.id,
            detail=detail,
        )
    )
    credit = PointsEntry(
        member_id=to_member_id,
        kind="earn",
        delta=points,
        remaining=points,
        state=lot.state,
        reason=reason,
        source=MERGE_SOURCE,
        key=credit_key,
        available_at=lot.available_at,
        expires_at=lot.expires_at,
        # No ref_entry_id: unlocking or reversing the old lot must not touch another member's credit.
        detail=detail,
    )
    session.add(credit)
    lot.remaining = 0
    now = utcnow()
    if lot.state == "pending":
        # The debit stays pending with the lot and unlocks with it; the credit unlocks on the lot's date.
        giver.points_pending -= points
        taker.points_pending += points
    else:
        giver.points_balance -= points
        taker.points_balance += points
    giver.updated_at = taker.updated_at = now
    session.flush()
    return credit


def _tier_state(account: LoyaltyAccount) -> dict[str, Any]:
    return {
        "tier_id": account.tier_id,
        "tier_since": _iso(account.tier_since),
        "tier_period_end": _iso(account.tier_period_end),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _rank(session: Session, tier_id: int | None) -> int | None:
    return None if tier_id is None else session.scalar(select(Tier.rank).where(Tier.id == tier_id))


def _change_tier(session: Session, account: LoyaltyAccount, state: dict[str, Any], *, reason: str) -> None:
    if _tier_state(account) == state:
        return
    session.add(
        TierChange(
            member_id=account.member_id,
            from_tier_id=account.tier_id,
            to_tier_id=state["tier_id"],
            reason=reason,
            source=MERGE_SOURCE,
            at=utcnow(),
        )
    )
    account.tier_id = state["tier_id"]
    account.tier_since = _when(state["tier_since"])
    account.tier_period_end = _when(state["tier_period_end"])
    account.updated_at = utcnow()
    session.flush()


def _latest(*values: datetime | None) -> datetime | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def merge_loyalty(session: Session, *, merge_id: int) -> dict[str, Any]:
    """Move the merged member's points (available and pending), orders and coupons to the survivor and give the
    survivor the higher tier; records what moved under `moved["loyalty"]`. Running it twice moves nothing more."""
    merge = session.get(MemberMerge, merge_id)
    assert merge is not None
    if MOVED_KEY in merge.moved:
        return dict(merge.moved[MOVED_KEY])
    survivor_id, source_id = merge.survivor_id, merge.source_id
    accounts = lock_pair(session, survivor_id, source_id)
    survivor_account, source_account = accounts[survivor_id], accounts[source_id]
    lots = session.scalars(
        select(PointsEntry)
        .where(
            PointsEntry.member_id == source_id,
            PointsEntry.kind.in_(ledger.LOT_KINDS),
            PointsEntry.state.in_(("pending", "available")),
            PointsEntry.remaining > 0,
        )
        .order_by(PointsEntry.id)
    ).all()
    moved_lots: list[list[Any]] = []
    new_lot_of: dict[int, int] = {}
    for lot in lots:
        credit = move_lot(
            session,
            lot=lot,
            accounts=accounts,
            to_member_id=survivor_id,
            key_prefix=f"merge:{merge_id}",
            reason=f"member merge {merge_id}",
        )
        if credit is not None:
            moved_lots.append([lot.id, credit.id, credit.delta, credit.state])
            new_lot_of[lot.id] = credit.id
    order_lots: dict[str, int | None] = {}
    for order in session.scalars(
        select(Order).where(Order.member_id == source_id).order_by(Order.id).with_for_update()
    ):
        order_lots[str(order.id)] = order.points_entry_id
        order.member_id = survivor_id
        if order.points_entry_id in new_lot_of:
            # Later refunds of the order take back from the lot that now holds its points.
            order.points_entry_id = new_lot_of[order.points_entry_id]
    coupon_ids = list(
        session.scalars(select(Coupon.id).where(Coupon.member_id == source_id).order_by(Coupon.id).with_for_update())
    )
    for coupon in session.scalars(select(Coupon).where(Coupon.id.in_(coupon_ids))):
        coupon.member_id = survivor_id
    record = {
        "lots": moved_lots,
        "points": sum(row[2] for row in moved_lots if row[3] == "available"),
        "pending_points": sum(row[2] for row in moved_lots if row[3] == "pending"),
        "orders": order_lots,
        "coupons": coupon_ids,
        "survivor_tier": _tier_state(survivor_account),
    }
    session.flush()
    survivor, source = session.get(Member, survivor_id), session.get(Member, source_id)
    assert survivor is not None
    assert source is not None
    record["survivor_last_order_at"] = _iso(survivor.last_order_at)
    survivor.last_order_at = _latest(survivor.last_order_at, source.last_order_at)
    source_rank, survivor_rank = _rank(session, source_account.tier_id), _rank(session, survivor_account.tier_id)
    if source_rank is not None and (survivor_rank is None or source_rank > survivor_rank):
        # Keep the higher tier, with the period it was earned for.
        _change_tier(session, survivor_account, _tier_state(source_account), reason=f"member merge {merge_id}")
    tiers.evaluate_member(session, member_id=survivor_id, allow_downgrade=False)
    merge.moved = {**merge.moved, MOVED_KEY: record}
    session.flush()
    return record


def unmerge_loyalty(session: Session, *, merge_id: int) -> dict[str, Any]:
    """Give the source back what the merge moved: what is left of each moved lot (the rest is the shortfall),
    its orders and coupons; restore the survivor's tier from before the merge, then re-evaluate both.
    Records the result under `moved["loyalty_unmerge"]`; running it twice gives back nothing more."""
    merge = session.get(MemberMerge, merge_id)
    assert merge is not None
    record = merge.moved.get(MOVED_KEY)
    if record is None:
        return {}
    if RETURNED_KEY in merge.moved:
        return dict(merge.moved[RETURNED_KEY])
    survivor_id, source_id = merge.survivor_id, merge.source_id
    accounts = lock_pair(session, survivor_id, source_id)
    returned_lots: list[list[Any]] = []
    return_lot_of: dict[int, int] = {}
    for _old_lot_id, new_lot_id, points, _state in record["lots"]:
        lot = _where_it_went(session, new_lot_id, survivor_id)
        credit = None
        if lot is not None and lot.member_id == survivor_id:
            credit = move_lot(
                session,
                lot=lot,
                accounts=accounts,
                to_member_id=source_id,
                key_prefix=f"unmerge:{merge_id}",
                reason=f"member unmerge {merge_id}",
            )
        back = 0 if credit is None else credit.delta
        returned_lots.append([new_lot_id, None if credit is None else credit.id, back, points - back])
        if credit is not None:
            return_lot_of[new_lot_id] = credit.id
    orders_back = []
    order_lots: dict[str, int | None] = record["orders"]
    for order in session.scalars(
        select(Order)
        .where(Order.id.in_([int(order_id) for order_id in order_lots]), Order.member_id == survivor_id)
        .order_by(Order.id)
        .with_for_update()
    ):
        order.member_id = source_id
        current = order.points_entry_id
        order.points_entry_id = return_lot_of.get(current, order_lots[str(order.id)]) if current else current
        orders_back.append(order.id)
    coupons_back = []
    for coupon in session.scalars(
        select(Coupon).where(Coupon.id.in_(record["coupons"]), Coupon.member_id == survivor_id).with_for_update()
    ):
        coupon.member_id = source_id
        coupons_back.append(coupon.id)
    session.flush()
    survivor, source = session.get(Member, survivor_id), session.get(Member, source_id)
    assert survivor is not None
    assert source is not None
    # The source's date follows the orders it got back: one the merge moved may be gone since (legacy history
    # taken back by an unbind). The survivor keeps orders placed since the merge.
    source.last_order_at = session.scalar(select(func.max(Order.paid_at)).where(Order.member_id == source_id))
    survivor.last_order_at = _latest(
        _when(record["survivor_last_order_at"]),
        session.scalar(
            select(func.max(Order.paid_at)).where(Order.member_id == survivor_id, Order.created_at > merge.merged_at)
        ),
    )
    _change_tier(session, accounts[survivor_id], record["survivor_tier"], reason=f"member unmerge {merge_id}")
    for member_id in (survivor_id, source_id):
        tiers.evaluate_member(session, member_id=member_id, allow_downgrade=False)
    result = {
        "lots": returned_lots,
        "returned": sum(row[2] for row in returned_lots),
        "shortfall": sum(row[3] for row in returned_lots),
        "orders": orders_back,
        "coupons": coupons_back,
    }
    merge.moved = {**merge.moved, RETURNED_KEY: result}
    session.flush()
    return result


def current_lot(session: Session, lot_id: int, member_id: int) -> PointsEntry | None:
    """The lot of `member_id` that holds lot `lot_id`'s points now that merges may have moved them (for a reversal
    of the original lot, such as a legacy unbind after a merge)."""
    return _where_it_went(session, lot_id, member_id)


def _where_it_went(session: Session, lot_id: int, member_id: int) -> PointsEntry | None:
    """The lot now holding what lot `lot_id` held: itself, or where later merges and unmerges moved it (a lot moves
    at most once, so the chain is a line), stopping at the first lot of `member_id` with points left."""
    lot = session.get(PointsEntry, lot_id)
    for _hop in range(MAX_LOT_HOPS):
        if lot is None or (lot.member_id == member_id and (lot.remaining or 0) > 0):
            return lot
        debit_key = session.scalar(
            select(PointsEntry.key).where(
                PointsEntry.member_id == lot.member_id,
                PointsEntry.ref_entry_id == lot.id,
                PointsEntry.source == MERGE_SOURCE,
                PointsEntry.kind == "spend",
            )
        )
        if debit_key is None:
            return lot
        lot = session.scalar(select(PointsEntry).where(PointsEntry.key == debit_key.replace(":out:", ":in:")))
    return lot


def _on_merged(survivor_id: int, *, session: Session, merge_id: int, **_: Any) -> None:
    merge_loyalty(session, merge_id=merge_id)


def _on_unmerged(survivor_id: int, *, session: Session, merge_id: int, **_: Any) -> None:
    unmerge_loyalty(session, merge_id=merge_id)


signals.members_merged.connect(_on_merged)
signals.members_unmerged.connect(_on_unmerged)
