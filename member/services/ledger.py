"""The points ledger: append-only entries, a balance row locked per member, FIFO spending, unlock and expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, case, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from member.errors import EntryNotFound, IdempotencyKeyReused, InsufficientPoints, MemberNotFound
from member.models import LoyaltyAccount, Member, PointsEntry
from scrm import audit
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.db import Base
from scrm.errors import InvalidInput

RowT = TypeVar("RowT", bound=Base)

#: Kinds whose rows are lots (credits that spending consumes).
LOT_KINDS = ("earn", "adjust")


@dataclass(frozen=True)
class Reversal:
    """What reversing part of a lot did: the entry written, the points taken back and the shortfall."""

    entry: PointsEntry
    reversed: int
    shortfall: int


def lock_account(session: Session, member_id: int, *, upsert: bool = False) -> LoyaltyAccount:
    """The member's loyalty account, created if missing and locked for the rest of the transaction.

    `upsert`: create or lock the row in one statement (`INSERT … ON CONFLICT DO UPDATE … RETURNING`), for a
    writer that usually meets a member without an account (the legacy carry-over on a first phone verification):
    one round trip where a new member otherwise takes two, at the price of a row version when the account exists.

    Why a row lock: every ledger write for a member starts here, with `SELECT … FOR UPDATE` on the
    member's `loyalty_accounts` row, so one member's writers run one after another: "is there enough?"
    and "take it" cannot interleave, and a redelivered idempotency key is seen by its replay. The row
    also materialises the balance under `CHECK (points_balance >= 0)`, so a bug that slipped past the
    lock would fail its transaction instead of overdrawing. Orders, refunds and tier evaluation take
    this lock before touching their own rows, and jobs take one member at a time, so they never deadlock.

    The model it guards: a credit (`earn`, `adjust` > 0) is a lot with `remaining` points; debits
    (`spend`, `adjust` < 0, `reverse`) consume lots first-expiring first. The balance is Σ delta of
    `available` entries, which is also Σ remaining of available lots (see docs/loyalty.md).
    """
    if upsert:
        return _upserted_account(session, member_id)
    account = _locked_account(session, member_id)
    if account is not None:
        return account
    if session.get(Member, member_id) is None:
        raise MemberNotFound()
    fresh = LoyaltyAccount(member_id=member_id, points_balance=0, points_pending=0, created_at=utcnow())
    # The row this transaction inserts is its own until commit, as good as locked: no second read. Two first
    # writers may race to create it; DO NOTHING lets the loser wait on the winner's lock below.
    account = insert_unless_exists(session, fresh, conflict_on=("member_id",))
    if account is None:
        account = _locked_account(session, member_id)
    assert account is not None
    return account


def _upserted_account(session: Session, member_id: int) -> LoyaltyAccount:
    if session.get(Member, member_id) is None:
        raise MemberNotFound()
    builder = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = builder(LoyaltyAccount).values(
        member_id=member_id, points_balance=0, points_pending=0, created_at=utcnow()
    )
    # An update that changes nothing, for its row lock: ON CONFLICT DO NOTHING would neither lock nor return it.
    statement = statement.on_conflict_do_update(
        index_elements=["member_id"], set_={"updated_at": LoyaltyAccount.__table__.c.updated_at}
    ).returning(LoyaltyAccount)
    return session.scalars(statement, execution_options={"populate_existing": True}).one()


def _locked_account(session: Session, member_id: int) -> LoyaltyAccount | None:
    # populate_existing: a row already in the session is refreshed with what the lock now guards.
    return session.scalar(
        select(LoyaltyAccount)
        .where(LoyaltyAccount.member_id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def balance(session: Session, member_id: int) -> int:
    """The member's spendable points (0 for a member who never had any)."""
    value = session.scalar(select(LoyaltyAccount.points_balance).where(LoyaltyAccount.member_id == member_id))
    return int(value or 0)


def earn(
    session: Session,
    *,
    member_id: int,
    points: int,
    key: str,
    reason: str,
    source: str,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    kind: str = "earn",
    detail: dict[str, Any] | None = None,
    account: LoyaltyAccount | None = None,
) -> PointsEntry:
    """Credit `points` as a new lot; a replay of `key` returns the first entry and changes nothing.

    Args:
        available_at: the lot is pending until then (None or a past time: spendable at once).
        expires_at: the lot's unspent points expire then (None: never).
        account: the member's account as `lock_account` returned it in this transaction, for a caller that
            holds the lock already (one lock and one read for several loyalty writes). The balance change is
            then left on it for the caller's next flush, so the caller's own change to the account (the
            carry-over's tier raise) goes out in the same UPDATE.
    Raises:
        IdempotencyKeyReused: `key` was used for another member or amount.
    """
    if points <= 0:
        raise InvalidInput("points to earn must be positive", details={"fields": {"points": ["Must be positive."]}})
    shared = account is not None
    if account is None:
        account = lock_account(session, member_id)
    pending = available_at is not None and available_at > utcnow()
    entry = PointsEntry(
        member_id=member_id,
        kind=kind,
        delta=points,
        remaining=points,
        state="pending" if pending else "available",
        reason=reason,
        source=source,
        key=key,
        available_at=available_at,
        expires_at=expires_at,
        detail=detail,
    )
    # Insert first, look for the replay only when the key is taken: one round trip in the usual case.
    written = insert_unless_exists(session, entry, conflict_on=("key",))
    if written is None:
        existing = _replayed(session, key, member_id=member_id, delta=points)
        if existing is None:  # the key's holder is gone again (ON CONFLICT waited for it to commit or abort)
            raise IdempotencyKeyReused(details={"key": key})
        return existing
    entry = written
    if pending:
        account.points_pending += points
    else:
        account.points_balance += points
    account.updated_at = utcnow()
    if not shared:
        session.flush()
    return entry


def spend(
    session: Session,
    *,
    member_id: int,
    points: int,
    key: str,
    reason: str,
    source: str,
    kind: str = "spend",
    detail: dict[str, Any] | None = None,
) -> PointsEntry:
    """Debit `points` from the available balance, first-expiring lots first; a replay of `key` is a no-op.

    Raises:
        InsufficientPoints (409): the available balance is smaller than `points`.
        IdempotencyKeyReused (409): `key` was used for another member or amount.
    """
    if points <= 0:
        raise InvalidInput("points to spend must be positive", details={"fields": {"points": ["Must be positive."]}})
    account = lock_account(session, member_id)
    existing = _replayed(session, key, member_id=member_id, delta=-points)
    if existing is not None:
        return existing
    if account.points_balance < points:
        raise InsufficientPoints(details={"balance": account.points_balance, "requested": points})
    entry = PointsEntry(
        member_id=member_id,
        kind=kind,
        delta=-points,
        state="available",
        reason=reason,
        source=source,
        key=key,
        detail=detail,
    )
    entry = _insert(session, entry)
    _consume(session, member_id, points)
    account.points_balance -= points
    account.updated_at = utcnow()
    session.flush()
    return entry


def reverse(
    session: Session,
    *,
    member_id: int,
    entry_id: int,
    points: int,
    key: str,
    reason: str,
    source: str,
    detail: dict[str, Any] | None = None,
) -> Reversal:
    """Take back up to `points` of lot `entry_id` (a refund); never drives the balance below zero.

    A pending lot gives back from its remaining points (a pending debit). An available lot gives back
    from its own remaining points first, then from the member's other lots; whatever the balance cannot
    cover is the shortfall, recorded on the entry and returned, never taken into the negative. One row
    is written per call, even when nothing could be taken, so a replay of `key` returns the same answer.
    """
    if points <= 0:
        raise InvalidInput("points to reverse must be positive", details={"fields": {"points": ["Must be positive."]}})
    account = lock_account(session, member_id)
    existing = session.scalar(select(PointsEntry).where(PointsEntry.key == key))
    if existing is not None:
        if existing.member_id != member_id or existing.ref_entry_id != entry_id or existing.kind != "reverse":
            raise IdempotencyKeyReused()
        info = existing.detail or {}
        return Reversal(existing, int(info.get("reversed", 0)), int(info.get("shortfall", 0)))
    lot = session.get(PointsEntry, entry_id, with_for_update=True)
    if lot is None or lot.member_id != member_id or lot.kind not in LOT_KINDS or lot.delta <= 0:
        raise EntryNotFound()
    if lot.state == "pending":
        taken = min(points, lot.remaining or 0)
        state = "pending"
    elif lot.state == "reversed":
        taken, state = 0, "available"
    else:
        taken = min(points, account.points_balance)
        state = "available"
    shortfall = points - taken
    entry = PointsEntry(
        member_id=member_id,
        kind="reverse",
        delta=-taken,
        state=state,
        reason=reason,
        source=source,
        key=key,
        ref_entry_id=lot.id,
        detail={**(detail or {}), "requested": points, "reversed": taken, "shortfall": shortfall},
    )
    entry = _insert(session, entry)
    if state == "pending":
        lot.remaining = (lot.remaining or 0) - taken
        account.points_pending -= taken
        if lot.remaining == 0:
            # Reversed to nothing before it ever counted: the lot and its pending debits leave the ledger's sums.
            session.execute(
                update(PointsEntry)
                .where(PointsEntry.ref_entry_id == lot.id, PointsEntry.state == "pending")
                .values(state="reversed")
                .execution_options(synchronize_session="fetch")
            )
            lot.state = "reversed"
    elif taken:
        _consume(session, member_id, taken, prefer_lot_id=lot.id)
        account.points_balance -= taken
    account.updated_at = utcnow()
    session.flush()
    return Reversal(entry, taken, shortfall)


def adjust(
    session: Session,
    *,
    member_id: int,
    points: int,
    key: str,
    reason: str,
    actor: Actor,
    expires_at: datetime | None = None,
) -> PointsEntry:
    """A staff correction: a new credit lot (points > 0) or a debit (points < 0), audited with the balance."""
    if points == 0:
        raise InvalidInput("points must not be 0", details={"fields": {"points": ["Must not be 0."]}})
    before = balance(session, member_id)
    source = f"{actor.type}:{actor.id}" if actor.id is not None else actor.type
    detail = {"actor": source}
    if points > 0:
        entry = earn(
            session,
            member_id=member_id,
            points=points,
            key=key,
            reason=reason,
            source="staff",
            expires_at=expires_at,
            kind="adjust",
            detail=detail,
        )
    else:
        entry = spend(
            session,
            member_id=member_id,
            points=-points,
            key=key,
            reason=reason,
            source="staff",
            kind="adjust",
            detail=detail,
        )
    if entry.kind != "adjust":
        raise IdempotencyKeyReused(details={"key": key})
    after = balance(session, member_id)
    if after != before:  # a replay changes nothing and is not audited twice
        audit.record(
            session,
            actor,
            "points.adjust",
            target_type="member",
            target_id=member_id,
            before={"points_balance": before},
            after={"points_balance": after, "entry_id": entry.id, "delta": entry.delta},
            reason=reason,
        )
    return entry


def unlock_due(session: Session, *, now: datetime | None = None, batch_size: int = 500) -> int:
    """Make pending lots whose `available_at` has come spendable; returns how many lots unlocked.

    Safe to run twice: an unlocked lot is no longer pending.
    """
    now = now or utcnow()
    due = select(PointsEntry.member_id).where(
        PointsEntry.state == "pending", PointsEntry.kind.in_(LOT_KINDS), PointsEntry.available_at <= now
    )
    count = 0
    for member_id in _distinct_members(session, due, batch_size):
        account = lock_account(session, member_id)
        lots = session.scalars(
            select(PointsEntry)
            .where(
                PointsEntry.member_id == member_id,
                PointsEntry.state == "pending",
                PointsEntry.kind.in_(LOT_KINDS),
                PointsEntry.available_at <= now,
            )
            .order_by(PointsEntry.id)
        ).all()
        for lot in lots:
            remaining = lot.remaining or 0
            session.execute(
                update(PointsEntry)
                .where(PointsEntry.ref_entry_id == lot.id, PointsEntry.state == "pending")
                .values(state="available")
                .execution_options(synchronize_session="fetch")
            )
            lot.state = "available"
            account.points_pending -= remaining
            account.points_balance += remaining
            count += 1
        account.updated_at = now
        session.flush()
    return count


def expire_due(session: Session, *, now: datetime | None = None, batch_size: int = 500) -> int:
    """Expire the unspent points of available lots past `expires_at`; returns the points expired.

    The lot turns `expired` (its whole delta leaves the balance) and a `restate` row, keyed on the
    lot, puts its already-spent part back, so the balance drops by exactly the unspent points.
    Safe to run twice: an expired lot is no longer available, and the restatement key is unique.
    """
    now = now or utcnow()
    due = select(PointsEntry.member_id).where(
        PointsEntry.state == "available",
        PointsEntry.kind.in_(LOT_KINDS),
        PointsEntry.expires_at <= now,
        PointsEntry.remaining > 0,
    )
    expired_points = 0
    for member_id in _distinct_members(session, due, batch_size):
        account = lock_account(session, member_id)
        lots = session.scalars(
            select(PointsEntry)
            .where(
                PointsEntry.member_id == member_id,
                PointsEntry.state == "available",
                PointsEntry.kind.in_(LOT_KINDS),
                PointsEntry.expires_at <= now,
                PointsEntry.remaining > 0,
            )
            .order_by(PointsEntry.id)
        ).all()
        for lot in lots:
            unspent = lot.remaining or 0
            spent = lot.delta - unspent
            lot.state = "expired"
            lot.remaining = 0
            lot.detail = {**(lot.detail or {}), "expired_points": unspent, "expired_at": now.isoformat()}
            if spent:
                session.add(
                    PointsEntry(
                        member_id=member_id,
                        kind="restate",
                        delta=spent,
                        remaining=0,
                        state="available",
                        reason="spent part of an expired lot",
                        source="ledger",
                        key=f"expire:{lot.id}:restate",
                        ref_entry_id=lot.id,
                        created_at=now,
                    )
                )
            account.points_balance -= unspent
            expired_points += unspent
        account.updated_at = now
        session.flush()
    return expired_points


def _distinct_members(session: Session, due: Select[Any], batch_size: int) -> list[int]:
    return list(session.scalars(due.distinct().order_by(PointsEntry.member_id).limit(batch_size)))


def _replayed(session: Session, key: str, *, member_id: int, delta: int) -> PointsEntry | None:
    existing = session.scalar(select(PointsEntry).where(PointsEntry.key == key))
    if existing is None:
        return None
    if existing.member_id != member_id or existing.delta != delta:
        raise IdempotencyKeyReused(details={"key": key})
    return existing


def _insert(session: Session, entry: PointsEntry) -> PointsEntry:
    """`entry` written, as the persistent row; a key another writer already holds raises IdempotencyKeyReused.

    The account lock serialises one member's writers; a key reused across members still races on the unique
    index, and the loser gets a 409 instead of a 500.
    """
    written = insert_unless_exists(session, entry, conflict_on=("key",))
    if written is None:
        raise IdempotencyKeyReused(details={"key": entry.key})
    return written


def insert_unless_exists(
    session: Session, row: RowT, *, conflict_on: tuple[str, ...], where: ColumnElement[bool] | None = None
) -> RowT | None:
    """Write the transient `row` and return it as persistent, or None when a row with the same `conflict_on`
    columns exists (or a concurrent transaction commits one first). `where`: the predicate of a partial
    unique index on those columns.

    Why not a savepoint around `session.add` + flush: `INSERT … ON CONFLICT DO NOTHING RETURNING` is one round
    trip where SAVEPOINT, INSERT and RELEASE are three, on the hot path of every order and ledger write.
    """
    mapper = inspect(type(row))
    values = {attr.key: value for attr in mapper.column_attrs if (value := getattr(row, attr.key)) is not None}
    builder = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        builder(type(row))
        .values(values)
        .on_conflict_do_nothing(index_elements=list(conflict_on), index_where=where)
        .returning(type(row))
    )
    return session.scalars(statement).one_or_none()


def _consume(session: Session, member_id: int, points: int, *, prefer_lot_id: int | None = None) -> None:
    """Take `points` from the member's available lots: `prefer_lot_id` first, then first-expiring first."""
    lots = session.scalars(
        select(PointsEntry)
        .where(
            PointsEntry.member_id == member_id,
            PointsEntry.state == "available",
            PointsEntry.kind.in_(LOT_KINDS),
            PointsEntry.remaining > 0,
        )
        .order_by(
            case((PointsEntry.id == prefer_lot_id, 0), else_=1),
            case((PointsEntry.expires_at.is_(None), 1), else_=0),
            PointsEntry.expires_at,
            PointsEntry.id,
        )
        .with_for_update()
    )
    left = points
    for lot in lots:
        take = min(left, lot.remaining or 0)
        lot.remaining = (lot.remaining or 0) - take
        left -= take
        if left == 0:
            break
    if left:
        # The balance row said there was enough; the lots disagree, so the ledger is inconsistent.
        raise RuntimeError(f"ledger of member {member_id}: lots hold {points - left} of {points} points to consume")
