"""T13 on PostgreSQL with real commits: one coupon redeemed once by 50 threads; concurrent spends never overdraw."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from member.errors import InsufficientPoints
from member.models import Coupon, CouponTemplate, LoyaltyAccount, Tier, TierChange
from member.services import ledger, tiers
from scrm.clock import utcnow
from tests.member.loyalty_support import member_headers, new_member


def _race(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as error:  # the test inspects what each thread got
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_fifty_threads_redeem_one_coupon_exactly_once(committed_app: Flask):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        member = new_member(session)
        template = CouponTemplate(code="T13", name="race", kind="amount", amount_off_fen=500, valid_days=30)
        session.add(template)
        session.flush()
        coupon = Coupon(
            template_id=template.id,
            member_id=member.id,
            key="t13",
            reason="test",
            source="test",
            expires_at=utcnow() + timedelta(days=1),
        )
        session.add(coupon)
        session.flush()
        member_id, coupon_id = member.id, coupon.id
    headers = member_headers(committed_app, member_id)

    def redeem(_index: int) -> int:
        client = committed_app.test_client()
        return client.post(f"/api/v1/member/coupons/{coupon_id}/redeem", json={}, headers=headers).status_code

    statuses = Counter(_race(50, redeem))
    assert statuses == {200: 1, 409: 49}
    with db.transaction() as session:
        assert session.get(Coupon, coupon_id).state == "redeemed"


def test_concurrent_spends_never_overdraw_and_end_exact(committed_app: Flask):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        member = new_member(session)
        ledger.earn(session, member_id=member.id, points=100, key="seed", reason="seed", source="test")
        member_id = member.id

    def spend(index: int) -> str:
        with db.transaction() as session:
            ledger.spend(session, member_id=member_id, points=10, key=f"spend-{index}", reason="race", source="test")
        return "ok"

    results = _race(20, spend)
    assert sum(1 for r in results if r == "ok") == 10
    assert all(isinstance(r, InsufficientPoints) for r in results if r != "ok")
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 0
    # Replaying every key afterwards changes nothing: the winners' keys return their entries, the losers' fail.
    again = _race(20, spend)
    assert sum(1 for r in again if r == "ok") == 10
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 0


def test_concurrent_first_earns_and_redeliveries_apply_each_key_once(committed_app: Flask):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        member_id = new_member(session).id  # no loyalty account yet: the first writers race to create it

    def earn(index: int) -> int:
        with db.transaction() as session:
            entry = ledger.earn(
                session, member_id=member_id, points=5, key=f"earn-{index % 10}", reason="race", source="test"
            )
            return entry.id

    results = _race(30, earn)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 10
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 50


def test_concurrent_shared_lock_writers_create_the_account_once_and_apply_each_key_once(committed_app: Flask):
    """The carry-over's path: one upsert creates or locks the account, earn and tier raise share it."""
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        member_id = new_member(session).id  # no loyalty account yet
        gold = Tier(code="race-gold", name="gold", rank=7, threshold_kind="points", threshold=10**9)
        session.add(gold)
        session.flush()
        gold_id = gold.id

    def carry(index: int) -> int:
        with db.transaction() as session:
            account = ledger.lock_account(session, member_id, upsert=True)
            entry = ledger.earn(
                session,
                member_id=member_id,
                points=5,
                key=f"carry-{index % 10}",
                reason="race",
                source="test",
                account=account,
            )
            tiers.ensure_tier_at_least(
                session, member_id=member_id, tier_code="race-gold", reason="race", source="test", account=account
            )
            return entry.id

    results = _race(30, carry)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 10
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 50
        assert session.get(LoyaltyAccount, member_id).tier_id == gold_id
        assert session.scalar(select(func.count()).where(TierChange.member_id == member_id)) == 1
