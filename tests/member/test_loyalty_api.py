"""Loyalty API: BOLA on member routes, audited staff adjustments, rules and tiers CRUD, sections, OpenAPI."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from member import sections
from member.models import Member
from member.selectors.loyalty import with_tier_code
from member.services import ledger, tiers
from scrm.audit import Actor
from scrm.models import AuditEntry
from tests.member.loyalty_support import member_headers, new_member, set_rules


@pytest.fixture
def admin(staff):
    return staff.headers("admin")


@pytest.fixture
def two_members(client, admin, db):
    """Members A and B, each with an order, points and a coupon."""
    with db.transaction() as session:
        set_rules(session, pending_days=0)
        a, b = new_member(session).id, new_member(session).id
    template = client.post(
        "/api/v1/staff/coupon-templates",
        json={"code": "C", "name": "C", "kind": "percent", "percent_off": 10, "valid_days": 9},
        headers=admin,
    ).json
    for member_id in (a, b):
        order = {
            "source": "shop",
            "external_id": f"o-{member_id}",
            "member_id": member_id,
            "amount_fen": 1000 * member_id,
            "paid_at": "2026-11-01T00:00:00+00:00",
        }
        assert client.post("/api/v1/staff/orders", json=order, headers=admin).status_code == 201
        grant = {"member_id": member_id, "key": f"g-{member_id}", "reason": "r"}
        client.post(f"/api/v1/staff/coupon-templates/{template['id']}/grants", json=grant, headers=admin)
    return a, b


def test_a_member_reads_only_their_own_points_coupons_and_orders(client, app, two_members, db):
    a, b = two_members
    headers = member_headers(app, a)
    points = client.get("/api/v1/member/points", headers=headers).json
    coupons = client.get("/api/v1/member/coupons", headers=headers).json
    orders = client.get("/api/v1/member/orders", headers=headers).json
    with db.transaction() as session:
        assert points["balance"] == ledger.balance(session, a) == 10 * a
    assert [o["external_id"] for o in orders["items"]] == [f"o-{a}"]
    assert len(coupons["items"]) == points["page"]["total"] == orders["page"]["total"] == 1
    b_coupon = client.get("/api/v1/member/coupons", headers=member_headers(app, b)).json["items"][0]
    assert client.post(f"/api/v1/member/coupons/{b_coupon['id']}/redeem", json={}, headers=headers).status_code == 404
    # An id sent by the client is not an identity.
    forged = client.get(f"/api/v1/member/orders?member_id={b}", headers=headers)
    assert [o["external_id"] for o in forged.json["items"]] == [f"o-{a}"]


@pytest.mark.parametrize("path", ["/api/v1/member/points", "/api/v1/member/coupons", "/api/v1/member/orders"])
def test_member_routes_need_a_member_token(client, admin, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers=admin).status_code == 401


def test_staff_adjustments_over_http_are_audited_and_idempotent(client, admin, db):
    with db.transaction() as session:
        member_id = new_member(session).id
    url = f"/api/v1/staff/members/{member_id}/points/adjustments"
    body = {"points": 40, "reason": "service recovery", "key": "case-17"}
    first = client.post(url, json=body, headers=admin)
    assert (first.status_code, first.json["balance"]) == (201, 40)
    assert client.post(url, json=body, headers=admin).json["entry"]["id"] == first.json["entry"]["id"]
    over = client.post(url, json={"points": -41, "reason": "x", "key": "case-18"}, headers=admin)
    assert (over.status_code, over.json["error"]["code"]) == (409, "insufficient_points")
    assert client.post("/api/v1/staff/members/999999/points/adjustments", json=body, headers=admin).status_code == 404
    with db.transaction() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == "points.adjust")).all()
    assert [(r.target_id, r.reason) for r in rows] == [(str(member_id), "service recovery")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"points": 0}, "points"),
        ({"points": "many"}, "points"),
        ({"reason": ""}, "reason"),
        ({"key": "bad key!"}, "key"),
        ({"member_id": 2}, "member_id"),
        ({"expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_a_bad_adjustment_is_a_422_naming_the_field(client, admin, db, body, field):
    with db.transaction() as session:
        member_id = new_member(session).id
    base = {"points": 1, "reason": "r", "key": "k"}
    response = client.post(
        f"/api/v1/staff/members/{member_id}/points/adjustments", json={**base, **body}, headers=admin
    )
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


def test_adjustments_need_an_admin(client, staff, db):
    with db.transaction() as session:
        member_id = new_member(session).id
    response = client.post(
        f"/api/v1/staff/members/{member_id}/points/adjustments",
        json={"points": 1, "reason": "r", "key": "k"},
        headers=staff.headers("campaign_manager"),
    )
    assert response.status_code == 403


def test_rules_and_tiers_are_staff_crud_with_audit(client, admin, db):
    assert client.get("/api/v1/staff/loyalty/settings", headers=admin).json["points_per_yuan"] == 1
    changed = client.patch("/api/v1/staff/loyalty/settings", json={"points_per_yuan": 3}, headers=admin)
    assert changed.json["points_per_yuan"] == 3
    bad = client.patch("/api/v1/staff/loyalty/settings", json={"tier_period_days": 0}, headers=admin)
    assert "tier_period_days" in bad.json["error"]["details"]["fields"]
    tier = {"code": "gold", "name": "Gold", "rank": 3, "threshold_kind": "points", "threshold": 1000}
    created = client.post("/api/v1/staff/tiers", json=tier, headers=admin)
    assert created.status_code == 201
    assert client.post("/api/v1/staff/tiers", json=tier, headers=admin).status_code == 409
    patched = client.patch(f"/api/v1/staff/tiers/{created.json['id']}", json={"is_active": False}, headers=admin)
    assert patched.json["is_active"] is False
    assert client.patch("/api/v1/staff/tiers/99999", json={"name": "x"}, headers=admin).status_code == 404
    unknown = client.post("/api/v1/staff/tiers", json={**tier, "code": "x", "rank": 4, "colour": "red"}, headers=admin)
    assert "colour" in unknown.json["error"]["details"]["fields"]
    with db.transaction() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-3:] == ["loyalty.settings.update", "tier.create", "tier.update"]


def test_the_loyalty_section_serves_me_staff_and_export(two_members, db):
    a, _b = two_members
    with db.transaction() as session:
        me = sections.read(session, a, "me")["loyalty"]
        staff_view = sections.read(session, a, "staff")["loyalty"]
        export = sections.read(session, a, "export")["loyalty"]
    assert me == {
        "points_balance": 10 * a,
        "points_pending": 0,
        "tier_code": None,
        "tier_name": None,
        "tier_period_end": None,
        "available_coupons": 1,
        "orders": 1,
    }
    assert len(staff_view["recent_orders"]) == len(staff_view["recent_points"]) == 1
    assert export["orders"][0]["refunds"] == []
    assert len(export["coupons"]) == len(export["points_entries"]) == 1


def test_loyalty_routes_are_in_the_openapi_document_with_schemas(client):
    spec = client.get("/api/v1/openapi.json").json
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/member/points", "get"),
        ("/api/v1/member/coupons", "get"),
        ("/api/v1/member/coupons/{coupon_id}/redeem", "post"),
        ("/api/v1/member/orders", "get"),
        ("/api/v1/staff/orders", "post"),
        ("/api/v1/staff/orders/{order_id}/refunds", "post"),
        ("/api/v1/staff/tiers", "post"),
        ("/api/v1/staff/coupon-templates/{template_id}/grants", "post"),
        ("/api/v1/staff/members/{member_id}/points/adjustments", "post"),
        ("/api/v1/staff/loyalty/settings", "patch"),
    ]:
        operation = paths[path][method]
        assert operation["security"], path
        success = min(code for code in operation["responses"] if code.startswith("2"))
        assert "schema" in operation["responses"][success]["content"]["application/json"], path
        if method != "get":
            assert "requestBody" in operation, path


def test_the_tier_search_filter_narrows_a_member_query(session):
    tiers.create_tier(
        session, actor=Actor.system(), code="gold", name="Gold", rank=1, threshold_kind="points", threshold=10**6
    )
    gold, plain = new_member(session), new_member(session)
    tiers.ensure_tier_at_least(session, member_id=gold.id, tier_code="gold", reason="test", source="test")
    found = session.scalars(with_tier_code(select(Member.id).where(Member.id.in_([gold.id, plain.id])), "gold"))
    assert list(found) == [gold.id]


def test_staff_read_a_members_ledger_by_role(client, staff, admin, db):
    with db.transaction() as session:
        member_id = new_member(session).id
        ledger.earn(session, member_id=member_id, points=7, key="k", reason="r", source="test")
    url = f"/api/v1/staff/members/{member_id}/points"
    page = client.get(url, headers=staff.headers("analyst")).json
    assert (page["balance"], page["page"]["total"], page["items"][0]["delta"]) == (7, 1, 7)
    assert client.get(url, headers=staff.headers("campaign_manager")).status_code == 403
    assert client.get("/api/v1/staff/members/999999/points", headers=admin).status_code == 404
