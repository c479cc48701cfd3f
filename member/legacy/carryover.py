"""What a bind carries from the legacy record to the member: points (one ledger entry), tier, orders, spend, join date.

The one place that calls the loyalty services (ledger, tiers). Until they exist on this deployment the
bind still happens and records the parts it could not carry (`pending`), so a later pass can finish them.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime
from types import ModuleType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from member.legacy.models import LegacyBinding, LegacyMember
from member.legacy.services import history
from member.models import Tier

log = logging.getLogger(__name__)

SOURCE = "legacy"


_missing: set[str] = set()


def _loyalty(name: str) -> ModuleType | None:
    if name in _missing:
        return None
    try:
        return importlib.import_module(f"member.services.{name}")
    except ModuleNotFoundError:
        _missing.add(name)
        return None


def points_key(primary: LegacyMember, *, previous_binds: int) -> str:
    """`legacy:<batch>:<legacy_id>`; a bind after reversed ones gets its own key, so it pays again exactly once."""
    key = f"legacy:{primary.batch_id}:{primary.legacy_id}"
    return f"{key}:bind:{previous_binds + 1}" if previous_binds else key


def carry_over(
    session: Session, binding: LegacyBinding, records: list[LegacyMember], *, previous_binds: int = 0
) -> None:
    """Credit the records' points as one ledger entry and raise the member's tier to the legacy one (never lower).

    Fills the binding's carry-over fields before it is first flushed. Spend and join date stay on the legacy
    records (read through the selectors for RFM/CLV).
    """
    primary = records[0]
    points = sum(record.points for record in records)
    done: dict[str, Any] = {"pending": []}
    binding.points_carried = points
    binding.points_key = points_key(primary, previous_binds=previous_binds)
    binding.tier_carried = primary.tier
    ledger = _loyalty("ledger")
    tiers = _loyalty("tiers")
    # One lock and one read of the member's loyalty account serve the points and the tier (an upsert: the member
    # verifying a phone is most often new). The points' balance change waits on the account for the tier's flush:
    # one UPDATE for both.
    account = None
    if ledger is not None and (points > 0 or primary.tier):
        account = ledger.lock_account(session, binding.member_id, upsert=True)
    before = None
    if primary.tier and tiers is not None:
        # Read before the points are staged: reading the tier may flush.
        before = tiers.tier_for_member(session, binding.member_id, account=account)
    if points > 0:
        if ledger is None:
            done["pending"].append("points")
        else:
            entry = ledger.earn(
                session,
                member_id=binding.member_id,
                points=points,
                key=binding.points_key,
                reason="legacy_carryover",
                source=SOURCE,
                account=account,
            )
            done["points_entry_id"] = getattr(entry, "id", None)
    if primary.tier:
        if tiers is None:
            done["pending"].append("tier")
        else:
            binding.tier_before = getattr(before, "code", None)
            since, period_end = getattr(account, "tier_since", None), getattr(account, "tier_period_end", None)
            done["tier_raised"] = bool(
                tiers.ensure_tier_at_least(
                    session,
                    member_id=binding.member_id,
                    tier_code=primary.tier,
                    reason="legacy_carryover",
                    source=SOURCE,
                    account=account,
                )
            )
            if done["tier_raised"]:
                # The period the member's old tier had, so an unbind can give it back as it was.
                done["tier_before_since"] = since.isoformat() if since else None
                done["tier_before_period_end"] = period_end.isoformat() if period_end else None
    if done["pending"]:
        log.warning("legacy carry-over incomplete: loyalty services missing", extra={"member_id": binding.member_id})
    binding.carryover = done


def carry_history(session: Session, binding: LegacyBinding, records: list[LegacyMember]) -> int:
    """Record the records' legacy orders as the member's orders (with the records locked, see
    `history.attach_to_bound`)."""
    return history.carry_orders(session, member_id=binding.member_id, legacy_member_ids=[r.id for r in records])


def preload(session: Session) -> list[Any]:
    """Load the tiers and loyalty settings every carry-over reads; hold the result to keep them in the session.

    The session's identity map holds objects weakly: while the caller keeps these, each bind of a bind pass
    finds them there instead of reading them again.
    """
    loaded: list[Any] = []
    tiers = _loyalty("tiers")
    rules = _loyalty("loyalty_rules")
    if tiers is not None:
        loaded.extend(session.scalars(select(Tier)))
    if rules is not None:
        loaded.append(rules.get_settings(session))
    return loaded


def reverse_carry_over(session: Session, binding: LegacyBinding) -> dict[str, Any]:
    """Take back the carried points with a new ledger entry (the ledger is append-only; never below zero) and
    put the tier back to the one before the carry-over.

    The tier goes back only while the carried one is still the member's tier (one they moved to since is
    theirs), and never below the tier the member's own metrics earn, the carried points left out.
    """
    undone: dict[str, Any] = {"pending": []}
    carried = binding.carryover or {}
    entry_id = carried.get("points_entry_id")
    if binding.points_carried and entry_id is not None:
        ledger = _loyalty("ledger")
        merges = _loyalty("loyalty_merge")
        if merges is not None:
            # A member merge since the bind moved the carried lot to the survivor, whom the binding followed.
            lot = merges.current_lot(session, entry_id, binding.member_id)
            entry_id = entry_id if lot is None else lot.id
        if ledger is None:
            undone["pending"].append("points")
        else:
            reversal = ledger.reverse(
                session,
                member_id=binding.member_id,
                entry_id=entry_id,
                points=binding.points_carried,
                key=f"{binding.points_key}:reversal",
                reason="legacy_carryover_reversal",
                source=SOURCE,
            )
            undone["points_entry_id"] = getattr(getattr(reversal, "entry", None), "id", None)
            undone["shortfall"] = getattr(reversal, "shortfall", 0)
    # The orders go before the tier: the member's own metrics, which the tier may not drop below, exclude them.
    undone["orders_removed"] = history.uncarry_orders(
        session, member_id=binding.member_id, legacy_member_ids=[binding.legacy_member_id, *binding.merged_legacy_ids]
    )
    if carried.get("tier_raised") and binding.tier_carried:
        tiers = _loyalty("tiers")
        if tiers is None:
            undone["pending"].append("tier")
        else:
            undone["tier"] = tiers.undo_tier_raise(
                session,
                member_id=binding.member_id,
                raised_to=binding.tier_carried,
                restore_to=binding.tier_before,
                reason="legacy_carryover_reversal",
                source=SOURCE,
                restore_since=_when(carried.get("tier_before_since")),
                restore_period_end=_when(carried.get("tier_before_period_end")),
                not_counting=[entry_id] if entry_id is not None else [],
            )
    binding.carryover = {**carried, "reversal": undone}
    session.flush()
    return undone


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
