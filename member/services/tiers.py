"""Membership tiers: staff-defined tiers, evaluation (upgrade at once, downgrade at period end after grace), history."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from member.errors import TierConflict, TierNotFound
from member.models import LoyaltyAccount, LoyaltySettings, Order, PointsEntry, Tier, TierChange
from member.services.ledger import lock_account
from member.services.loyalty_rules import SETTINGS_ID, get_settings
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow

log = logging.getLogger(__name__)

TIER_FIELDS = ("code", "name", "rank", "threshold_kind", "threshold", "benefits", "points_multiplier_pct", "is_active")
#: Qualification looks back this far.
LOOKBACK = timedelta(days=365)
#: `source` of the ledger rows member merges and unmerges write (see member/services/loyalty_merge.py).
MERGE_SOURCE = "merge"


def create_tier(session: Session, *, actor: Actor, **fields: Any) -> Tier:
    tier = Tier(**{name: fields[name] for name in TIER_FIELDS if name in fields})
    _save(session, tier)
    audit.record(session, actor, "tier.create", target_type="tier", target_id=tier.id, after=tier_view(tier))
    return tier


def update_tier(session: Session, tier_id: int, *, actor: Actor, **changes: Any) -> Tier:
    tier = session.get(Tier, tier_id, with_for_update=True)
    if tier is None:
        raise TierNotFound()
    before = tier_view(tier)
    for name in TIER_FIELDS:
        if name in changes:
            setattr(tier, name, changes[name])
    tier.updated_at = utcnow()
    _save(session, tier)
    audit.record(
        session, actor, "tier.update", target_type="tier", target_id=tier.id, before=before, after=tier_view(tier)
    )
    return tier


def _save(session: Session, tier: Tier) -> None:
    try:
        with session.begin_nested():
            session.add(tier)
            session.flush()
    except IntegrityError:
        raise TierConflict() from None


def tier_view(tier: Tier) -> dict[str, Any]:
    return {name: getattr(tier, name) for name in TIER_FIELDS}


def tier_for_member(session: Session, member_id: int, *, account: LoyaltyAccount | None = None) -> Tier | None:
    """The member's tier; `account`: their account already read in this transaction (no second read)."""
    if account is not None:
        tier_id = account.tier_id
    else:
        tier_id = session.scalar(select(LoyaltyAccount.tier_id).where(LoyaltyAccount.member_id == member_id))
    return None if tier_id is None else session.get(Tier, tier_id)


def qualifying_metrics(
    session: Session, member_id: int, *, now: datetime, not_counting: Collection[int] = ()
) -> dict[str, int]:
    """The member's last-12-months net spend (fen) and points earned (credits not reversed).

    `not_counting`: ledger entries left out (a credit being taken back, such as a reversed legacy carry-over).
    """
    since = now - LOOKBACK
    spend = (
        select(func.coalesce(func.sum(Order.amount_fen - Order.refunded_fen), 0))
        .where(Order.member_id == member_id, Order.paid_at > since, Order.paid_at <= now)
        .scalar_subquery()
    )
    points = (
        select(func.coalesce(func.sum(PointsEntry.delta), 0))
        .where(
            PointsEntry.member_id == member_id,
            # Credits, less what member merges moved away (debits with source "merge"): earned points follow
            # a merge to the survivor and come back on unmerge.
            or_(
                and_(PointsEntry.kind.in_(("earn", "adjust")), PointsEntry.delta > 0),
                and_(PointsEntry.kind == "spend", PointsEntry.source == MERGE_SOURCE),
            ),
            PointsEntry.state != "reversed",
            PointsEntry.created_at > since,
            PointsEntry.id.not_in(list(not_counting)) if not_counting else true(),
        )
        .scalar_subquery()
    )
    row = session.execute(select(spend.label("spend_fen"), points.label("points"))).one()
    return {"spend_fen": int(row.spend_fen or 0), "points": max(int(row.points or 0), 0)}


def qualifying_tier(
    session: Session, member_id: int, *, now: datetime, not_counting: Collection[int] = ()
) -> Tier | None:
    """The highest-ranked active tier whose threshold the member meets (`not_counting`: see qualifying_metrics)."""
    metrics = qualifying_metrics(session, member_id, now=now, not_counting=not_counting)
    tiers = session.scalars(select(Tier).where(Tier.is_active.is_(True)).order_by(Tier.rank.desc()))
    for tier in tiers:
        if metrics[tier.threshold_kind] >= tier.threshold:
            return tier
    return None


def evaluate_member(
    session: Session, *, member_id: int, now: datetime | None = None, allow_downgrade: bool = True
) -> bool:
    """Move the member to the tier they qualify for; returns whether the tier changed.

    Upgrades happen at once and start a new tier period. A member who still qualifies at the period's
    end gets another period. A downgrade happens only once the period and the grace after it are over
    (and never with `allow_downgrade=False`, as after an order). Running it twice changes nothing more.
    """
    now = now or utcnow()
    account = lock_account(session, member_id)
    settings = get_settings(session)
    period = timedelta(days=settings.tier_period_days)
    current = None if account.tier_id is None else session.get(Tier, account.tier_id)
    qualified = qualifying_tier(session, member_id, now=now)
    if qualified is not None and (current is None or qualified.rank > current.rank):
        _set_tier(session, account, current, qualified, now=now, period=period, reason="upgrade", source="evaluation")
        return True
    if current is None:
        return False
    period_end = account.tier_period_end
    if qualified is not None and qualified.rank == current.rank:
        if period_end is None or now >= period_end:
            account.tier_period_end = now + period
            session.flush()
        return False
    grace = timedelta(days=settings.tier_grace_days)
    if allow_downgrade and (period_end is None or now >= period_end + grace):
        _set_tier(session, account, current, qualified, now=now, period=period, reason="downgrade", source="evaluation")
        return True
    return False


def ensure_tier_at_least(
    session: Session,
    *,
    member_id: int,
    tier_code: str,
    reason: str,
    source: str,
    account: LoyaltyAccount | None = None,
) -> bool:
    """Raise the member to `tier_code` unless their tier is already as high; returns whether it changed.

    A code no staff-defined tier has changes nothing and returns False (logged): callers such as the legacy
    bind run inside a member's phone verification, which an unmapped legacy tier name must not fail.
    `account`: the member's account as `lock_account` returned it in this transaction, for a caller that holds
    the lock already (the legacy carry-over shares one lock and one read between its points and its tier).
    """
    tier, period_days = _tier_and_period(session, tier_code)
    if tier is None:
        log.warning("no tier with this code; tier left unchanged", extra={"member_id": member_id, "source": source})
        return False
    if account is None:
        account = lock_account(session, member_id)
    current = None if account.tier_id is None else session.get(Tier, account.tier_id)
    if current is not None and current.rank >= tier.rank:
        return False
    if period_days is None:  # no settings row yet: created with the defaults
        period_days = get_settings(session).tier_period_days
    period = timedelta(days=period_days)
    _set_tier(session, account, current, tier, now=utcnow(), period=period, reason=reason, source=source)
    return True


def _tier_and_period(session: Session, tier_code: str) -> tuple[Tier | None, int | None]:
    """The tier with `tier_code` and the settings' tier period (None: no settings row yet), in one read.

    Without autoflush: it reads no row a caller may have pending, and a caller's pending account change (the
    carry-over's points) then goes out with the tier raise in one UPDATE.
    """
    row = session.execute(
        select(Tier, LoyaltySettings.tier_period_days)
        .join_from(Tier, LoyaltySettings, LoyaltySettings.id == SETTINGS_ID, isouter=True)
        .where(Tier.code == tier_code)
        .execution_options(autoflush=False)
    ).first()
    return (None, None) if row is None else (row[0], row[1])


def undo_tier_raise(
    session: Session,
    *,
    member_id: int,
    raised_to: str,
    restore_to: str | None,
    reason: str,
    source: str,
    restore_since: datetime | None = None,
    restore_period_end: datetime | None = None,
    not_counting: Collection[int] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Undo a raise to tier `raised_to`: back to `restore_to`, but never below what the member's own metrics earn.

    Only while `raised_to` is still the member's tier: a member who moved since (an evaluation, staff, another
    raise) keeps the tier they have. Back on `restore_to`, the member gets that tier's old period
    (`restore_since`, `restore_period_end`, when known) as if the raise had not happened; a tier their metrics
    earn above it starts a new period, as an upgrade does. `not_counting`: ledger entries left out of the
    metrics (the credit taken back along with the raise). Returns what happened, for the caller's record:
    `{"status": "restored" | "kept_qualified" | "moved_since" | "unknown_tier", ...}`.
    """
    now = now or utcnow()
    account = lock_account(session, member_id)
    current = None if account.tier_id is None else session.get(Tier, account.tier_id)
    if current is None or current.code != raised_to:
        return {"status": "moved_since", "raised_to": raised_to, "current": None if current is None else current.code}
    before = None if restore_to is None else session.scalar(select(Tier).where(Tier.code == restore_to))
    if restore_to is not None and before is None:
        # The old tier was deleted or renamed since: nothing sound to go back to.
        log.warning("tier to restore is gone; tier left unchanged", extra={"member_id": member_id, "source": source})
        return {"status": "unknown_tier", "raised_to": raised_to, "restore_to": restore_to}
    qualified = qualifying_tier(session, member_id, now=now, not_counting=not_counting)
    if qualified is not None and qualified.rank >= current.rank:
        return {"status": "kept_qualified", "tier": current.code}
    target = before
    if qualified is not None and (before is None or qualified.rank > before.rank):
        target = qualified
    period = timedelta(days=get_settings(session).tier_period_days)
    exact = target is before and restore_since is not None
    _set_tier(
        session,
        account,
        current,
        target,
        now=now,
        period=period,
        reason=reason,
        source=source,
        since=restore_since if exact else None,
        period_end=restore_period_end if exact else None,
    )
    return {
        "status": "restored",
        "from": current.code,
        "to": None if target is None else target.code,
        "qualified": target is not None and target is qualified and target is not before,
    }


def evaluate_all(
    session: Session, *, now: datetime | None = None, after_member_id: int = 0, batch_size: int = 500
) -> int:
    """Evaluate one batch of accounts (ids above `after_member_id`); returns the last id seen, 0 when done."""
    now = now or utcnow()
    member_ids = list(
        session.scalars(
            select(LoyaltyAccount.member_id)
            .where(LoyaltyAccount.member_id > after_member_id)
            .order_by(LoyaltyAccount.member_id)
            .limit(batch_size)
        )
    )
    for member_id in member_ids:
        evaluate_member(session, member_id=member_id, now=now)
    return member_ids[-1] if len(member_ids) == batch_size else 0


def _set_tier(
    session: Session,
    account: LoyaltyAccount,
    current: Tier | None,
    new: Tier | None,
    *,
    now: datetime,
    period: timedelta,
    reason: str,
    source: str,
    since: datetime | None = None,
    period_end: datetime | None = None,
) -> None:
    """Move the account to `new` and record it; `since` and `period_end` given: an earlier period, restored."""
    account.tier_id = None if new is None else new.id
    if since is not None:
        account.tier_since, account.tier_period_end = since, period_end
    else:
        account.tier_since = now
        account.tier_period_end = None if new is None else now + period
    account.updated_at = now
    session.add(
        TierChange(
            member_id=account.member_id,
            from_tier_id=None if current is None else current.id,
            to_tier_id=account.tier_id,
            reason=reason,
            source=source,
            at=now,
        )
    )
    session.flush()
