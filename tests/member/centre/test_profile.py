"""Profile with staff-defined custom fields, mass assignment refused (T18), consents with history, and BOLA."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from member import sections
from member.models import ConsentRecord, Member
from scrm.models import AuditEntry
from tests.member.centre.conftest import bearer, mp_login

pytestmark = pytest.mark.usefixtures("apps")


@pytest.fixture
def fields(client, staff):
    admin = staff.headers("admin")
    created = {}
    for body in (
        {"key": "shoe_size", "label": "Shoe size", "field_type": "number"},
        {"key": "skin_type", "label": "Skin", "field_type": "single_choice", "choices": ["dry", "oily"]},
        {"key": "interests", "label": "Interests", "field_type": "multi_choice", "choices": ["run", "swim", "yoga"]},
        {"key": "wedding_day", "label": "Wedding", "field_type": "date"},
        {"key": "newsletter", "label": "News", "field_type": "bool"},
        {"key": "nickname", "label": "Nickname", "field_type": "text", "required": True},
        {"key": "vip_note", "label": "VIP note", "field_type": "text", "member_editable": False},
    ):
        response = client.post("/api/v1/staff/member-fields", json=body, headers=admin)
        assert response.status_code == 201, response.get_json()
        created[body["key"]] = response.get_json()
    return created


def test_staff_define_fields_and_members_fill_them(client, wechat, fields):
    wechat.create_user("amy")
    token = mp_login(client, wechat, "amy")
    body = {
        "name": "Amy",
        "gender": "female",
        "birthday": "1990-05-01",
        "region": "Shanghai",
        "avatar_url": "https://img.example.com/a.png",
        "custom_fields": {
            "shoe_size": 37.5,
            "skin_type": "dry",
            "interests": ["run", "yoga"],
            "wedding_day": "2020-10-10",
            "newsletter": True,
            "nickname": "A",
        },
    }
    response = client.patch("/api/v1/member/me", json=body, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    me = response.get_json()
    assert (me["name"], me["birthday"], me["region"]) == ("Amy", "1990-05-01", "Shanghai")
    assert me["custom_fields"] == body["custom_fields"]
    removed = client.patch("/api/v1/member/me", json={"custom_fields": {"shoe_size": None}}, headers=bearer(token))
    assert "shoe_size" not in removed.get_json()["custom_fields"]
    assert removed.get_json()["custom_fields"]["skin_type"] == "dry"


@pytest.mark.parametrize(
    ("custom", "bad"),
    [
        ({"skin_type": "normal"}, "skin_type"),
        ({"interests": ["run", "dance"]}, "interests"),
        ({"shoe_size": "big"}, "shoe_size"),
        ({"wedding_day": "yesterday"}, "wedding_day"),
        ({"newsletter": "maybe"}, "newsletter"),
        ({"nickname": None}, "nickname"),
        ({"vip_note": "I am VIP"}, "vip_note"),
        ({"undefined_field": 1}, "undefined_field"),
    ],
)
def test_custom_fields_are_validated_against_the_definitions(client, wechat, fields, custom, bad):
    wechat.create_user("ben")
    token = mp_login(client, wechat, "ben")
    response = client.patch("/api/v1/member/me", json={"custom_fields": custom}, headers=bearer(token))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert list(error["details"]["fields"]["custom_fields"]) == [bad]
    assert f"custom_fields.{bad}" in error["message"]


def test_a_changed_definition_changes_validation_at_once(client, wechat, fields, staff):
    wechat.create_user("cat")
    token = mp_login(client, wechat, "cat")
    admin = staff.headers("admin")
    skin = fields["skin_type"]["id"]
    patch = client.patch(
        f"/api/v1/staff/member-fields/{skin}", json={"choices": ["dry", "oily", "normal"]}, headers=admin
    )
    assert patch.status_code == 200
    ok = client.patch("/api/v1/member/me", json={"custom_fields": {"skin_type": "normal"}}, headers=bearer(token))
    assert ok.status_code == 200
    assert client.delete(f"/api/v1/staff/member-fields/{skin}", headers=admin).status_code == 204
    gone = client.patch("/api/v1/member/me", json={"custom_fields": {"skin_type": "dry"}}, headers=bearer(token))
    assert gone.status_code == 422


def test_field_definitions_are_admin_only_and_audited(client, staff, session):
    body = {"key": "pet", "label": "Pet", "field_type": "text"}
    assert client.post("/api/v1/staff/member-fields", json=body, headers=staff.headers("analyst")).status_code == 403
    created = client.post("/api/v1/staff/member-fields", json=body, headers=staff.headers("admin"))
    assert created.status_code == 201
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "member_field")).all()
    assert actions == ["member_field.create"]
    duplicate = client.post("/api/v1/staff/member-fields", json=body, headers=staff.headers("admin"))
    assert duplicate.status_code == 409
    no_choices = {"key": "color", "label": "Color", "field_type": "single_choice"}
    assert (
        client.post("/api/v1/staff/member-fields", json=no_choices, headers=staff.headers("admin")).status_code == 422
    )


@pytest.mark.parametrize(
    "field",
    [
        "points",
        "tier",
        "phone",
        "role",
        "id",
        "member_id",
        "unionid",
        "openid",
        "merged_into_id",
        "erased_at",
        "source",
    ],
)
def test_t18_mass_assignment_is_refused_naming_the_field(client, wechat, session, field):
    wechat.create_user("dan")
    token = mp_login(client, wechat, "dan")
    response = client.patch("/api/v1/member/me", json={"name": "Dan", field: "x"}, headers=bearer(token))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert list(error["details"]["fields"]) == [field]
    assert field in error["message"]
    assert session.scalar(select(Member.name)) is None  # nothing of the request was applied


def test_me_includes_the_registered_sections(client, wechat):
    sections.register("test_section", me=lambda session, member_id: {"member": member_id, "points": 7})
    try:
        wechat.create_user("eve")
        token = mp_login(client, wechat, "eve")
        me = client.get("/api/v1/member/me", headers=bearer(token)).get_json()
        assert me["sections"]["test_section"] == {"member": me["id"], "points": 7}
    finally:
        sections._sections.pop("test_section", None)


def test_consents_per_purpose_with_policy_version_and_history(client, wechat, session):
    wechat.create_user("fay")
    token = mp_login(client, wechat, "fay")
    empty = client.get("/api/v1/member/consents", headers=bearer(token)).get_json()
    assert (empty["marketing_messages"], empty["profiling"], empty["policy_version"]) == (None, None, "v1")
    given = client.put(
        "/api/v1/member/consents", json={"marketing_messages": True, "profiling": False}, headers=bearer(token)
    )
    assert given.status_code == 200
    assert given.get_json()["marketing_messages"]["granted"] is True
    assert given.get_json()["marketing_messages"]["policy_version"] == "v1"
    again = client.put("/api/v1/member/consents", json={"marketing_messages": True}, headers=bearer(token))
    assert len(again.get_json()["history"]) == 2  # a repeated answer adds nothing
    withdrawn = client.put("/api/v1/member/consents", json={"marketing_messages": False}, headers=bearer(token))
    body = withdrawn.get_json()
    assert body["marketing_messages"]["granted"] is False
    assert [(h["purpose"], h["granted"]) for h in body["history"]] == [
        ("marketing_messages", True),
        ("profiling", False),
        ("marketing_messages", False),
    ]
    assert client.put("/api/v1/member/consents", json={}, headers=bearer(token)).status_code == 422
    assert client.put("/api/v1/member/consents", json={"spam": True}, headers=bearer(token)).status_code == 422
    assert len(session.scalars(select(ConsentRecord)).all()) == 3


def test_bola_a_members_token_never_reads_another_members_data(client, wechat):
    wechat.create_user("gus")
    wechat.create_user("hal")
    gus = mp_login(client, wechat, "gus")
    hal = mp_login(client, wechat, "hal")
    client.patch("/api/v1/member/me", json={"name": "Hal"}, headers=bearer(hal))
    hal_identity = client.get("/api/v1/member/identities", headers=bearer(hal)).get_json()[0]["id"]
    gus_identity = client.get("/api/v1/member/identities", headers=bearer(gus)).get_json()[0]["id"]
    assert client.get(f"/api/v1/member/identities/{gus_identity}", headers=bearer(gus)).status_code == 200
    stolen = client.get(f"/api/v1/member/identities/{hal_identity}", headers=bearer(gus))
    assert stolen.status_code == 404
    hal_id = client.get("/api/v1/member/me", headers=bearer(hal)).get_json()["id"]
    assert client.get(f"/api/v1/staff/members/{hal_id}", headers=bearer(gus)).status_code == 401
    me = client.get("/api/v1/member/me", query_string={"member_id": hal_id}, headers=bearer(gus)).get_json()
    assert me["name"] is None
    assert me["id"] != hal_id
    export = client.get("/api/v1/member/export", query_string={"member_id": hal_id}, headers=bearer(gus)).get_json()
    assert export["profile"]["id"] != hal_id
