"""Binding legacy records to members who verified the same phone: at once, or through the conflict queue."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from member.legacy import carryover
from member.legacy.errors import BindingAlreadyReversed, BindingNotFound
from member.legacy.models import BindingConflict, ImportBatch, LegacyBinding, LegacyMember
from member.legacy.services import history
from member.legacy.services.policy import DEFAULT_POLICY, BindPolicy
from member.models import Member
from member.services.ledger import insert_unless_exists
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow

#: The method recorded when a bind pass after an import finds a member who verified earlier.
EARLIER_VERIFICATION = "earlier"
#: Verified members whose legacy rows the bind pass locks and reads at once.
BIND_PASS_GROUP = 500
#: The predicate of the one-open-conflict-per-phone index, as a literal: with a bound parameter PostgreSQL cannot
#: match ON CONFLICT to the partial index once it plans the (psycopg-prepared) statement generically.
OPEN_CONFLICT = text("status = 'open'")


@dataclass(frozen=True)
class BindOutcome:
    """`status`: bound, already_bound, conflict, no_record or rejected (staff refused this phone before)."""

    status: str
    binding_id: int | None = None
    conflict_id: int | None = None


def bind_verified_phone(
    session: Session,
    *,
    member_id: int,
    phone: str,
    method: str,
    at: datetime | None = None,
    policy: BindPolicy = DEFAULT_POLICY,
) -> BindOutcome:
    """Bind the legacy record of a phone the member has just verified, or queue the conflict.

    Exactly once under any retries: every legacy row of the phone is locked first (FOR UPDATE), so
    concurrent verifications of one phone run one after another and the later ones find the bind (or the
    open conflict) the first one made. A phone verified by SMS code passes an open second check of the
    same member.
    """
    rows, previous_binds = _lock_records(session, [phone])
    return _decide(
        session,
        member_id=member_id,
        phone=phone,
        method=method,
        at=at or utcnow(),
        policy=policy,
        rows=rows.get(phone, []),
        queued=None,
        previous_binds=previous_binds,
    )


def _lock_records(session: Session, phones: list[str]) -> tuple[dict[str, list[LegacyMember]], dict[int, int]]:
    """Lock the phones' legacy rows (in id order, as every bind does) and count each row's earlier bindings.

    The count rides along in the locking read, so a bind needs no query of its own for its ledger key.
    """
    previous = (
        select(func.count(LegacyBinding.id))
        .where(LegacyBinding.legacy_member_id == LegacyMember.id)
        .correlate(LegacyMember)
        .scalar_subquery()
    )
    found = session.execute(
        select(LegacyMember, previous)
        .where(LegacyMember.phone.in_(phones), LegacyMember.status != "merged")
        .order_by(LegacyMember.id)
        .with_for_update(of=LegacyMember)
        .execution_options(populate_existing=True)
    ).all()
    rows: dict[str, list[LegacyMember]] = {}
    previous_binds: dict[int, int] = {}
    for record, count in found:
        rows.setdefault(record.phone, []).append(record)
        previous_binds[record.id] = int(count or 0)
    return rows, previous_binds


def _queued(session: Session, phones: list[str], member_ids: list[int]) -> list[BindingConflict]:
    """The phones' open conflicts and the members' refused ones, locked, in one read."""
    return list(
        session.scalars(
            select(BindingConflict)
            .where(
                BindingConflict.phone.in_(phones),
                (BindingConflict.status == "open")
                | ((BindingConflict.status == "rejected") & BindingConflict.member_id.in_(member_ids)),
            )
            .order_by(BindingConflict.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def _decide(
    session: Session,
    *,
    member_id: int,
    phone: str,
    method: str,
    at: datetime,
    policy: BindPolicy,
    rows: list[LegacyMember],
    queued: list[BindingConflict] | None,
    previous_binds: dict[int, int],
    deferred: list[BindingConflict] | None = None,
) -> BindOutcome:
    """Bind or queue, given the phone's locked legacy rows and (None: read them now) its queued conflicts.

    With `deferred`, a new conflict is appended there for the caller to insert with others (its outcome has
    no conflict id yet) instead of being inserted at once.
    """
    if not rows:
        return BindOutcome("no_record")
    mine = [row for row in rows if row.status == "bound" and row.bound_member_id == member_id]
    if mine:
        binding = active_binding(session, mine[0].id)
        return BindOutcome("already_bound", binding_id=binding.id if binding else None)
    if queued is None:
        queued = _queued(session, [phone], [member_id])
    open_conflict = next((c for c in queued if c.status == "open"), None)
    if open_conflict is not None:
        if (
            open_conflict.kind == "second_check"
            and open_conflict.member_id == member_id
            and method == "sms"
            and open_conflict.verified_via != "sms"
        ):
            record = session.get(LegacyMember, open_conflict.candidate_ids[0])
            binding = bind_records(
                session, [record], member_id=member_id, via="sms", conflict_id=open_conflict.id, at=at
            )
            open_conflict.status = "resolved"
            open_conflict.resolved_at = at
            open_conflict.resolution = {"action": "bind", "via": "sms", "binding_id": binding.id}
            session.flush()
            return BindOutcome("bound", binding_id=binding.id, conflict_id=open_conflict.id)
        return BindOutcome("conflict", conflict_id=open_conflict.id)
    if queued:
        return BindOutcome("rejected", conflict_id=queued[0].id)
    candidate_ids = [row.id for row in rows]
    elsewhere = [row for row in rows if row.status == "bound"]
    if elsewhere:
        conflict = _queue(
            session,
            phone=phone,
            kind="phone_bound_elsewhere",
            member_id=member_id,
            candidate_ids=candidate_ids,
            holder_member_id=elsewhere[0].bound_member_id,
            reasons=[],
            via=method,
            deferred=deferred,
        )
        return BindOutcome("conflict", conflict_id=conflict.id)
    if len(rows) > 1:
        conflict = _queue(
            session,
            phone=phone,
            kind="multiple_records",
            member_id=member_id,
            candidate_ids=candidate_ids,
            holder_member_id=None,
            reasons=[],
            via=method,
            deferred=deferred,
        )
        return BindOutcome("conflict", conflict_id=conflict.id)
    record = rows[0]
    reasons = policy.second_check_reasons(record, at)
    if reasons:
        # Assets stay frozen on the legacy record until the second check passes.
        record.status = "pending_check"
        conflict = _queue(
            session,
            phone=phone,
            kind="second_check",
            member_id=member_id,
            candidate_ids=candidate_ids,
            holder_member_id=None,
            reasons=reasons,
            via=method,
            deferred=deferred,
        )
        return BindOutcome("conflict", conflict_id=conflict.id)
    binding = bind_records(
        session,
        [record],
        member_id=member_id,
        via="auto",
        conflict_id=None,
        at=at,
        previous_binds=previous_binds.get(record.id),
    )
    return BindOutcome("bound", binding_id=binding.id)


def _queue(
    session: Session,
    *,
    phone: str,
    kind: str,
    member_id: int,
    candidate_ids: list[int],
    holder_member_id: int | None,
    reasons: list[str],
    via: str,
    deferred: list[BindingConflict] | None = None,
) -> BindingConflict:
    conflict = BindingConflict(
        phone=phone,
        kind=kind,
        member_id=member_id,
        candidate_ids=candidate_ids,
        holder_member_id=holder_member_id,
        reasons=reasons,
        verified_via=via,
        resolution={},
    )
    if deferred is not None:
        deferred.append(conflict)
        return conflict
    # ON CONFLICT rather than a savepoint: one round trip where SAVEPOINT, INSERT and RELEASE are three.
    written = insert_unless_exists(session, conflict, conflict_on=("phone",), where=OPEN_CONFLICT)
    if written is not None:
        return written
    # Another transaction queued this phone first (possible only without the row locks, e.g. SQLite).
    return session.scalars(
        select(BindingConflict).where(BindingConflict.phone == phone, BindingConflict.status == "open")
    ).one()


def bind_records(
    session: Session,
    records: list[LegacyMember],
    *,
    member_id: int,
    via: str,
    conflict_id: int | None,
    at: datetime,
    previous_binds: int | None = None,
) -> LegacyBinding:
    """Bind `records` (the first is the primary; the rest were merged into it) to the member and carry them over.

    `previous_binds`: how many bindings the primary had before, when the caller read it under the row lock.
    """
    primary, merged = records[0], records[1:]
    if previous_binds is None:
        previous_binds = session.scalar(select(func.count()).where(LegacyBinding.legacy_member_id == primary.id)) or 0
    binding = LegacyBinding(
        legacy_member_id=primary.id,
        member_id=member_id,
        status="active",
        via=via,
        conflict_id=conflict_id,
        merged_legacy_ids=[record.id for record in merged],
        bound_at=at,
    )
    carryover.carry_over(session, binding, records, previous_binds=previous_binds)
    session.add(binding)
    primary.status = "bound"
    primary.bound_member_id = member_id
    for record in merged:
        record.status = "merged"
        record.merged_into_id = primary.id
        record.bound_member_id = member_id
    session.flush()
    carryover.carry_history(session, binding, records)
    return binding


def active_binding(session: Session, legacy_member_id: int) -> LegacyBinding | None:
    return session.scalar(
        select(LegacyBinding).where(
            LegacyBinding.legacy_member_id == legacy_member_id, LegacyBinding.status == "active"
        )
    )


def unbind(
    session: Session, binding_id: int, *, actor: Actor, reason: str | None = None, at: datetime | None = None
) -> LegacyBinding:
    """Reverse a bind: the legacy records are unbound again, the carried points taken back (new ledger row), the
    carried orders removed and the tier put back as it was before (see `carryover.reverse_carry_over`)."""
    binding = session.scalar(
        select(LegacyBinding)
        .where(LegacyBinding.id == binding_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if binding is None:
        raise BindingNotFound()
    if binding.status != "active":
        raise BindingAlreadyReversed()
    before = binding_view(binding)
    ids = [binding.legacy_member_id, *binding.merged_legacy_ids]
    for record in session.scalars(select(LegacyMember).where(LegacyMember.id.in_(ids)).with_for_update()):
        record.status = "unbound"
        record.bound_member_id = None
        record.merged_into_id = None
    binding.status = "reversed"
    binding.reversed_at = at or utcnow()
    binding.reversed_by = actor.id if actor.type == "staff" else None
    carryover.reverse_carry_over(session, binding)
    session.flush()
    audit.record(
        session,
        actor,
        "legacy.unbind",
        target_type="legacy_binding",
        target_id=binding.id,
        before=before,
        after=binding_view(binding),
        reason=reason,
    )
    return binding


def binding_view(binding: LegacyBinding) -> dict[str, Any]:
    return {
        "status": binding.status,
        "legacy_member_id": binding.legacy_member_id,
        "member_id": binding.member_id,
        "merged_legacy_ids": list(binding.merged_legacy_ids),
        "points_carried": binding.points_carried,
    }


def bind_batch(
    session: Session, batch_id: int, *, at: datetime | None = None, policy: BindPolicy = DEFAULT_POLICY
) -> dict[str, int]:
    """The bind pass after an import: bind (or queue) every record whose phone a member has already verified."""
    orders_batch = session.scalar(select(ImportBatch).where(ImportBatch.id == batch_id, ImportBatch.kind == "orders"))
    if orders_batch is not None:
        # An orders batch binds no one: its pass carries its orders to members bound already.
        carried = history.attach_to_bound(session, orders_batch)
        orders_batch.bound_count += carried  # a second pass finds them carried and adds 0
        session.flush()
        return {"orders_carried": carried}
    at = at or utcnow()
    pairs = session.execute(
        select(Member.id, Member.phone)
        .join(LegacyMember, LegacyMember.phone == Member.phone)
        .where(
            LegacyMember.batch_id == batch_id,
            LegacyMember.status == "unbound",
            Member.phone_verified_at.is_not(None),
            Member.merged_into_id.is_(None),
        )
        .distinct()
        .order_by(Member.id)
    ).all()
    counts: Counter[str] = Counter()
    # Held for the whole pass, so every bind finds the tiers and loyalty settings in the session.
    loaded = carryover.preload(session)
    for start in range(0, len(pairs), BIND_PASS_GROUP):
        group = pairs[start : start + BIND_PASS_GROUP]
        # One locking read of the group's legacy rows and one of its conflicts, instead of two per phone.
        rows, previous_binds = _lock_records(session, sorted({phone for _, phone in group}))
        queued = _queued(session, sorted(rows), [member_id for member_id, _ in group])
        deferred: list[BindingConflict] = []
        seen: set[str] = set()
        for member_id, phone in group:
            if phone in seen:
                # A second member on the same phone: the first one's bind or conflict changed what it reads.
                _insert_conflicts(session, deferred, counts, policy=policy, at=at)
                outcome = bind_verified_phone(
                    session, member_id=member_id, phone=phone, method=EARLIER_VERIFICATION, at=at, policy=policy
                )
            else:
                seen.add(phone)
                outcome = _decide(
                    session,
                    member_id=member_id,
                    phone=phone,
                    method=EARLIER_VERIFICATION,
                    at=at,
                    policy=policy,
                    rows=rows.get(phone, []),
                    queued=[c for c in queued if c.phone == phone and (c.status == "open" or c.member_id == member_id)],
                    previous_binds=previous_binds,
                    deferred=deferred,
                )
                if outcome.status == "conflict" and outcome.conflict_id is None:
                    continue  # counted once inserted
            counts[outcome.status] += 1
        _insert_conflicts(session, deferred, counts, policy=policy, at=at)
    del loaded
    batch = session.get(ImportBatch, batch_id)
    if batch is not None:
        in_batch = LegacyMember.batch_id == batch_id
        batch.bound_count = session.scalar(
            select(func.count()).where(in_batch, LegacyMember.status.in_(("bound", "merged")))
        )
        batch.conflict_count = session.scalar(
            select(func.count(BindingConflict.id)).where(
                BindingConflict.status == "open",
                BindingConflict.phone.in_(select(LegacyMember.phone).where(in_batch)),
            )
        )
        batch.report = {**(batch.report or {}), "bind_pass": dict(counts)}
    session.flush()
    return dict(counts)


def _insert_conflicts(
    session: Session, deferred: list[BindingConflict], counts: Counter[str], *, policy: BindPolicy, at: datetime
) -> None:
    """Insert the bind pass's new conflicts in one flush, or (one raced in) decide their phones one by one."""
    if not deferred:
        return
    pending = list(deferred)
    deferred.clear()
    try:
        with session.begin_nested():
            session.add_all(pending)
            session.flush()
    except IntegrityError:
        # Another transaction queued one of these phones first (possible only without the row locks, e.g.
        # SQLite); the savepoint is gone, so each phone is decided again on its own.
        for conflict in pending:
            outcome = bind_verified_phone(
                session,
                member_id=conflict.member_id,
                phone=conflict.phone,
                method=conflict.verified_via,
                at=at,
                policy=policy,
            )
            counts[outcome.status] += 1
        return
    counts["conflict"] += len(pending)


def preview_bind(
    session: Session, batch_id: int, *, at: datetime | None = None, policy: BindPolicy = DEFAULT_POLICY
) -> dict[str, int]:
    """What the bind pass would do for a (dry-run) batch, without doing it: matches, binds, conflicts."""
    at = at or utcnow()
    matched = (
        select(Member.id.label("member_id"), Member.phone.label("phone"))
        .join(LegacyMember, LegacyMember.phone == Member.phone)
        .where(LegacyMember.batch_id == batch_id, Member.phone_verified_at.is_not(None))
        .distinct()
        .subquery()
    )
    record = LegacyMember
    last_seen = func.coalesce(record.last_active_at, record.joined_at)
    per_phone = (
        select(
            matched.c.phone,
            func.sum(case((record.status.in_(("unbound", "pending_check")), 1), else_=0)).label("candidates"),
            func.sum(
                case(((record.status == "bound") & (record.bound_member_id != matched.c.member_id), 1), else_=0)
            ).label("elsewhere"),
            func.sum(
                case(((record.status == "bound") & (record.bound_member_id == matched.c.member_id), 1), else_=0)
            ).label("mine"),
            func.max(
                case(
                    ((record.points >= policy.asset_check_points) | (last_seen < policy.dormant_before(at)), 1), else_=0
                )
            ).label("risky"),
        )
        .join(record, (record.phone == matched.c.phone) & (record.status != "merged"))
        .group_by(matched.c.phone, matched.c.member_id)
        .subquery()
    )
    clean = (per_phone.c.mine == 0) & (per_phone.c.elsewhere == 0) & (per_phone.c.candidates == 1)
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((per_phone.c.mine > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(case((clean & (per_phone.c.risky == 0), 1), else_=0)), 0),
        )
    ).one()
    matches, already, binds = int(row[0]), int(row[1]), int(row[2])
    return {
        "matches_verified_members": matches,
        "would_bind": binds,
        "already_bound": already,
        "would_queue_conflicts": matches - binds - already,
    }
