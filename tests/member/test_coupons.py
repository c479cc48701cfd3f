"""Coupons over HTTP: templates, idempotent grants within stock, redemption by member or staff, expiry job twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from member.jobs import loyalty as jobs
from member.models import Coupon
from scrm.clock import utcnow
from scrm.models import AuditEntry
from tests.member.loyalty_support import member_headers, new_member


@pytest.fixture
def admin(staff):
    return staff.headers("admin")


@pytest.fixture
def members(db):
    with db.transaction() as session:
        return new_member(session).id, new_member(session).id


def _template(client, admin, **overrides) -> dict:
    body = {"code": "WELCOME", "name": "Welcome", "kind": "amount", "amount_off_fen": 1000, "valid_days": 30}
    body.update(overrides)
    response = client.post("/api/v1/staff/coupon-templates", json=body, headers=admin)
    assert response.status_code == 201, response.json
    return response.json


def _grant(client, admin, template_id: int, member_id: int, key: str):
    return client.post(
        f"/api/v1/staff/coupon-templates/{template_id}/grants",
        json={"member_id": member_id, "key": key, "reason": "welcome"},
        headers=admin,
    )


def test_grants_are_idempotent_and_stop_at_the_stock(client, admin, members):
    a, b = members
    template = _template(client, admin, total_stock=1)
    first = _grant(client, admin, template["id"], a, "welcome-a")
    assert first.status_code == 201
    assert _grant(client, admin, template["id"], a, "welcome-a").json["id"] == first.json["id"]
    assert _grant(client, admin, template["id"], a, "welcome-a").status_code == 200
    assert _grant(client, admin, template["id"], b, "welcome-a").status_code == 409
    out = _grant(client, admin, template["id"], b, "welcome-b")
    assert (out.status_code, out.json["error"]["code"]) == (409, "coupon_out_of_stock")
    listed = client.get("/api/v1/staff/coupon-templates", headers=admin).json["items"]
    assert listed[0]["granted_count"] == 1


def test_a_member_redeems_their_coupon_once_and_never_another_members(client, admin, members):
    a, b = members
    template = _template(client, admin, min_spend_fen=5000)
    coupon = _grant(client, admin, template["id"], a, "k").json
    url = f"/api/v1/member/coupons/{coupon['id']}/redeem"
    assert client.post(url, json={}, headers=member_headers(client.application, b)).status_code == 404
    short = client.post(url, json={"order_amount_fen": 4999}, headers=member_headers(client.application, a))
    assert (short.status_code, short.json["error"]["code"]) == (422, "coupon_minimum_spend")
    ok = client.post(url, json={"order_amount_fen": 5000}, headers=member_headers(client.application, a))
    assert (ok.status_code, ok.json["state"]) == (200, "redeemed")
    assert client.post(url, json={}, headers=member_headers(client.application, a)).status_code == 409


def test_staff_redemption_is_audited(client, admin, members, db):
    template = _template(client, admin)
    coupon = _grant(client, admin, template["id"], members[0], "k").json
    response = client.post(f"/api/v1/staff/coupons/{coupon['id']}/redeem", json={}, headers=admin)
    assert response.status_code == 200
    with db.transaction() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"coupon_template.create", "coupon.grant", "coupon.redeem"} <= actions


def test_the_coupon_expiry_job_run_twice_has_one_effect(app, client, admin, members, db):
    template = _template(client, admin, valid_days=1)
    coupon = _grant(client, admin, template["id"], members[0], "k").json
    later = utcnow() + timedelta(days=2)
    with app.app_context():
        assert jobs.expire_coupons(now=later) == {"expired_coupons": 1}
        assert jobs.expire_coupons(now=later) == {"expired_coupons": 0}
    with db.transaction() as session:
        assert session.get(Coupon, coupon["id"]).state == "expired"
    listed = client.get("/api/v1/member/coupons?state=expired", headers=member_headers(app, members[0])).json
    assert [c["id"] for c in listed["items"]] == [coupon["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "amount", "amount_off_fen": None}, "amount_off_fen"),
        ({"kind": "percent", "amount_off_fen": None}, "percent_off"),
        ({"kind": "percent", "amount_off_fen": None, "percent_off": 101}, "percent_off"),
        ({"valid_days": None}, "valid_until"),
        ({"total_stock": -1}, "total_stock"),
        ({"code": "has space"}, "code"),
        ({"granted_count": 5}, "granted_count"),
    ],
)
def test_a_bad_template_is_a_422_naming_the_field(client, admin, body, field):
    base = {"code": "X1", "name": "X", "kind": "amount", "amount_off_fen": 100, "valid_days": 3}
    response = client.post("/api/v1/staff/coupon-templates", json={**base, **body}, headers=admin)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"member_id": 0}, "member_id"),
        ({"key": ""}, "key"),
        ({"reason": None}, "reason"),
        ({"state": "redeemed"}, "state"),
    ],
)
def test_a_bad_grant_is_a_422_naming_the_field(client, admin, members, body, field):
    template = _template(client, admin)
    grant = {"member_id": members[0], "key": "k", "reason": "r", **body}
    response = client.post(f"/api/v1/staff/coupon-templates/{template['id']}/grants", json=grant, headers=admin)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


def test_a_bad_redemption_body_is_a_422_naming_the_field(client, admin, members):
    template = _template(client, admin)
    coupon = _grant(client, admin, template["id"], members[0], "k").json
    headers = member_headers(client.application, members[0])
    for body, field in (({"order_amount_fen": -5}, "order_amount_fen"), ({"member_id": 9}, "member_id")):
        response = client.post(f"/api/v1/member/coupons/{coupon['id']}/redeem", json=body, headers=headers)
        assert response.status_code == 422
        assert field in response.json["error"]["details"]["fields"]
