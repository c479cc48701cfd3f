"""Queueing a conflict: one open conflict per phone, written with ON CONFLICT, however often the statement runs."""

from __future__ import annotations

from sqlalchemy import select

from member.legacy.models import BindingConflict
from tests.member.legacy.test_binding import PHONE, make_batch, make_record, verify


def test_many_conflicts_queued_on_one_connection(app, session, factories):
    # psycopg prepares a statement after 5 runs and PostgreSQL plans it generically after 5 more: ON CONFLICT must
    # still find the partial unique index then, so its predicate cannot be a bound parameter.
    batch = make_batch(session)
    for n in range(12):
        phone = f"+86136001360{n:02d}"
        make_record(session, batch, f"L{n + 1}", phone=phone, days_idle=999)
        verify(session, factories.MemberFactory(), phone=phone)
    opened = session.scalars(select(BindingConflict).where(BindingConflict.status == "open")).all()
    assert len(opened) == 12
    assert PHONE not in {c.phone for c in opened}
