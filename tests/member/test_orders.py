"""Orders over HTTP: replay idempotency, refunds reversing points in proportion, clawback shortfall, tiers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from member import signals
from member.jobs import loyalty as jobs
from member.models import LoyaltyAccount, Tier, TierChange
from member.services import ledger, orders, tiers
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.models import AuditEntry
from tests.conftest import StaffAuth
from tests.member.loyalty_support import member_headers, new_member, set_rules


def _order(member_id: int, external_id: str = "A-1", amount_fen: int = 10_000, **extra) -> dict:
    paid_at = extra.pop("paid_at", "2026-11-30T10:00:00+00:00")
    return {
        "source": "shop",
        "external_id": external_id,
        "member_id": member_id,
        "amount_fen": amount_fen,
        "paid_at": paid_at,
        **extra,
    }


@pytest.fixture
def admin(staff):
    return staff.headers("admin")


@pytest.fixture
def member_id(db):
    with db.transaction() as session:
        set_rules(session, pending_days=0, points_per_yuan=1)
        return new_member(session).id


def test_an_order_replay_returns_the_same_order_and_a_changed_body_is_409(client, admin, member_id, db):
    items = [{"sku": "TEA-1", "quantity": 2, "price_fen": 5000}]
    first = client.post("/api/v1/staff/orders", json=_order(member_id, items=items), headers=admin)
    assert first.status_code == 201
    assert first.json["points_earned"] == 100
    replay = client.post("/api/v1/staff/orders", json=_order(member_id, items=items), headers=admin)
    assert (replay.status_code, replay.json) == (200, first.json)
    changed = client.post("/api/v1/staff/orders", json=_order(member_id, amount_fen=9_000, items=items), headers=admin)
    assert changed.status_code == 409
    assert changed.json["error"]["details"]["differs"] == ["amount_fen"]
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 100
        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "order.record")).all()
        assert len(audits) == 1


def test_order_paid_is_signalled_once(client, admin, member_id):
    seen: list[int] = []

    def receiver(sender: int, **kwargs) -> None:
        seen.append(kwargs["order"].id)

    signals.order_paid.connect(receiver)
    try:
        for _ in range(2):
            client.post("/api/v1/staff/orders", json=_order(member_id), headers=admin)
    finally:
        signals.order_paid.disconnect(receiver)
    assert len(seen) == 1


def test_refunds_reverse_points_in_proportion_and_are_idempotent(client, admin, member_id, db):
    order = client.post("/api/v1/staff/orders", json=_order(member_id, amount_fen=30_000), headers=admin).json
    url = f"/api/v1/staff/orders/{order['id']}/refunds"
    first = client.post(url, json={"external_id": "R-1", "amount_fen": 10_000}, headers=admin)
    assert first.status_code == 201
    assert (first.json["points_reversed"], first.json["points_shortfall"]) == (100, 0)
    assert client.post(url, json={"external_id": "R-1", "amount_fen": 10_000}, headers=admin).status_code == 200
    assert client.post(url, json={"external_id": "R-1", "amount_fen": 5_000}, headers=admin).status_code == 409
    too_much = client.post(url, json={"external_id": "R-2", "amount_fen": 20_001}, headers=admin)
    assert too_much.status_code == 422
    assert "amount_fen" in too_much.json["error"]["details"]["fields"]
    rest = client.post(url, json={"external_id": "R-2", "amount_fen": 20_000}, headers=admin)
    assert rest.json["points_reversed"] == 200
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 0
    listed = client.get("/api/v1/member/orders", headers=member_headers(client.application, member_id)).json["items"]
    assert [(o["status"], o["refunded_fen"], o["points_reversed"]) for o in listed] == [("refunded", 30_000, 300)]


def test_a_refund_of_spent_points_claws_back_what_is_there_and_records_the_shortfall(client, admin, member_id, db):
    order = client.post("/api/v1/staff/orders", json=_order(member_id, amount_fen=10_000), headers=admin).json
    with db.transaction() as session:
        ledger.spend(session, member_id=member_id, points=70, key="gift", reason="gift", source="test")
    refund = client.post(
        f"/api/v1/staff/orders/{order['id']}/refunds", json={"external_id": "R", "amount_fen": 10_000}, headers=admin
    ).json
    assert (refund["points_reversed"], refund["points_shortfall"]) == (30, 70)
    with db.transaction() as session:
        assert ledger.balance(session, member_id) == 0


def test_pending_order_points_are_reversed_from_the_lot(client, admin, db):
    with db.transaction() as session:
        set_rules(session, pending_days=7)
        member_id = new_member(session).id
    paid_at = utcnow().isoformat()
    order = client.post("/api/v1/staff/orders", json=_order(member_id, paid_at=paid_at), headers=admin).json
    client.post(
        f"/api/v1/staff/orders/{order['id']}/refunds", json={"external_id": "R", "amount_fen": 10_000}, headers=admin
    )
    with db.transaction() as session:
        account = session.get(LoyaltyAccount, member_id)
        assert (account.points_balance, account.points_pending) == (0, 0)


def test_an_order_raises_the_tier_at_once_and_the_multiplier_applies_next(client, admin, member_id, db):
    for body in (
        {"code": "silver", "name": "Silver", "rank": 1, "threshold_kind": "spend_fen", "threshold": 0},
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "threshold_kind": "spend_fen",
            "threshold": 50_000,
            "points_multiplier_pct": 200,
        },
    ):
        assert client.post("/api/v1/staff/tiers", json=body, headers=admin).status_code == 201
    client.post("/api/v1/staff/orders", json=_order(member_id, "A-1", 60_000), headers=admin)
    second = client.post("/api/v1/staff/orders", json=_order(member_id, "A-2", 10_000), headers=admin).json
    assert second["points_earned"] == 200
    with db.transaction() as session:
        history = session.scalars(select(TierChange).where(TierChange.member_id == member_id)).all()
        assert [(h.reason, h.to_tier_id) for h in history] == [
            ("upgrade", session.scalar(select(Tier.id).where(Tier.code == "gold")))
        ]


def test_downgrade_waits_for_the_period_end_and_the_grace(session):
    set_rules(session, tier_period_days=365, tier_grace_days=30, pending_days=0)
    admin = Actor("staff", 1, "admin")
    tiers.create_tier(session, actor=admin, code="base", name="Base", rank=0, threshold_kind="spend_fen", threshold=0)
    tiers.create_tier(
        session, actor=admin, code="vip", name="VIP", rank=5, threshold_kind="spend_fen", threshold=100_000
    )
    member = new_member(session)
    paid = utcnow()
    orders.record_order(
        session, source="shop", external_id="big", member_id=member.id, amount_fen=150_000, paid_at=paid
    )
    assert tiers.tier_for_member(session, member.id).code == "vip"
    # The order leaves the 12-month window after a year, but the tier holds through the period and the grace.
    assert tiers.evaluate_member(session, member_id=member.id, now=paid + timedelta(days=380)) is False
    assert tiers.tier_for_member(session, member.id).code == "vip"
    assert tiers.evaluate_member(session, member_id=member.id, now=paid + timedelta(days=396)) is True
    assert tiers.tier_for_member(session, member.id).code == "base"
    assert tiers.evaluate_member(session, member_id=member.id, now=paid + timedelta(days=396)) is False
    reasons = session.scalars(
        select(TierChange.reason).where(TierChange.member_id == member.id).order_by(TierChange.id)
    )
    assert list(reasons) == ["upgrade", "downgrade"]


def test_ensure_tier_at_least_keeps_the_higher_tier(session):
    admin = Actor("staff", 1, "admin")
    tiers.create_tier(session, actor=admin, code="t1", name="T1", rank=1, threshold_kind="points", threshold=10**9)
    tiers.create_tier(session, actor=admin, code="t2", name="T2", rank=2, threshold_kind="points", threshold=10**9)
    member = new_member(session)
    kw = {"member_id": member.id, "reason": "legacy", "source": "legacy"}
    assert tiers.ensure_tier_at_least(session, tier_code="t2", **kw) is True
    assert tiers.ensure_tier_at_least(session, tier_code="t1", **kw) is False
    assert tiers.ensure_tier_at_least(session, tier_code="t2", **kw) is False
    assert tiers.tier_for_member(session, member.id).code == "t2"
    assert tiers.ensure_tier_at_least(session, tier_code="no-such-tier", **kw) is False
    assert tiers.tier_for_member(session, member.id).code == "t2"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": "ten"}, "amount_fen"),
        ({"paid_at": "2026-11-30T10:00:00"}, "paid_at"),
        ({"external_id": ""}, "external_id"),
        ({"points": 5}, "points"),
        ({"items": [{"sku": "X", "quantity": 0, "price_fen": 1}]}, "items"),
        ({"member_id": None}, "member_id"),
    ],
)
def test_a_bad_order_body_is_a_422_naming_the_field(client, admin, body, field):
    response = client.post("/api/v1/staff/orders", json={**_order(1), **body}, headers=admin)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


def test_orders_need_an_admin(client, staff, member_id):
    analyst = staff.headers("analyst")
    assert client.post("/api/v1/staff/orders", json=_order(member_id), headers=analyst).status_code == 403
    assert client.post("/api/v1/staff/orders", json=_order(member_id)).status_code == 401


def test_the_tier_job_run_twice_has_one_effect(app, db):
    admin = Actor("staff", 1, "admin")
    with db.transaction() as session:
        set_rules(session, tier_period_days=30, tier_grace_days=0, pending_days=0)
        tiers.create_tier(session, actor=admin, code="top", name="Top", rank=9, threshold_kind="points", threshold=100)
        member_id = new_member(session).id
        ledger.adjust(session, member_id=member_id, points=100, key="seed", reason="seed", actor=admin)
    with app.app_context():
        jobs.evaluate_tiers()
        jobs.evaluate_tiers()
        later = utcnow() + timedelta(days=400)
        jobs.evaluate_tiers(now=later)
        jobs.evaluate_tiers(now=later)
    with db.transaction() as session:
        reasons = list(
            session.scalars(select(TierChange.reason).where(TierChange.member_id == member_id).order_by(TierChange.id))
        )
        assert reasons == ["upgrade", "downgrade"]
        assert session.get(LoyaltyAccount, member_id).tier_id is None


def test_orders_and_refunds_work_on_the_embedded_sqlite_default(sqlite_app):
    db = sqlite_app.extensions["scrm"].db
    with db.transaction() as session:
        set_rules(session, pending_days=0)
        member_id = new_member(session).id
    client, admin = sqlite_app.test_client(), StaffAuth(sqlite_app).headers("admin")
    order = client.post("/api/v1/staff/orders", json=_order(member_id, amount_fen=5_000), headers=admin)
    assert order.status_code == 201
    refund = client.post(
        f"/api/v1/staff/orders/{order.json['id']}/refunds",
        json={"external_id": "R", "amount_fen": 2_500},
        headers=admin,
    )
    assert refund.json["points_reversed"] == 25
    points = client.get("/api/v1/member/points", headers=member_headers(sqlite_app, member_id)).json
    assert (points["balance"], points["page"]["total"]) == (25, 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_fen": -1}, "amount_fen"),
        ({"external_id": None}, "external_id"),
        ({"refunded_at": "yesterday"}, "refunded_at"),
        ({"points": 1}, "points"),
    ],
)
def test_a_bad_refund_body_is_a_422_naming_the_field(client, admin, member_id, body, field):
    order = client.post("/api/v1/staff/orders", json=_order(member_id), headers=admin).json
    response = client.post(
        f"/api/v1/staff/orders/{order['id']}/refunds", json={"external_id": "R", "amount_fen": 1, **body}, headers=admin
    )
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


def test_a_refund_of_an_unknown_order_is_a_404(client, admin):
    response = client.post(
        "/api/v1/staff/orders/999999/refunds", json={"external_id": "R", "amount_fen": 1}, headers=admin
    )
    assert (response.status_code, response.json["error"]["code"]) == (404, "order_not_found")
