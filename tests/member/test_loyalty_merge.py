"""Loyalty follows member merges: points, orders, coupons and tier move to the survivor and back on unmerge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from member.models import Coupon, LoyaltyAccount, Member, MemberMerge, Order, PointsEntry
from member.services import coupons, ledger, loyalty_merge, orders, tiers
from member.services.merge import merge_members, unmerge_members
from scrm.audit import Actor
from scrm.clock import utcnow
from tests.member.loyalty_support import check_ledger, member_headers, new_member, set_rules


def loyalty_state(session: Session, member_id: int) -> dict[str, Any]:
    session.expire_all()
    account = session.get(LoyaltyAccount, member_id)
    member = session.get(Member, member_id)
    return {
        "balance": account.points_balance if account else 0,
        "pending": account.points_pending if account else 0,
        "tier": None
        if tiers.tier_for_member(session, member_id) is None
        else tiers.tier_for_member(session, member_id).code,
        "tier_period": (account.tier_since, account.tier_period_end) if account else (None, None),
        "orders": sorted(session.scalars(select(Order.external_id).where(Order.member_id == member_id))),
        "coupons": sorted(session.scalars(select(Coupon.key).where(Coupon.member_id == member_id))),
        "last_order_at": member.last_order_at,
    }


@pytest.fixture
def loyal_pair(session: Session) -> tuple[int, int, int]:
    """Survivor A (a small order, bronze) and source B (an old and a new order, silver, a coupon, some spent)."""
    set_rules(session, pending_days=7, points_valid_days=365)
    tiers.create_tier(
        session, actor=Actor.system(), code="bronze", name="Bronze", rank=1, threshold_kind="points", threshold=10
    )
    tiers.create_tier(
        session,
        actor=Actor.system(),
        code="silver",
        name="Silver",
        rank=2,
        threshold_kind="spend_fen",
        threshold=50_000,
    )
    template = coupons.create_template(
        session, actor=Actor.system(), code="TEN", name="Ten off", kind="amount", amount_off_fen=1000, valid_days=30
    )
    a, b = new_member(session).id, new_member(session).id
    now = utcnow()
    orders.place_order(
        session, source="shop", external_id="a-1", member_id=a, amount_fen=2_000, paid_at=now - timedelta(days=20)
    )
    orders.place_order(
        session, source="shop", external_id="b-old", member_id=b, amount_fen=40_000, paid_at=now - timedelta(days=30)
    )
    orders.place_order(session, source="shop", external_id="b-new", member_id=b, amount_fen=15_000, paid_at=now)
    ledger.unlock_due(session)
    ledger.spend(session, member_id=b, points=100, key="b-spend", reason="gift", source="shop")
    coupons.grant(session, template_id=template.id, member_id=b, key="b-coupon", reason="welcome", source="staff")
    session.flush()
    return a, b, template.id


def test_merge_moves_points_orders_coupons_and_tier_and_unmerge_restores_both(client, app, session, loyal_pair):
    a, b, _template_id = loyal_pair
    before = (loyalty_state(session, a), loyalty_state(session, b))
    assert before[0]["tier"] == "bronze"
    assert before[1]["tier"] == "silver"
    assert (before[1]["balance"], before[1]["pending"]) == (300, 150)

    merge = merge_members(session, survivor_id=a, source_id=b, actor=Actor.system(), reason="same phone")
    merged = loyalty_state(session, a)
    assert (merged["balance"], merged["pending"]) == (20 + 300, 150)
    assert merged["orders"] == ["a-1", "b-new", "b-old"]
    assert merged["coupons"] == ["b-coupon"]
    assert merged["tier"] == "silver"  # the higher tier is kept
    assert loyalty_state(session, b)["balance"] == loyalty_state(session, b)["pending"] == 0
    for member_id in (a, b):
        check_ledger(session, member_id)
    record = session.get(MemberMerge, merge.id).moved["loyalty"]
    assert (record["points"], record["pending_points"], len(record["coupons"])) == (300, 150, 1)
    # The moved lots keep their dates: the pending one unlocks on the day the source's would have.
    moved_pending = session.get(PointsEntry, next(row[1] for row in record["lots"] if row[3] == "pending"))
    original = session.get(PointsEntry, next(row[0] for row in record["lots"] if row[3] == "pending"))
    assert (moved_pending.available_at, moved_pending.expires_at) == (original.available_at, original.expires_at)

    # Both tokens read the survivor over HTTP.
    session.commit()
    for token_member in (a, b):
        me = client.get("/api/v1/member/me", headers=member_headers(app, token_member)).json
        assert me["id"] == a
        assert me["sections"]["loyalty"]["points_balance"] == 320
        assert me["sections"]["loyalty"]["points_pending"] == 150
        assert me["sections"]["loyalty"]["tier_code"] == "silver"
        assert me["sections"]["loyalty"]["orders"] == 3
        assert me["sections"]["loyalty"]["available_coupons"] == 1
        listed = client.get("/api/v1/member/orders", headers=member_headers(app, token_member)).json
        assert sorted(o["external_id"] for o in listed["items"]) == ["a-1", "b-new", "b-old"]

    # A refund after the merge takes back from the lot that now holds the order's points.
    order = session.scalar(select(Order).where(Order.external_id == "b-new"))
    refund, _ = orders.refund_order(session, order_id=order.id, external_id="r-1", amount_fen=15_000)
    assert refund.points_reversed == 150
    assert loyalty_state(session, a)["pending"] == 0
    check_ledger(session, a)

    unmerge_members(session, merge.id, actor=Actor.system(), reason="different people")
    after_a, after_b = loyalty_state(session, a), loyalty_state(session, b)
    assert after_a == before[0]
    assert after_b == {**before[1], "pending": 0}  # the refund took the pending points while merged
    for member_id in (a, b):
        check_ledger(session, member_id)
    returned = session.get(MemberMerge, merge.id).moved["loyalty_unmerge"]
    assert (returned["returned"], returned["shortfall"]) == (300, 150)


def test_merge_and_unmerge_twice_have_one_effect(session, loyal_pair):
    a, b, _template_id = loyal_pair
    before = (loyalty_state(session, a), loyalty_state(session, b))
    merge = merge_members(session, survivor_id=a, source_id=b, actor=Actor.system())
    rows = session.scalar(select(func.count()).select_from(PointsEntry))
    assert loyalty_merge.merge_loyalty(session, merge_id=merge.id)["points"] == 300
    assert session.scalar(select(func.count()).select_from(PointsEntry)) == rows
    assert loyalty_state(session, a)["balance"] == 320
    unmerge_members(session, merge.id, actor=Actor.system())
    rows = session.scalar(select(func.count()).select_from(PointsEntry))
    assert loyalty_merge.unmerge_loyalty(session, merge_id=merge.id)["returned"] == 450
    assert session.scalar(select(func.count()).select_from(PointsEntry)) == rows
    assert (loyalty_state(session, a), loyalty_state(session, b)) == before
    keys = set(session.scalars(select(PointsEntry.key).where(PointsEntry.source == "merge")))
    assert all(key.startswith((f"merge:{merge.id}:", f"unmerge:{merge.id}:")) for key in keys)
    assert len(keys) == 8


def test_points_the_survivor_spent_are_the_shortfall_and_the_source_gets_back_what_remains(session, loyal_pair):
    a, b, _template_id = loyal_pair
    merge = merge_members(session, survivor_id=a, source_id=b, actor=Actor.system())
    # The survivor spends more than their own 20: first-expiring lots first, the moved ones among them.
    ledger.spend(session, member_id=a, points=250, key="a-big-spend", reason="gift", source="shop")
    left_on_moved = session.scalar(
        select(func.sum(PointsEntry.remaining)).where(
            PointsEntry.member_id == a, PointsEntry.source == "merge", PointsEntry.state == "available"
        )
    )
    unmerge_members(session, merge.id, actor=Actor.system())
    returned = session.get(MemberMerge, merge.id).moved["loyalty_unmerge"]
    assert returned["returned"] == left_on_moved + 150  # the pending lot comes back whole
    assert returned["shortfall"] == 300 - left_on_moved
    state_a, state_b = loyalty_state(session, a), loyalty_state(session, b)
    assert state_b["balance"] == left_on_moved
    assert state_b["pending"] == 150
    assert state_a["balance"] == 320 - 250 - left_on_moved >= 0
    for member_id in (a, b):
        check_ledger(session, member_id)


def test_pending_points_moved_by_a_merge_unlock_on_the_survivor(session, loyal_pair):
    a, b, _template_id = loyal_pair
    merge_members(session, survivor_id=a, source_id=b, actor=Actor.system())
    assert ledger.unlock_due(session, now=utcnow() + timedelta(days=8)) >= 1
    state_a, state_b = loyalty_state(session, a), loyalty_state(session, b)
    assert (state_a["balance"], state_a["pending"]) == (470, 0)
    assert (state_b["balance"], state_b["pending"]) == (0, 0)
    for member_id in (a, b):
        check_ledger(session, member_id)


def test_the_staff_merge_endpoint_carries_loyalty(client, staff, session, loyal_pair):
    a, b, _template_id = loyal_pair
    session.commit()
    admin = staff.headers("admin")
    merged = client.post(
        "/api/v1/staff/member-merges", json={"survivor_id": a, "source_id": b, "reason": "same phone"}, headers=admin
    )
    assert merged.status_code == 201, merged.json
    assert merged.json["moved"]["loyalty"]["points"] == 300
    view = client.get(f"/api/v1/staff/members/{a}", headers=admin).json
    assert view["sections"]["loyalty"]["points_balance"] == 320
    undone = client.post(
        f"/api/v1/staff/member-merges/{merged.json['id']}/unmerge", json={"reason": "not the same"}, headers=admin
    )
    assert undone.status_code == 200
    assert undone.json["moved"]["loyalty_unmerge"]["returned"] == 450
    session.expire_all()
    assert ledger.balance(session, b) == 300
    assert ledger.balance(session, a) == 20


def test_a_merge_of_a_merge_unwinds_in_order_and_restores_all_three(session, loyal_pair):
    a, b, _template_id = loyal_pair
    c = new_member(session).id
    ledger.earn(session, member_id=c, points=5, key="c-gift", reason="gift", source="shop")
    before = [loyalty_state(session, member_id) for member_id in (a, b, c)]
    first = merge_members(session, survivor_id=a, source_id=b, actor=Actor.system())
    second = merge_members(session, survivor_id=c, source_id=a, actor=Actor.system())
    assert (loyalty_state(session, c)["balance"], loyalty_state(session, c)["pending"]) == (325, 150)
    unmerge_members(session, second.id, actor=Actor.system())
    unmerge_members(session, first.id, actor=Actor.system())
    assert [loyalty_state(session, member_id) for member_id in (a, b, c)] == before
    for member_id in (a, b, c):
        check_ledger(session, member_id)
