"""The UTC datetime type round-trips aware datetimes on SQLite and PostgreSQL, and refuses naive ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from scrm.models import AuditEntry

SHANGHAI = timezone(timedelta(hours=8))


def _roundtrip(db, at: datetime) -> datetime:
    with db.transaction() as session:
        entry = AuditEntry(actor_type="system", action="t", target_type="t", at=at)
        session.add(entry)
        session.flush()
        entry_id = entry.id
    with db.transaction() as session:
        return session.scalar(select(AuditEntry.at).where(AuditEntry.id == entry_id))


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_aware_datetimes_round_trip_as_utc(backend, db, sqlite_app):
    database = db if backend == "postgresql" else sqlite_app.extensions["scrm"].db
    local = datetime(2026, 11, 23, 20, 30, 15, 123456, tzinfo=SHANGHAI)
    loaded = _roundtrip(database, local)
    assert loaded.tzinfo is not None
    assert loaded.utcoffset() == timedelta(0)
    assert loaded == local
    assert loaded == datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=UTC)


def test_naive_datetimes_are_refused(db):
    session = db.session()
    session.add(AuditEntry(actor_type="system", action="t", target_type="t", at=datetime(2026, 1, 1)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()
    session.rollback()
    session.close()
