"""Transactional outbox: record side effects with the business change, relay them after commit in batches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Insert, cast, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scrm.clock import utcnow
from scrm.db import Database
from scrm.models import OUTBOX_DEAD, OUTBOX_DONE, OUTBOX_PENDING, OutboxMessage

log = logging.getLogger(__name__)

QUEUE_CALLBACKS = "callbacks"
QUEUE_DEFAULT = "default"
QUEUE_ANALYTICS = "analytics"
QUEUES = (QUEUE_CALLBACKS, QUEUE_DEFAULT, QUEUE_ANALYTICS)

#: session.info key holding the queues that received rows in the current transaction.
PENDING_QUEUES = "scrm.outbox.pending_queues"

OutboxHandlerFn = Callable[[Session, dict[str, Any]], None]


@dataclass(frozen=True)
class OutboxHandler:
    kind: str
    queue: str
    fn: OutboxHandlerFn


_handlers: dict[str, OutboxHandler] = {}


def handler(kind: str, *, queue: str = QUEUE_DEFAULT) -> Callable[[OutboxHandlerFn], OutboxHandlerFn]:
    """Register `fn(session, payload)` as the handler of outbox rows of `kind`.

    The handler runs inside the relay's transaction, in a savepoint of its own: it must flush,
    never commit, and be safe to run twice (a crash before the relay commits re-runs it).
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")

    def register(fn: OutboxHandlerFn) -> OutboxHandlerFn:
        existing = _handlers.get(kind)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"outbox kind {kind!r} already has a handler")
        _handlers[kind] = OutboxHandler(kind, queue, fn)
        return fn

    return register


def registered_handler(kind: str) -> OutboxHandler | None:
    return _handlers.get(kind)


def emit(session: Session, kind: str, payload: dict[str, Any], *, key: str | None = None) -> int | None:
    """Record a side effect to carry out once the current transaction commits.

    Args:
        session: the business transaction's session.
        kind: a registered handler kind, e.g. ``"referral.pay_reward"``.
        payload: JSON-safe arguments (ids and primitives, never ORM objects).
        key: optional idempotency key; emitting an existing key again does nothing.

    Returns:
        The new row's id, or None when `key` was already recorded.
    """
    spec = _handlers.get(kind)
    if spec is None:
        raise ValueError(f"no outbox handler registered for {kind!r}")
    now = utcnow()
    values = {
        "kind": kind,
        "queue": spec.queue,
        "key": key,
        "payload": payload,
        "status": OUTBOX_PENDING,
        "attempts": 0,
        "available_at": now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    if key is not None and dialect in ("postgresql", "sqlite"):
        builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = builder(OutboxMessage).values(values).on_conflict_do_nothing(index_elements=["key"])
    else:
        stmt = insert(OutboxMessage).values(values)
    row_id = session.execute(stmt.returning(OutboxMessage.id)).scalar_one_or_none()
    if row_id is not None:
        session.info.setdefault(PENDING_QUEUES, set()).add(spec.queue)
    return row_id


def emit_for_each(kind: str, new_ids: Any, *, payload_key: str, at: ColumnElement[Any]) -> Insert:
    """A statement recording one `kind` row, payload ``{payload_key: id}``, per id in `new_ids` (PostgreSQL).

    `new_ids` is a CTE with an ``id`` column, typically ``INSERT … ON CONFLICT DO NOTHING RETURNING id``, so the
    business row and its outbox row are written by one statement (one round trip) and a conflict writes neither.
    The statement returns the ids taken from the payloads. Build it once and execute it with parameters; after
    executing, call `note_emitted` when it returned a row so the relay is told after commit.
    """
    spec = _handlers.get(kind)
    if spec is None:
        raise ValueError(f"no outbox handler registered for {kind!r}")
    columns = ("kind", "queue", "payload", "status", "attempts", "available_at", "created_at")
    rows = select(
        literal(kind),
        literal(spec.queue),
        func.jsonb_build_object(payload_key, new_ids.c.id),
        literal(OUTBOX_PENDING),
        literal(0),
        at,
        at,
    ).select_from(new_ids)
    table = OutboxMessage.__table__
    return (
        insert(table).from_select(columns, rows).returning(cast(table.c.payload[payload_key].as_string(), BigInteger))
    )


def queue_of(kind: str) -> str:
    """The queue that runs rows of `kind` (to notify the relay of rows committed outside a session)."""
    return _handlers[kind].queue


def note_emitted(session: Session, kind: str) -> None:
    """Tell the relay, once `session` commits, that rows of `kind` were written by the caller's own statement."""
    session.info.setdefault(PENDING_QUEUES, set()).add(_handlers[kind].queue)


@dataclass
class DrainResult:
    done: int = 0
    failed: int = 0
    dead: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DrainResult) -> None:
        self.done += other.done
        self.failed += other.failed
        self.dead += other.dead
        self.batches += other.batches
        self.errors.extend(other.errors[:10])


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: 2, 4, 8 … seconds, capped at 10 minutes."""
    return timedelta(seconds=min(2**attempts, 600))


def drain_batch(db: Database, queue: str, *, batch_size: int, max_attempts: int) -> DrainResult:
    """Claim up to `batch_size` due rows of `queue`, run their handlers, mark them; one transaction.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so several relays can drain one queue. Each
    handler runs in a savepoint: a failing row is rolled back alone and retried later with
    backoff, and becomes `dead` after `max_attempts`. Effects and the `done` mark commit together,
    so a relay killed mid-batch leaves its rows pending and nothing half-done.
    """
    result = DrainResult(batches=1)
    with db.transaction() as session:
        now = utcnow()
        claim = (
            select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.payload, OutboxMessage.attempts)
            .where(
                OutboxMessage.status == OUTBOX_PENDING, OutboxMessage.queue == queue, OutboxMessage.available_at <= now
            )
            .order_by(OutboxMessage.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        rows = session.execute(claim).all()
        done_ids: list[int] = []
        for row in rows:
            spec = _handlers.get(row.kind)
            try:
                if spec is None:
                    raise LookupError(f"no handler registered for outbox kind {row.kind!r}")
                with session.begin_nested():
                    spec.fn(session, row.payload)
            except Exception as exc:
                attempts = row.attempts + 1
                dead = attempts >= max_attempts
                error = f"{type(exc).__name__}: {exc}"[:1000]
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id)
                    .values(
                        attempts=attempts,
                        last_error=error,
                        status=OUTBOX_DEAD if dead else OUTBOX_PENDING,
                        available_at=now + retry_delay(attempts),
                    )
                )
                result.failed += 1
                result.dead += int(dead)
                result.errors.append(f"#{row.id} {row.kind}: {error}")
                log.warning(
                    "outbox row failed",
                    extra={"outbox_id": row.id, "kind": row.kind, "attempts": attempts, "dead": dead, "error": error},
                )
            else:
                done_ids.append(row.id)
        if done_ids:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(done_ids))
                .values(status=OUTBOX_DONE, done_at=now, attempts=OutboxMessage.attempts + 1)
            )
        result.done = len(done_ids)
        if not rows:
            result.batches = 0
    return result


def drain(
    db: Database, queue: str, *, batch_size: int = 200, max_attempts: int = 8, max_batches: int | None = None
) -> DrainResult:
    """Drain `queue` batch by batch until no due row is left (or `max_batches` ran)."""
    total = DrainResult()
    while max_batches is None or total.batches < max_batches:
        result = drain_batch(db, queue, batch_size=batch_size, max_attempts=max_attempts)
        total.add(result)
        # A batch that only failed must not spin: those rows are now backed off into the future.
        if result.done + result.failed < batch_size or result.done == 0:
            break
    return total


def due_queues(session: Session, *, stale_after_s: float) -> dict[str, int]:
    """Queues with pending rows due for longer than `stale_after_s`, with their counts."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    rows = session.execute(
        select(OutboxMessage.queue, func.count())
        .where(OutboxMessage.status == OUTBOX_PENDING, OutboxMessage.available_at <= cutoff)
        .group_by(OutboxMessage.queue)
    ).all()
    return {queue: count for queue, count in rows}


def backlog(session: Session) -> dict[str, int]:
    """Pending rows per queue (for /readyz-style monitoring and the CLI)."""
    rows = session.execute(
        select(OutboxMessage.queue, func.count())
        .where(OutboxMessage.status == OUTBOX_PENDING)
        .group_by(OutboxMessage.queue)
    ).all()
    return {queue: count for queue, count in rows}


# The embedded (no Redis) mode drains in the committing thread; one lock keeps two request
# threads from draining the same SQLite rows at once (SQLite has no SKIP LOCKED).
embedded_drain_lock = threading.RLock()
