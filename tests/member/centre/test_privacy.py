"""Export and erasure (PIPL), the SMS sender run twice, the embedded SQLite mode, and the OpenAPI document."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from member import sections
from member.jobs.centre import send_sms_code
from member.models import Member, MessageConsent, PhoneCode, WeChatIdentity
from member.services.merge import merge_members
from member.services.privacy import erase_member
from scrm.audit import Actor
from scrm.clock import utcnow
from tests.member.centre.conftest import MP, bearer, mp_login

pytestmark = pytest.mark.usefixtures("apps")


def test_export_holds_everything_including_export_sections(client, wechat):
    sections.register("test_export", export=lambda s, member_id: {"orders": [{"member": member_id}]})
    try:
        wechat.create_user("amy", phone="13912345678")
        token = mp_login(client, wechat, "amy")
        client.post("/api/v1/member/phone", json={"code": wechat.phone_code("amy", MP.appid)}, headers=bearer(token))
        client.patch("/api/v1/member/me", json={"name": "Amy"}, headers=bearer(token))
        client.put("/api/v1/member/consents", json={"profiling": True}, headers=bearer(token))
        export = client.get("/api/v1/member/export", headers=bearer(token)).get_json()
    finally:
        sections._sections.pop("test_export", None)
    assert export["profile"]["phone"] == "+8613912345678"
    assert export["profile"]["name"] == "Amy"
    assert export["identities"][0]["openid"] == wechat.openid("amy", MP.appid)
    assert export["unionid"] == wechat.user("amy")["unionid"]
    assert [c["purpose"] for c in export["consents"]] == ["profiling"]
    assert export["sections"]["test_export"] == {"orders": [{"member": export["profile"]["id"]}]}


def test_erasure_pseudonymises_merged_rows_and_scrubs_consents_and_codes(session):
    survivor = Member(source="miniprogram", name="Bea", phone="+8613912345678", unionid="uBea")
    old = Member(source="legacy", name="Beatrice", region="Suzhou")
    session.add_all([survivor, old])
    session.flush()
    session.add_all(
        [
            WeChatIdentity(appid="wxa", openid="oBEA-mp", app_kind="miniprogram", member_id=survivor.id),
            WeChatIdentity(appid="wxb", openid="oBEA-oa", app_kind="oa", member_id=old.id),
            MessageConsent(member_id=old.id, appid="wxb", openid="oBEA-oa", template_id="t", status="accept"),
            PhoneCode(member_id=survivor.id, phone_digest="d", ip_digest="i", code_digest="c", expires_at=utcnow()),
            WeChatIdentity(appid="wxc", openid="oBEA-other", app_kind="oa", member_id=survivor.id),
        ]
    )
    session.flush()
    merge_members(session, survivor_id=survivor.id, source_id=old.id, actor=Actor.system(), reason="test")
    erase_member(session, survivor, actor=Actor("member", survivor.id))
    erase_member(session, survivor, actor=Actor("member", survivor.id))  # twice: nothing more to do, no error
    session.commit()
    for member in (survivor, old):
        session.refresh(member)
        assert (member.name, member.phone, member.unionid, member.region) == (None, None, None, None)
        assert member.erased_at is not None
    openids = set(session.scalars(select(WeChatIdentity.openid)))
    assert all(openid.startswith("erased-") for openid in openids)
    assert len(openids) == 3
    assert session.scalar(select(MessageConsent.openid)).startswith("erased-")
    assert session.scalars(select(PhoneCode)).all() == []


def test_an_erased_member_cannot_write_and_logging_in_again_starts_afresh(client, wechat):
    wechat.create_user("cat")
    token = mp_login(client, wechat, "cat")
    first_id = client.get("/api/v1/member/me", headers=bearer(token)).get_json()["id"]
    assert client.delete("/api/v1/member/me", headers=bearer(token)).status_code == 204
    assert client.delete("/api/v1/member/me", headers=bearer(token)).status_code == 204
    refused = client.patch("/api/v1/member/me", json={"name": "Cat"}, headers=bearer(token))
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "member_erased"
    assert client.get("/api/v1/member/me", headers=bearer(token)).get_json()["erased"] is True
    again = mp_login(client, wechat, "cat")
    assert client.get("/api/v1/member/me", headers=bearer(again)).get_json()["id"] != first_id


def test_the_sms_sender_run_twice_sends_once(app, client, wechat, session):
    wechat.create_user("dan")
    token = mp_login(client, wechat, "dan")
    assert (
        client.post("/api/v1/member/phone/sms", json={"phone": "13912345678"}, headers=bearer(token)).status_code == 202
    )
    row = session.scalars(select(PhoneCode)).one()
    with app.app_context():
        send_sms_code(session, {"phone_code_id": row.id})
        send_sms_code(session, {"phone_code_id": row.id})
    assert len(wechat.sms("+8613912345678")) == 1


def test_the_embedded_default_sqlite_without_redis(sqlite_app, wechat):
    """SMS codes and their limits need only the database."""
    from scrm.secretbox import SecretBox
    from scrm.wechat_apps import register_app
    from tests.conftest import TEST_SECRET_KEY

    scrm = sqlite_app.extensions["scrm"]
    scrm.config = scrm.config.replace(
        wechat_api_base=wechat.base_url, wechat_open_base=wechat.base_url, sms_backend="sandbox"
    )
    scrm.services.pop("gateway", None)
    with scrm.db.transaction() as session:
        register_app(
            session,
            SecretBox(TEST_SECRET_KEY),
            appid=MP.appid,
            kind="miniprogram",
            secret=MP.secret,
            actor=Actor.system(),
        )
    client = sqlite_app.test_client()
    wechat.create_user("eve")
    token = mp_login(client, wechat, "eve")
    assert (
        client.post("/api/v1/member/phone/sms", json={"phone": "13912345678"}, headers=bearer(token)).status_code == 202
    )
    assert (
        client.post("/api/v1/member/phone/sms", json={"phone": "13912345678"}, headers=bearer(token)).status_code == 429
    )
    code = re.search(r"\b(\d{6})\b", wechat.sms("+8613912345678")[-1]["text"]).group(1)
    verified = client.post(
        "/api/v1/member/phone/sms/verify", json={"phone": "13912345678", "code": code}, headers=bearer(token)
    )
    assert verified.status_code == 200, verified.get_json()
    assert client.get("/api/v1/member/me", headers=bearer(token)).get_json()["phone"] == "139****5678"


def test_every_member_route_is_in_the_openapi_document_with_schemas(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    expected = {
        ("/api/v1/member/session/miniprogram", "post"),
        ("/api/v1/member/session/oauth/start", "get"),
        ("/api/v1/member/session/oauth/callback", "get"),
        ("/api/v1/member/me", "get"),
        ("/api/v1/member/me", "patch"),
        ("/api/v1/member/me", "delete"),
        ("/api/v1/member/identities", "get"),
        ("/api/v1/member/identities/{identity_id}", "get"),
        ("/api/v1/member/phone", "post"),
        ("/api/v1/member/phone/sms", "post"),
        ("/api/v1/member/phone/sms/verify", "post"),
        ("/api/v1/member/consents", "get"),
        ("/api/v1/member/consents", "put"),
        ("/api/v1/member/export", "get"),
        ("/api/v1/staff/members", "get"),
        ("/api/v1/staff/members/{member_id}", "get"),
        ("/api/v1/staff/members/{member_id}/phone/reveal", "post"),
        ("/api/v1/staff/members/{member_id}/tags", "post"),
        ("/api/v1/staff/members/{member_id}/tags/{tag_id}", "delete"),
        ("/api/v1/staff/member-tags", "get"),
        ("/api/v1/staff/member-tags", "post"),
        ("/api/v1/staff/member-fields", "get"),
        ("/api/v1/staff/member-fields", "post"),
        ("/api/v1/staff/member-fields/{definition_id}", "patch"),
        ("/api/v1/staff/member-fields/{definition_id}", "delete"),
        ("/api/v1/staff/member-merges", "post"),
        ("/api/v1/staff/member-merges/{merge_id}/unmerge", "post"),
    }
    present = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert expected <= present
    for path, method in expected:
        operation = spec["paths"][path][method]
        if method in {"post", "put", "patch"}:
            assert "requestBody" in operation, (path, method)
        answers = [code for code in operation["responses"] if code[0] in "23"]
        assert answers, (path, method)
        for code in answers:
            if code not in {"204", "302"}:
                assert "content" in operation["responses"][code], (path, method, code)
    assert spec["paths"]["/api/v1/member/me"]["get"]["security"] == [{"memberToken": []}]
