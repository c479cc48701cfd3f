"""Staff auth: tokens, roles on every route, an audit row per write; member tokens are signed and expire."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from scrm.auth import MemberTokens
from scrm.errors import Unauthorized
from scrm.models import AuditEntry, StaffSession


def audit_count(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry))


def test_login_issues_a_token_stored_only_as_a_digest(client, staff, session):
    staff.headers("analyst")
    response = client.post("/api/v1/staff/session", json={"username": "analyst-1", "password": "correct horse battery"})
    assert response.status_code == 201
    token = response.get_json()["token"]
    assert "password_hash" not in response.get_data(as_text=True)
    digests = session.scalars(select(StaffSession.token_digest)).all()
    assert token not in digests
    me = client.get("/api/v1/staff/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["username"] == "analyst-1"


def test_wrong_password_and_unknown_user_look_the_same(client, staff):
    staff.headers("analyst")
    wrong = client.post("/api/v1/staff/session", json={"username": "analyst-1", "password": "nope nope nope"})
    unknown = client.post("/api/v1/staff/session", json={"username": "ghost", "password": "nope nope nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()


def test_login_is_rate_limited(client, app):
    from scrm.ratelimit import RateLimiter

    app.extensions["scrm"].config = app.extensions["scrm"].config.replace(staff_login_rate_per_min=3)
    # Mid-window, so the five attempts cannot straddle a minute boundary of the fixed window.
    app.extensions["scrm"].services["rate_limiter"] = RateLimiter(None, clock=lambda: 1_800_000_030.0)
    statuses = [
        client.post("/api/v1/staff/session", json={"username": "brute", "password": "guess guess"}).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/staff/users", None),
        ("post", "/api/v1/staff/users", {"username": "x" * 5, "password": "y" * 12, "role": "analyst"}),
        ("patch", "/api/v1/staff/users/1", {"role": "analyst"}),
        ("get", "/api/v1/staff/audit", None),
        ("get", "/api/v1/staff/me", None),
        ("delete", "/api/v1/staff/session", None),
    ],
)
def test_staff_route_without_token_is_401(client, method, path, body):
    response = getattr(client, method)(path, json=body)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_required"


def test_forged_or_revoked_token_is_401(client, staff):
    assert client.get("/api/v1/staff/me", headers={"Authorization": "Bearer forged"}).status_code == 401
    headers = staff.headers("analyst")
    assert client.delete("/api/v1/staff/session", headers=headers).status_code == 204
    assert client.get("/api/v1/staff/me", headers=headers).status_code == 401


@pytest.mark.parametrize("role", ["campaign_manager", "kol_manager", "analyst", "auditor"])
def test_admin_routes_refuse_other_roles_with_403(client, staff, role):
    headers = staff.headers(role)
    assert client.get("/api/v1/staff/users", headers=headers).status_code == 403
    created = client.post(
        "/api/v1/staff/users", headers=headers, json={"username": "mallory", "password": "y" * 12, "role": "admin"}
    )
    assert created.status_code == 403


def test_auditor_reads_the_audit_log_but_analyst_cannot(client, staff):
    assert client.get("/api/v1/staff/audit", headers=staff.headers("auditor")).status_code == 200
    assert client.get("/api/v1/staff/audit", headers=staff.headers("analyst")).status_code == 403


def test_every_staff_write_leaves_one_audit_row(client, staff, session):
    headers = staff.headers("admin")
    before = audit_count(session)
    created = client.post(
        "/api/v1/staff/users", headers=headers, json={"username": "carol", "password": "y" * 12, "role": "analyst"}
    )
    assert created.status_code == 201
    user_id = created.get_json()["id"]
    assert audit_count(session) == before + 1
    client.patch(f"/api/v1/staff/users/{user_id}", headers=headers, json={"role": "kol_manager"})
    assert audit_count(session) == before + 2
    entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.action, entry.before["role"], entry.after["role"]) == ("staff_user.update", "analyst", "kol_manager")
    assert entry.actor_type == "staff"
    # A refused write leaves nothing.
    client.post(
        "/api/v1/staff/users", headers=headers, json={"username": "carol", "password": "y" * 12, "role": "analyst"}
    )
    assert audit_count(session) == before + 2


def test_deactivating_a_user_revokes_their_tokens(client, staff):
    admin = staff.headers("admin")
    victim = staff.headers("analyst")
    me = client.get("/api/v1/staff/me", headers=victim).get_json()
    client.patch(f"/api/v1/staff/users/{me['id']}", headers=admin, json={"is_active": False})
    assert client.get("/api/v1/staff/me", headers=victim).status_code == 401


def test_member_tokens_round_trip_and_reject_forgery_and_expiry():
    tokens = MemberTokens("k" * 40, ttl_s=60)
    token = tokens.issue(42, appid="wxapp")
    claims = tokens.verify(token)
    assert (claims.member_id, claims.appid) == (42, "wxapp")
    with pytest.raises(Unauthorized):
        MemberTokens("other-key" * 5, ttl_s=60).verify(token)
    with pytest.raises(Unauthorized):
        tokens.verify(token[:-2] + "xx")
    expired = MemberTokens("k" * 40, ttl_s=-1)
    with pytest.raises(Unauthorized, match="expired"):
        expired.verify(tokens.issue(1, appid=None))
    assert time.time() > 0
