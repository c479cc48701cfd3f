"""Staff decisions on binding conflicts: bind one record, merge the records, or reject; every decision reversible."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from member.legacy.errors import ConflictAlreadyResolved, ConflictNotFound, InvalidResolution
from member.legacy.models import BindingConflict, LegacyBinding, LegacyMember
from member.legacy.services.binding import active_binding, bind_records, unbind
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.errors import Conflict

RESOLUTIONS = ("bind", "merge", "reject")


def _locked_conflict(session: Session, conflict_id: int) -> BindingConflict:
    conflict = session.scalar(
        select(BindingConflict)
        .where(BindingConflict.id == conflict_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if conflict is None:
        raise ConflictNotFound()
    return conflict


def _records(session: Session, ids: list[int]) -> dict[int, LegacyMember]:
    rows = session.scalars(
        select(LegacyMember).where(LegacyMember.id.in_(ids)).order_by(LegacyMember.id).with_for_update()
    )
    return {row.id: row for row in rows}


def conflict_view(conflict: BindingConflict) -> dict[str, Any]:
    return {
        "status": conflict.status,
        "kind": conflict.kind,
        "candidate_ids": list(conflict.candidate_ids),
        "resolution": dict(conflict.resolution or {}),
    }


def resolve_conflict(
    session: Session,
    conflict_id: int,
    *,
    action: str,
    actor: Actor,
    legacy_member_id: int | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> BindingConflict:
    """Decide an open conflict.

    - `bind`: bind one candidate (`legacy_member_id`; for a second check or a single candidate it may be
      omitted) to the member who verified the phone; a record bound to another member is unbound first.
    - `merge` (several records on one phone): fold the candidates into `legacy_member_id` (default: the
      oldest) and bind it; points and spend of all of them are carried over once.
    - `reject`: nothing binds; the records stay (or become again) unbound, and this member's verification
      of this phone does not queue again.
    """
    if action not in RESOLUTIONS:
        raise InvalidResolution(f"action must be one of {', '.join(RESOLUTIONS)}")
    at = at or utcnow()
    conflict = _locked_conflict(session, conflict_id)
    if conflict.status != "open":
        raise ConflictAlreadyResolved()
    before = conflict_view(conflict)
    records = _records(session, list(conflict.candidate_ids))
    if legacy_member_id is not None and legacy_member_id not in records:
        raise InvalidResolution("legacy_member_id is not a candidate of this conflict")
    resolution: dict[str, Any] = {"action": action, "reason": reason}
    if action == "reject":
        for record in records.values():
            if record.status == "pending_check":
                record.status = "unbound"
        conflict.status = "rejected"
    elif action == "merge":
        if conflict.kind != "multiple_records":
            raise InvalidResolution("only several records on one phone can be merged")
        free = [r for r in records.values() if r.status == "unbound"]
        if len(free) < 2:
            raise InvalidResolution("fewer than two unbound records are left to merge")
        primary = records[legacy_member_id] if legacy_member_id is not None else free[0]
        if primary not in free:
            raise InvalidResolution("the primary record is not unbound")
        ordered = [primary, *[r for r in free if r is not primary]]
        binding = bind_records(
            session, ordered, member_id=conflict.member_id, via="staff", conflict_id=conflict.id, at=at
        )
        resolution.update(binding_id=binding.id, legacy_member_id=primary.id)
        conflict.status = "resolved"
    else:
        if legacy_member_id is None:
            if len(records) != 1:
                raise InvalidResolution("say which record to bind: legacy_member_id")
            legacy_member_id = next(iter(records))
        record = records[legacy_member_id]
        reversed_ids: list[int] = []
        if record.status == "bound":
            holder = active_binding(session, record.id)
            if holder is not None:
                unbind(
                    session, holder.id, actor=actor, reason=f"conflict {conflict.id}: phone verified by another member"
                )
                reversed_ids.append(holder.id)
        if record.status == "merged":
            raise InvalidResolution("that record was merged into another one")
        binding = bind_records(
            session, [record], member_id=conflict.member_id, via="staff", conflict_id=conflict.id, at=at
        )
        resolution.update(binding_id=binding.id, legacy_member_id=record.id, reversed_binding_ids=reversed_ids)
        conflict.status = "resolved"
    conflict.resolution = resolution
    conflict.resolved_by = actor.id if actor.type == "staff" else None
    conflict.resolved_at = at
    session.flush()
    audit.record(
        session,
        actor,
        f"legacy.conflict.{action}",
        target_type="binding_conflict",
        target_id=conflict.id,
        before=before,
        after=conflict_view(conflict),
        reason=reason,
    )
    return conflict


def reopen_conflict(
    session: Session, conflict_id: int, *, actor: Actor, reason: str | None = None, at: datetime | None = None
) -> BindingConflict:
    """Undo a decision: its bind is reversed (points taken back), a displaced holder is bound again, and the
    conflict is open once more, as it was before the decision."""
    at = at or utcnow()
    conflict = _locked_conflict(session, conflict_id)
    if conflict.status == "open":
        raise InvalidResolution("the conflict is open; there is nothing to undo")
    other = session.scalar(
        select(BindingConflict.id).where(
            BindingConflict.phone == conflict.phone, BindingConflict.status == "open", BindingConflict.id != conflict.id
        )
    )
    if other is not None:
        raise Conflict("another conflict of this phone is open; decide that one first", code="legacy_conflict_open")
    before = conflict_view(conflict)
    resolution = dict(conflict.resolution or {})
    binding_id = resolution.get("binding_id")
    if binding_id is not None:
        binding = session.get(LegacyBinding, binding_id)
        if binding is not None and binding.status == "active":
            unbind(session, binding.id, actor=actor, reason=f"conflict {conflict.id} reopened", at=at)
    for reversed_id in resolution.get("reversed_binding_ids") or []:
        previous = session.get(LegacyBinding, reversed_id)
        if previous is None:
            continue
        records = _records(session, [previous.legacy_member_id, *previous.merged_legacy_ids])
        ordered = [records[previous.legacy_member_id], *[records[i] for i in previous.merged_legacy_ids]]
        bind_records(session, ordered, member_id=previous.member_id, via="staff", conflict_id=conflict.id, at=at)
    if conflict.kind == "second_check":
        for record in _records(session, list(conflict.candidate_ids)).values():
            if record.status == "unbound":
                record.status = "pending_check"
    conflict.status = "open"
    conflict.resolution = {"reopened_from": resolution}
    conflict.resolved_by = None
    conflict.resolved_at = None
    session.flush()
    audit.record(
        session,
        actor,
        "legacy.conflict.reopen",
        target_type="binding_conflict",
        target_id=conflict.id,
        before=before,
        after=conflict_view(conflict),
        reason=reason,
    )
    return conflict
