"""Staff side: merge and unmerge round trip, tags (manual, rule-based) and lifecycle, the 360 view, search and
the audited phone reveal."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from member import sections, signals
from member.models import LoyaltyAccount, Member, MemberTag, Tag, Tier, WeChatIdentity
from member.services import tags as tag_services
from scrm.clock import utcnow
from scrm.models import AuditEntry
from tests.member.centre.conftest import OA, bearer


def make_member(session, *, name=None, phone=None, unionid=None, openids=(), **fields):
    member = Member(source="staff", name=name, phone=phone, unionid=unionid, **fields)
    session.add(member)
    session.flush()
    for appid, openid, kind in openids:
        session.add(WeChatIdentity(appid=appid, openid=openid, app_kind=kind, member_id=member.id, unionid=unionid))
    session.commit()
    return member


def snapshot(session, member_id):
    member = session.get(Member, member_id)
    session.refresh(member)
    return {
        "phone": member.phone,
        "unionid": member.unionid,
        "name": member.name,
        "region": member.region,
        "merged_into_id": member.merged_into_id,
        "identities": sorted(
            session.scalars(select(WeChatIdentity.openid).where(WeChatIdentity.member_id == member_id))
        ),
        "tags": sorted(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == member_id))),
    }


def test_merge_then_unmerge_restores_both_members(client, staff, session):
    shared, only_a, only_b = Tag(name="vip", kind="manual"), Tag(name="a", kind="manual"), Tag(name="b", kind="manual")
    session.add_all([shared, only_a, only_b])
    session.flush()
    a = make_member(session, name="Ann", openids=[("wxa", "oA1", "oa")], region="Beijing")
    b = make_member(session, phone="+8613912345678", unionid="uB", name="Bea", openids=[("wxb", "oB1", "miniprogram")])
    session.add_all(
        [
            MemberTag(member_id=a.id, tag_id=shared.id),
            MemberTag(member_id=a.id, tag_id=only_a.id),
            MemberTag(member_id=b.id, tag_id=shared.id),
            MemberTag(member_id=b.id, tag_id=only_b.id),
        ]
    )
    session.commit()
    before = {a.id: snapshot(session, a.id), b.id: snapshot(session, b.id)}
    seen = []
    merged_receiver = lambda sender, **kw: seen.append(("merged", sender, kw["source_id"]))  # noqa: E731
    unmerged_receiver = lambda sender, **kw: seen.append(("unmerged", sender, kw["source_id"]))  # noqa: E731
    signals.members_merged.connect(merged_receiver)
    signals.members_unmerged.connect(unmerged_receiver)
    try:
        admin = staff.headers("admin")
        body = {"survivor_id": a.id, "source_id": b.id, "reason": "same person"}
        assert (
            client.post("/api/v1/staff/member-merges", json=body, headers=staff.headers("analyst")).status_code == 403
        )
        merged = client.post("/api/v1/staff/member-merges", json=body, headers=admin)
        assert merged.status_code == 201, merged.get_json()
        survivor = snapshot(session, a.id)
        assert survivor["phone"] == "+8613912345678"
        assert survivor["unionid"] == "uB"
        assert survivor["identities"] == ["oA1", "oB1"]
        assert survivor["tags"] == sorted([shared.id, only_a.id, only_b.id])
        assert survivor["name"] == "Ann"  # the survivor's own values win
        assert snapshot(session, b.id)["merged_into_id"] == a.id
        again = client.post("/api/v1/staff/member-merges", json=body, headers=admin)
        assert again.status_code == 409
        merge_id = merged.get_json()["id"]
        undone = client.post(
            f"/api/v1/staff/member-merges/{merge_id}/unmerge", json={"reason": "different people"}, headers=admin
        )
        assert undone.status_code == 200, undone.get_json()
        assert undone.get_json()["unmerged_at"] is not None
    finally:
        signals.members_merged.disconnect(merged_receiver)
        signals.members_unmerged.disconnect(unmerged_receiver)
    assert {a.id: snapshot(session, a.id), b.id: snapshot(session, b.id)} == before
    assert seen == [("merged", a.id, b.id), ("unmerged", a.id, b.id)]
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("member.%unmerge%"))).all()
    assert actions == ["member.unmerge"]
    twice = client.post(
        f"/api/v1/staff/member-merges/{merge_id}/unmerge", json={"reason": "again please"}, headers=admin
    )
    assert twice.status_code == 409


def test_manual_tags_are_idempotent_role_guarded_and_audited(client, staff, session):
    member = make_member(session, name="Cal")
    manager = staff.headers("campaign_manager")
    created = client.post("/api/v1/staff/member-tags", json={"name": "vip", "kind": "manual"}, headers=manager)
    assert created.status_code == 201
    tag_id = created.get_json()["id"]
    path = f"/api/v1/staff/members/{member.id}/tags"
    assert client.post(path, json={"tag_id": tag_id}, headers=staff.headers("analyst")).status_code == 403
    assert client.post(path, json={"tag_id": tag_id}, headers=manager).get_json() == {"changed": True}
    assert client.post(path, json={"tag_id": tag_id}, headers=manager).get_json() == {"changed": False}
    assert client.delete(f"{path}/{tag_id}", headers=manager).get_json() == {"changed": True}
    actions = session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.target_type == "member", AuditEntry.target_id == str(member.id))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["member.tag", "member.untag"]
    bad_rule = {"name": "r", "kind": "rule", "rule": {"kind": "moon_phase"}}
    assert client.post("/api/v1/staff/member-tags", json=bad_rule, headers=manager).status_code == 422


def test_rule_tags_and_lifecycle_are_recomputed_and_safe_twice(session):
    now = utcnow()
    recent = make_member(session, region="Shanghai", last_order_at=now - timedelta(days=3))
    stale = make_member(session, region="Beijing", last_order_at=now - timedelta(days=90))
    custom = make_member(session, custom_fields={"skin_type": "dry"})
    follower = make_member(session, openids=[("wxoa", "oF", "oa")])
    session.execute(WeChatIdentity.__table__.update().values(subscribed=True))
    for member, created, active in (
        (recent, now - timedelta(days=100), now - timedelta(days=2)),
        (stale, now - timedelta(days=300), now - timedelta(days=60)),
        (custom, now - timedelta(days=400), now - timedelta(days=200)),
        (follower, now - timedelta(days=1), None),
    ):
        member.created_at, member.last_active_at = created, active
    rules = {
        "buyers": {"kind": "ordered_within_days", "days": 30},
        "shanghai": {"kind": "region_is", "region": "Shanghai"},
        "dry": {"kind": "custom_field_is", "key": "skin_type", "value": "dry"},
        "followers": {"kind": "followed_oa"},
    }
    for name, rule in rules.items():
        session.add(Tag(name=name, kind="rule", rule=rule))
    session.commit()

    def holders() -> dict[str, list[int]]:
        rows = session.execute(select(Tag.name, MemberTag.member_id).join(MemberTag, MemberTag.tag_id == Tag.id))
        found: dict[str, list[int]] = {}
        for name, member_id in rows:
            found.setdefault(name, []).append(member_id)
        return {name: sorted(ids) for name, ids in found.items()}

    first = tag_services.recompute_rule_tags(session)
    assert first == {"added": 4, "removed": 0}
    assert holders() == {
        "buyers": [recent.id],
        "shanghai": [recent.id],
        "dry": [custom.id],
        "followers": [follower.id],
    }
    assert tag_services.recompute_rule_tags(session) == {"added": 0, "removed": 0}
    recent.region = "Hangzhou"
    session.flush()
    assert tag_services.recompute_rule_tags(session) == {"added": 0, "removed": 1}
    thresholds = {"new_days": 14, "active_days": 30, "silent_days": 180}
    assert tag_services.recompute_lifecycle(session, **thresholds) == 4
    assert tag_services.recompute_lifecycle(session, **thresholds) == 0
    session.expire_all()
    stages = {m.id: m.lifecycle_stage for m in session.scalars(select(Member))}
    assert stages == {recent.id: "active", stale.id: "silent", custom.id: "churned", follower.id: "new"}


def test_the_periodic_job_runs_twice_with_one_effect(app, session):
    from member.jobs.centre import refresh_segments

    make_member(session, region="Shanghai")
    session.add(Tag(name="sh", kind="rule", rule={"kind": "region_is", "region": "Shanghai"}))
    session.commit()
    with app.app_context():
        assert refresh_segments() == {"added": 1, "removed": 0, "lifecycle_changed": 1}
        assert refresh_segments() == {"added": 0, "removed": 0, "lifecycle_changed": 0}


def test_360_view_masks_phone_and_openids_and_carries_sections_and_timeline(client, staff, session):
    member = make_member(
        session, name="Dee", phone="+8613812341234", unionid="uDee", openids=[(OA.appid, "oDEE123456789", "oa")]
    )
    sections.register("test_360", staff=lambda s, member_id: {"tier": "gold", "member": member_id})
    try:
        view = client.get(f"/api/v1/staff/members/{member.id}", headers=staff.headers("analyst"))
    finally:
        sections._sections.pop("test_360", None)
    assert view.status_code == 200
    body = view.get_json()
    assert body["phone"] == "138****1234"
    assert body["identities"][0]["openid"] == "oDEE****6789"
    assert body["sections"]["test_360"] == {"tier": "gold", "member": member.id}
    assert [event["kind"] for event in body["timeline"]] == ["identity.created"]
    text = view.get_data(as_text=True)
    assert "13812341234" not in text
    assert "oDEE123456789" not in text
    assert "uDee" not in text
    assert client.get("/api/v1/staff/members/999999", headers=staff.headers("analyst")).status_code == 404


def test_phone_reveal_is_admin_only_and_audited_with_its_reason(client, staff, session):
    member = make_member(session, phone="+8613812341234")
    path = f"/api/v1/staff/members/{member.id}/phone/reveal"
    assert client.post(path, json={"reason": "customer call"}, headers=staff.headers("analyst")).status_code == 403
    assert client.post(path, json={}, headers=staff.headers("admin")).status_code == 422
    revealed = client.post(path, json={"reason": "customer call"}, headers=staff.headers("admin"))
    assert revealed.get_json() == {"phone": "+8613812341234"}
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "member.phone_reveal")).one()
    assert (entry.target_id, entry.reason, entry.after) == (str(member.id), "customer call", None)
    timeline = client.get(f"/api/v1/staff/members/{member.id}", headers=staff.headers("admin")).get_json()["timeline"]
    assert timeline[0]["kind"] == "member.phone_reveal"


def test_search_by_phone_name_tag_and_stage_paginated_and_masked(client, staff, session):
    tag = Tag(name="vip", kind="manual")
    session.add(tag)
    session.flush()
    members = [make_member(session, name=f"Zed {i}", phone=f"+86139000000{i:02d}") for i in range(5)]
    session.add(MemberTag(member_id=members[1].id, tag_id=tag.id))
    members[2].lifecycle_stage = "silent"
    session.commit()
    headers = staff.headers("analyst")
    page = client.get("/api/v1/staff/members", query_string={"name": "Zed", "limit": 2}, headers=headers).get_json()
    assert page["page"] == {"limit": 2, "offset": 0, "total": 5}
    assert [row["id"] for row in page["items"]] == [members[4].id, members[3].id]
    assert page["items"][0]["phone"] == "139****0004"
    by_phone = client.get("/api/v1/staff/members", query_string={"phone": "13900000003"}, headers=headers).get_json()
    assert [row["id"] for row in by_phone["items"]] == [members[3].id]
    by_tag = client.get("/api/v1/staff/members", query_string={"tag": "vip"}, headers=headers).get_json()
    assert [row["id"] for row in by_tag["items"]] == [members[1].id]
    by_stage = client.get("/api/v1/staff/members", query_string={"stage": "silent"}, headers=headers).get_json()
    assert [row["id"] for row in by_stage["items"]] == [members[2].id]
    wildcard = client.get("/api/v1/staff/members", query_string={"name": "%"}, headers=headers).get_json()
    assert wildcard["page"]["total"] == 0
    assert client.get("/api/v1/staff/members", headers=bearer("not-a-staff-token")).status_code == 401


def test_search_by_tier_uses_the_filter_loyalty_registers(client, staff, session):
    gold_tier = Tier(code="gold", name="Gold", rank=2, threshold_kind="points", threshold=1000)
    session.add(gold_tier)
    gold = make_member(session, name="Gold")
    plain = make_member(session, name="Plain")
    session.flush()
    session.add_all(
        [LoyaltyAccount(member_id=gold.id, tier_id=gold_tier.id), LoyaltyAccount(member_id=plain.id, tier_id=None)]
    )
    session.flush()
    headers = staff.headers("analyst")
    found = client.get("/api/v1/staff/members", query_string={"tier": "gold"}, headers=headers).get_json()
    assert [row["id"] for row in found["items"]] == [gold.id]
    none = client.get("/api/v1/staff/members", query_string={"tier": "platinum"}, headers=headers).get_json()
    assert none["items"] == []
