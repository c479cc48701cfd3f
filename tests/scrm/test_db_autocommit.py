"""Database.execute_autocommit: one statement, committed when it returns, surviving a dropped connection."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import bindparam, func, insert, select, text

from scrm.clock import utcnow
from scrm.db import Database
from scrm.models import AuditEntry

AUDIT = AuditEntry.__table__
INSERT_ENTRY = (
    insert(AUDIT)
    .values(
        actor_type="system",
        action="test.autocommit",
        target_type="test",
        target_id=bindparam("target_id"),
        at=bindparam("at", type_=AUDIT.c.at.type),
    )
    .returning(AUDIT.c.id)
)


def count(db: Database, target_id: str) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.target_id == target_id))


def test_a_statement_is_committed_when_it_returns_and_survives_a_dropped_connection(committed_app: Flask, pg_engine):
    db = committed_app.extensions["scrm"].db
    assert db.autocommit_writes
    assert db.execute_autocommit(INSERT_ENTRY, {"target_id": "first", "at": utcnow()}) is not None
    # Committed: another connection sees it, with no commit call anywhere.
    assert count(db, "first") == 1

    # PostgreSQL drops the pooled connection (a restart, a proxy's idle timeout) and nothing pre-pings it.
    pid = db.execute_autocommit(select(func.pg_backend_pid()), {})
    with pg_engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    assert db.execute_autocommit(INSERT_ENTRY, {"target_id": "after-drop", "at": utcnow()}) is not None
    assert count(db, "after-drop") == 1


def test_sessions_bound_to_a_test_transaction_do_not_autocommit(db: Database):
    assert not db.autocommit_writes
