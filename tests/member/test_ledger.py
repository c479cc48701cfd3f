"""The points ledger on PostgreSQL: idempotent earn and spend, FIFO lots, unlock, expiry (job run twice), reversal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from member.errors import IdempotencyKeyReused, InsufficientPoints
from member.jobs import loyalty as jobs
from member.models import LoyaltyAccount, PointsEntry
from member.services import ledger
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.models import AuditEntry
from tests.member.loyalty_support import new_member


def _sum_available(session, member_id: int) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.member_id == member_id, PointsEntry.state == "available"
        )
    )


def _earn(session, member_id: int, points: int, key: str, **kwargs):
    return ledger.earn(session, member_id=member_id, points=points, key=key, reason="test", source="test", **kwargs)


def test_earn_is_idempotent_on_its_key(session):
    member = new_member(session)
    first = _earn(session, member.id, 100, "k1")
    again = _earn(session, member.id, 100, "k1")
    assert again.id == first.id
    assert ledger.balance(session, member.id) == 100
    assert session.scalar(select(func.count()).select_from(PointsEntry)) == 1


def test_a_key_reused_for_another_amount_or_member_is_a_conflict(session):
    member, other = new_member(session), new_member(session)
    _earn(session, member.id, 100, "k1")
    with pytest.raises(IdempotencyKeyReused):
        _earn(session, member.id, 50, "k1")
    with pytest.raises(IdempotencyKeyReused):
        _earn(session, other.id, 100, "k1")
    assert ledger.balance(session, other.id) == 0


def test_spend_refuses_to_go_negative_and_replays(session):
    member = new_member(session)
    _earn(session, member.id, 30, "e")
    with pytest.raises(InsufficientPoints) as refused:
        ledger.spend(session, member_id=member.id, points=31, key="s1", reason="r", source="t")
    assert refused.value.status == 409
    entry = ledger.spend(session, member_id=member.id, points=20, key="s2", reason="r", source="t")
    assert ledger.spend(session, member_id=member.id, points=20, key="s2", reason="r", source="t").id == entry.id
    assert ledger.balance(session, member.id) == 10 == _sum_available(session, member.id)


def test_spend_takes_the_first_expiring_lot_first(session):
    member = new_member(session)
    now = utcnow()
    late = _earn(session, member.id, 50, "late", expires_at=now + timedelta(days=30))
    never = _earn(session, member.id, 50, "never")
    soon = _earn(session, member.id, 50, "soon", expires_at=now + timedelta(days=1))
    ledger.spend(session, member_id=member.id, points=70, key="s", reason="r", source="t")
    assert (soon.remaining, late.remaining, never.remaining) == (0, 30, 50)


def test_pending_points_are_not_spendable_until_unlocked(session):
    member = new_member(session)
    now = utcnow()
    _earn(session, member.id, 40, "p", available_at=now + timedelta(days=7))
    assert ledger.balance(session, member.id) == 0
    with pytest.raises(InsufficientPoints):
        ledger.spend(session, member_id=member.id, points=1, key="s", reason="r", source="t")
    assert ledger.unlock_due(session, now=now + timedelta(days=6)) == 0
    assert ledger.unlock_due(session, now=now + timedelta(days=7)) == 1
    assert ledger.unlock_due(session, now=now + timedelta(days=7)) == 0
    assert ledger.balance(session, member.id) == 40 == _sum_available(session, member.id)
    assert session.get(LoyaltyAccount, member.id).points_pending == 0


def test_expiry_takes_only_the_unspent_part_and_keeps_deltas(session):
    member = new_member(session)
    now = utcnow()
    lot = _earn(session, member.id, 100, "lot", expires_at=now + timedelta(days=1))
    _earn(session, member.id, 10, "other")
    ledger.spend(session, member_id=member.id, points=60, key="s", reason="r", source="t")
    assert ledger.expire_due(session, now=now + timedelta(days=2)) == 40
    assert ledger.expire_due(session, now=now + timedelta(days=2)) == 0
    assert (lot.state, lot.delta) == ("expired", 100)
    restated = session.scalar(select(PointsEntry).where(PointsEntry.kind == "restate"))
    assert (restated.delta, restated.ref_entry_id) == (60, lot.id)
    assert ledger.balance(session, member.id) == 10 == _sum_available(session, member.id)


def test_the_points_job_run_twice_has_one_effect(app, db):
    now = utcnow()
    with db.transaction() as session:
        member = new_member(session)
        _earn(session, member.id, 25, "soon", expires_at=now + timedelta(days=1))
        _earn(session, member.id, 5, "pending", available_at=now + timedelta(days=7))
        member_id = member.id
    later = now + timedelta(days=8)
    with app.app_context():
        first = jobs.points_maintenance(now=later)
        second = jobs.points_maintenance(now=later)
    assert first == {"unlocked_lots": 1, "expired_points": 25}
    assert second == {"unlocked_lots": 0, "expired_points": 0}
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 5 == _sum_available(session, member_id)


def test_reversing_a_pending_lot_to_nothing_marks_it_reversed(session):
    member = new_member(session)
    lot = _earn(session, member.id, 100, "p", available_at=utcnow() + timedelta(days=7))
    first = ledger.reverse(session, member_id=member.id, entry_id=lot.id, points=30, key="r1", reason="x", source="t")
    assert (first.reversed, first.shortfall, first.entry.state) == (30, 0, "pending")
    assert session.get(LoyaltyAccount, member.id).points_pending == 70
    ledger.reverse(session, member_id=member.id, entry_id=lot.id, points=70, key="r2", reason="x", source="t")
    assert lot.state == "reversed"
    assert session.get(LoyaltyAccount, member.id).points_pending == 0
    states = set(session.scalars(select(PointsEntry.state).where(PointsEntry.member_id == member.id)))
    assert states == {"reversed"}


def test_reversing_spent_points_stops_at_zero_and_records_the_shortfall(session):
    member = new_member(session)
    lot = _earn(session, member.id, 100, "e")
    ledger.spend(session, member_id=member.id, points=80, key="s", reason="r", source="t")
    result = ledger.reverse(session, member_id=member.id, entry_id=lot.id, points=50, key="rv", reason="x", source="t")
    assert (result.reversed, result.shortfall) == (20, 30)
    assert ledger.balance(session, member.id) == 0 == _sum_available(session, member.id)
    replay = ledger.reverse(session, member_id=member.id, entry_id=lot.id, points=50, key="rv", reason="x", source="t")
    assert (replay.entry.id, replay.reversed, replay.shortfall) == (result.entry.id, 20, 30)


def test_staff_adjustments_are_audited_once(session):
    member = new_member(session)
    actor = Actor("staff", 7, "admin")
    ledger.adjust(session, member_id=member.id, points=50, key="a1", reason="goodwill", actor=actor)
    ledger.adjust(session, member_id=member.id, points=50, key="a1", reason="goodwill", actor=actor)
    ledger.adjust(session, member_id=member.id, points=-20, key="a2", reason="correction", actor=actor)
    with pytest.raises(InsufficientPoints):
        ledger.adjust(session, member_id=member.id, points=-31, key="a3", reason="too much", actor=actor)
    assert ledger.balance(session, member.id) == 30
    rows = session.scalars(select(AuditEntry).where(AuditEntry.action == "points.adjust").order_by(AuditEntry.id))
    assert [(r.actor_id, r.reason, r.before, r.after["points_balance"]) for r in rows] == [
        (7, "goodwill", {"points_balance": 0}, 50),
        (7, "correction", {"points_balance": 50}, 30),
    ]
