"""The staff 360 view reads a member in a handful of round trips, and its folded (PostgreSQL) lists say exactly
what the one-query-per-list readers say; the embedded SQLite default still serves it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from member import selectors
from member.models import (
    ConsentRecord,
    Coupon,
    CouponTemplate,
    LoyaltyAccount,
    Member,
    MemberMerge,
    MemberTag,
    Order,
    PointsEntry,
    Tag,
    Tier,
    TierChange,
    WeChatIdentity,
)
from member.selectors import loyalty
from scrm.clock import utcnow
from scrm.models import AuditEntry
from tests.conftest import StaffAuth


def rich_member(session: Any) -> int:
    """A member with something in every list the 360 view shows, written out of order where order matters."""
    now = utcnow().replace(microsecond=123400)
    silver, gold = (
        Tier(code="s", name="Silver", rank=1, threshold_kind="points", threshold=0),
        Tier(code="g", name="Gold", rank=2, threshold_kind="points", threshold=100),
    )
    template = CouponTemplate(code="T10", name="Ten off", kind="amount", amount_off_fen=1000, valid_days=30)
    other = Member(source="staff", name="Other")
    member = Member(source="staff", name="Rich", phone="+8613800001111", phone_verified_at=now - timedelta(days=3))
    session.add_all(
        [silver, gold, template, other, member, Tag(name="zeta", kind="manual"), Tag(name="alpha", kind="manual")]
    )
    session.flush()
    tags = {tag.name: tag for tag in session.query(Tag)}
    session.add_all(
        [
            WeChatIdentity(appid="wxOA", openid="oRICH000000001", app_kind="oa", member_id=member.id),
            WeChatIdentity(
                appid="wxMP", openid="oRICH000000002", app_kind="miniprogram", member_id=member.id, subscribed=True
            ),
            ConsentRecord(
                member_id=member.id, purpose="profiling", granted=True, policy_version="1", at=now - timedelta(days=2)
            ),
            ConsentRecord(member_id=member.id, purpose="profiling", granted=False, policy_version="2", at=now),
            MemberTag(member_id=member.id, tag_id=tags["zeta"].id),
            MemberTag(member_id=member.id, tag_id=tags["alpha"].id),
            MemberMerge(survivor_id=member.id, source_id=other.id, moved={}, merged_at=now - timedelta(hours=1)),
            LoyaltyAccount(member_id=member.id, points_balance=70, points_pending=5, tier_id=gold.id),
            TierChange(member_id=member.id, from_tier_id=None, to_tier_id=silver.id, reason="join", source="t"),
            TierChange(member_id=member.id, from_tier_id=silver.id, to_tier_id=gold.id, reason="up", source="t"),
        ]
    )
    for n in range(25):
        session.add(
            PointsEntry(
                member_id=member.id, kind="earn", delta=n + 1, state="available", reason="r", source="t", key=f"k{n}"
            )
        )
        session.add(
            AuditEntry(actor_type="staff", action=f"member.a{n}", target_type="member", target_id=str(member.id))
        )
    for n in range(3):
        session.add(
            Coupon(
                template_id=template.id,
                member_id=member.id,
                key=f"c{n}",
                reason="r",
                source="t",
                expires_at=now + timedelta(days=n),
            )
        )
        # Paid out of id order: the view lists orders by payment time.
        session.add(
            Order(
                source="pos",
                external_id=f"o{n}",
                member_id=member.id,
                amount_fen=100 * (n + 1),
                paid_at=now - timedelta(days=(n * 2) % 3),
            )
        )
    session.commit()
    return member.id


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_the_360_view_takes_at_most_five_queries_and_matches_the_per_list_readers(app, client, staff, session):
    member_id = rich_member(session)
    headers = staff.headers("analyst")
    engine = app.extensions["scrm"].db.engine
    with counted(engine) as statements:
        response = client.get(f"/api/v1/staff/members/{member_id}", headers=headers)
    assert response.status_code == 200
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(selects) <= 5, selects

    body = response.get_json()
    expected = selectors.jsonable(
        {
            "identities": [
                selectors.identity_view(i, masked=True) for i in selectors.list_identities(session, member_id)
            ],
            "tags": selectors.member_tags(session, member_id),
            "recent_points": [
                loyalty.entry_view(e) for e in session.scalars(loyalty.points_query(member_id).limit(20))
            ],
            "recent_coupons": loyalty.recent_coupons(session, member_id),
            "recent_orders": [
                loyalty.order_view(o) for o in session.scalars(loyalty.orders_query(member_id).limit(20))
            ],
            "tier_history": loyalty.tier_history(session, member_id),
        }
    )
    assert body["identities"] == expected["identities"]
    assert [t["name"] for t in body["tags"]] == ["alpha", "zeta"]
    assert body["tags"] == expected["tags"]
    assert body["consents"]["profiling"]["granted"] is False
    assert body["merges"][0]["survivor_id"] == member_id
    staff_loyalty = body["sections"]["loyalty"]
    assert staff_loyalty["points_balance"] == 70
    assert staff_loyalty["tier_code"] == "g"
    assert staff_loyalty["available_coupons"] == 3
    assert staff_loyalty["orders"] == 3
    for key in ("recent_points", "recent_coupons", "recent_orders", "tier_history"):
        assert staff_loyalty[key] == expected[key], key
    assert len(staff_loyalty["recent_points"]) == 20
    assert staff_loyalty["recent_points"][0]["delta"] == 25
    assert [t["to_tier"] for t in staff_loyalty["tier_history"]] == ["g", "s"]
    kinds = [event["kind"] for event in body["timeline"]]
    assert "phone.verified" in kinds
    assert "consent" in kinds
    assert "member.a24" in kinds
    assert body["timeline"] == selectors.jsonable(selectors.timeline(session, member_id, limit=100))


def test_the_360_view_works_on_the_embedded_sqlite_default(sqlite_app):
    db = sqlite_app.extensions["scrm"].db
    with db.transaction() as session:
        member_id = rich_member(session)
    client, headers = sqlite_app.test_client(), StaffAuth(sqlite_app).headers("analyst")
    body = client.get(f"/api/v1/staff/members/{member_id}", headers=headers).get_json()
    assert [t["name"] for t in body["tags"]] == ["alpha", "zeta"]
    assert len(body["identities"]) == 2
    assert len(body["sections"]["loyalty"]["recent_points"]) == 20
    assert [t["to_tier"] for t in body["sections"]["loyalty"]["tier_history"]] == ["g", "s"]
