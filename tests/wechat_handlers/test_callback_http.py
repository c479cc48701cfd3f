"""The callback endpoint over HTTP: verification, every type stored once and processed, replies, refusals."""

from __future__ import annotations

import itertools
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from member import signals as member_signals
from member.models import Member, MessageConsent, MessageDelivery, WeChatIdentity
from scrm.audit import Actor
from scrm.models import OutboxMessage
from scrm.secretbox import SecretBox
from scrm.wechat_apps import register_app
from tests.conftest import TEST_SECRET_KEY
from tests.wechat_handlers.conftest import (
    APPID,
    ENCODING_AES_KEY,
    FIXTURE_NAMES,
    FIXTURES_DIR,
    ORIGINAL_ID,
    TOKEN,
    CallbackRequest,
    CallbackSender,
)
from wechat_handlers.crypto import MessageCrypto
from wechat_handlers.models import INBOX_DONE, AutoReplyRule, InboxMessage
from wechat_handlers.parsing import parse_callback_xml

URL = f"/wechat/{APPID}/callback"
OPENID = "oTESTuser0000000000000000001"


def fixture_xml(name: str, **replace: str) -> str:
    xml = (FIXTURES_DIR / f"{name}.xml").read_text(encoding="utf-8")
    for old, new in replace.items():
        xml = xml.replace(old, new)
    return xml


@pytest.fixture
def oa(session):
    """The official account registered in safe mode."""
    register_app(
        session,
        SecretBox(TEST_SECRET_KEY),
        appid=APPID,
        kind="oa",
        secret="s" * 32,
        token=TOKEN,
        aes_key=ENCODING_AES_KEY,
        mode="safe",
        original_id=ORIGINAL_ID,
        actor=Actor.system(),
    )
    session.commit()
    return APPID


class FreshNonceSender(CallbackSender):
    """Like WeChat, a new nonce for every request unless the test pins one."""

    _counter = itertools.count(1000)

    def plain(self, xml, *, timestamp=None, nonce=None):
        return super().plain(xml, timestamp=timestamp, nonce=nonce or str(next(self._counter)))

    def encrypted(self, xml, *, timestamp=None, nonce=None, **kwargs):
        return super().encrypted(xml, timestamp=timestamp, nonce=nonce or str(next(self._counter)), **kwargs)


@pytest.fixture
def wechat() -> CallbackSender:
    return FreshNonceSender(now=int(time.time()))


def post(client, request: CallbackRequest, url: str = URL):
    return client.post(f"{url}?{urlencode(request.query)}", data=request.raw_body, content_type=request.content_type)


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_url_verification_echoes_echostr(client, oa, wechat):
    query = wechat.plain(b"").query | {"echostr": "4375120948345356249"}
    response = client.get(f"{URL}?{urlencode(query)}")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "4375120948345356249")
    bad = client.get(f"{URL}?{urlencode(query | {'signature': '0' * 40})}")
    assert bad.status_code == 401
    assert bad.get_json()["error"]["code"] == "bad_signature"


def test_unknown_appid_is_404(client, oa, wechat):
    response = post(client, wechat.encrypted(fixture_xml("msg_text")), url="/wechat/wxUNKNOWN0000000/callback")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_app"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_is_stored_and_processed(client, session, oa, wechat, name):
    response = post(client, wechat.encrypted(fixture_xml(name)))
    assert response.status_code == 200, response.get_data(as_text=True)
    row = session.scalars(select(InboxMessage)).one()
    # Jobs run in-process after commit, so the handler has run by the time the reply is back.
    assert row.status == INBOX_DONE
    assert row.handler not in (None, "stored-unknown")
    assert count(session, OutboxMessage) == 1


def test_a_retried_delivery_is_acknowledged_and_does_nothing(client, session, oa, wechat):
    request = wechat.encrypted(fixture_xml("msg_text"))
    assert post(client, request).get_data(as_text=True) == "success"
    # WeChat's retry carries a new nonce and signature but the same message.
    retry = CallbackSender(now=wechat.now + 5).encrypted(fixture_xml("msg_text"), nonce="999")
    assert post(client, retry).get_data(as_text=True) == "success"
    assert count(session, InboxMessage) == 1
    assert count(session, OutboxMessage) == 1


def test_subscribe_by_qr_then_scan_then_unsubscribe_updates_the_identity(client, session, oa, wechat):
    post(client, wechat.encrypted(fixture_xml("event_subscribe__qrscene")))
    identity = session.scalars(select(WeChatIdentity)).one()
    scene = parse_callback_xml(fixture_xml("event_subscribe__qrscene"))["EventKey"].removeprefix("qrscene_")
    assert (identity.subscribed, identity.qr_scene_str, identity.subscribe_scene) == (True, scene, "ADD_SCENE_QR_CODE")
    post(client, wechat.encrypted(fixture_xml("event_scan")))
    post(client, wechat.encrypted(fixture_xml("event_unsubscribe")))
    session.expire_all()
    identity = session.scalars(select(WeChatIdentity)).one()
    assert identity.subscribed is False
    assert identity.qr_scene_str == scene
    assert count(session, Member) == 1


def test_consent_and_delivery_events_update_their_state(client, session, oa, wechat):
    post(client, wechat.encrypted(fixture_xml("event_subscribe_msg_popup__many")))
    consents = {c.template_id: (c.status, c.remaining_sends) for c in session.scalars(select(MessageConsent))}
    assert sorted(consents.values()) == [("accept", 1), ("reject", 0)]
    post(client, wechat.encrypted(fixture_xml("event_subscribe_msg_change")))
    session.expire_all()
    assert {c.status for c in session.scalars(select(MessageConsent))} == {"reject"}
    post(client, wechat.encrypted(fixture_xml("event_templatesendjobfinish")))
    delivery = session.scalars(select(MessageDelivery)).one()
    assert (delivery.kind, delivery.msg_id, delivery.status) == ("template", "200163836", "success")


def _decrypt_reply(body: str) -> str:
    fields = parse_callback_xml(body)
    crypto = MessageCrypto(token=TOKEN, encoding_aes_key=ENCODING_AES_KEY, appid=APPID)
    return crypto.decrypt(
        fields["Encrypt"], msg_signature=fields["MsgSignature"], timestamp=fields["TimeStamp"], nonce=fields["Nonce"]
    ).decode()


def test_passive_replies_follow_the_rules_and_are_encrypted(client, session, oa, wechat):
    rules = [
        AutoReplyRule(
            appid=None,
            trigger="keyword_exact",
            pattern="hello",
            reply_type="text",
            reply={"content": "hi ]]><Evil/> there"},
            priority=1,
        ),
        AutoReplyRule(appid=APPID, trigger="default", reply_type="text", reply={"content": "we read everything"}),
        AutoReplyRule(appid=APPID, trigger="follow", reply_type="text", reply={"content": "welcome"}),
        AutoReplyRule(
            appid=APPID, trigger="click", pattern="V1001_TODAY_MUSIC", reply_type="text", reply={"content": "menu!"}
        ),
    ]
    session.add_all(rules)
    session.commit()

    text = fixture_xml("msg_text").replace(parse_callback_xml(fixture_xml("msg_text"))["Content"], "Hello")
    reply = _decrypt_reply(post(client, wechat.encrypted(text)).get_data(as_text=True))
    assert parse_callback_xml(reply)["Content"] == "hi ]]><Evil/> there"
    assert parse_callback_xml(reply)["ToUserName"] == OPENID

    other = fixture_xml("msg_voice")
    assert post(client, wechat.encrypted(other)).get_data(as_text=True) == "success"
    follow = _decrypt_reply(post(client, wechat.encrypted(fixture_xml("event_subscribe"))).get_data(as_text=True))
    assert parse_callback_xml(follow)["Content"] == "welcome"
    click_xml = fixture_xml("event_click")
    key = parse_callback_xml(click_xml)["EventKey"]
    click_xml = click_xml.replace(key, "V1001_TODAY_MUSIC")
    click = _decrypt_reply(post(client, wechat.encrypted(click_xml)).get_data(as_text=True))
    assert parse_callback_xml(click)["Content"] == "menu!"


# --- T01: invalid variants get a 4xx and write nothing ---


def _variants(wechat: CallbackSender) -> dict[str, CallbackRequest]:
    xml = fixture_xml("msg_text")
    good = wechat.encrypted(xml)
    other_app = MessageCrypto(token=TOKEN, encoding_aes_key=ENCODING_AES_KEY, appid="wxOTHERAPP0000000")
    foreign = other_app.encrypt(xml)
    from wechat_handlers.security import sha1_signature

    foreign_body = (
        f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><Encrypt><![CDATA[{foreign}]]></Encrypt></xml>"
    )
    foreign_sig = sha1_signature(TOKEN, good.query["timestamp"], good.query["nonce"], foreign)
    return {
        "wrong token": FreshNonceSender(token="wrongToken123", now=wechat.now).encrypted(xml),
        "tampered timestamp": good.with_query(timestamp=str(wechat.now + 1)),
        "tampered nonce": good.with_query(nonce="123"),
        "tampered msg_signature": good.with_query(msg_signature="0" * 40),
        "tampered Encrypt": CallbackRequest(
            good.raw_body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[AAAA"), good.query
        ),
        "wrong appid inside": CallbackRequest(foreign_body.encode(), good.query | {"msg_signature": foreign_sig}),
        "missing signature": good.with_query(signature=None),
        "missing timestamp": good.with_query(timestamp=None),
        "missing nonce": good.with_query(nonce=None),
        "missing msg_signature": good.with_query(msg_signature=None),
        "encrypt_type=raw downgrade": good.with_query(encrypt_type="raw", msg_signature=None),
        "plaintext body to a safe app": wechat.plain(xml),
        "stale timestamp": FreshNonceSender(now=wechat.now - 3600).encrypted(xml),
        "future timestamp": FreshNonceSender(now=wechat.now + 3600).encrypted(xml),
        "not xml content type": CallbackRequest(good.raw_body, good.query, "application/json"),
    }


def test_t01_invalid_variants_are_4xx_and_write_nothing(client, session, oa, wechat):
    for name, request in _variants(wechat).items():
        response = post(client, request)
        assert 400 <= response.status_code < 500, name
        assert response.get_json()["error"]["code"], name
    assert count(session, InboxMessage) == 0
    assert count(session, OutboxMessage) == 0
    assert count(session, WeChatIdentity) == 0
    assert post(client, wechat.encrypted(fixture_xml("msg_text"))).status_code == 200


# --- T02: replay window and replay cache ---


def test_t02_replays(client, session, oa, wechat, monkeypatch):
    request = wechat.encrypted(fixture_xml("msg_text"))
    assert post(client, request).status_code == 200
    # The same signed request again (a WeChat retry of what we stored): success, nothing new.
    assert post(client, request).get_data(as_text=True) == "success"
    # The same query with another body: refused.
    other = wechat.encrypted(fixture_xml("msg_image"))
    replayed = CallbackRequest(other.raw_body, request.query)
    assert post(client, replayed).status_code in (401, 403)
    assert count(session, InboxMessage) == 1


def test_t02_a_retry_after_our_own_failure_is_processed_once(client, session, oa, wechat, monkeypatch):
    from wechat_handlers import services

    real = services.store_message
    calls = {"n": 0}

    def fail_first(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database hiccup before commit")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "store_message", fail_first)
    request = wechat.encrypted(fixture_xml("msg_text"))
    assert post(client, request).status_code == 500
    assert count(session, InboxMessage) == 0
    assert post(client, request).status_code == 200
    assert post(client, request).status_code == 200
    assert count(session, InboxMessage) == 1
    assert session.scalars(select(InboxMessage)).one().status == INBOX_DONE


def test_t04_oversized_and_hostile_bodies_are_refused_quickly(client, session, oa, wechat):
    cases = {
        "2 MiB body": (b"<xml>" + b"a" * (2 * 1024 * 1024) + b"</xml>", 413),
        "xxe": (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>', 400),
        "billion laughs": (b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml>&b;</xml>', 400),
        "nul": (b"<xml>\x00</xml>", 400),
        "bad utf-8": (b"<xml>\xff\xfe</xml>", 400),
        # 10,000 levels are 70 KB: the size cap answers before the depth check would.
        "deep": (b"<xml>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</xml>", 413),
    }
    for name, (body, status) in cases.items():
        request = wechat.plain(body)
        started = time.thread_time()
        response = post(client, request)
        elapsed = time.thread_time() - started
        assert response.status_code == status, name
        assert elapsed < 0.2, (name, elapsed)
        assert "root:" not in response.get_data(as_text=True)
    # Inside a validly signed and encrypted envelope, the hardened parser refuses them too.
    inner = {
        "deep": "<xml>" + "<a>" * 3_000 + "</a>" * 3_000 + "</xml>",
        "entity": '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>',
    }
    for name, xml in inner.items():
        response = post(client, wechat.encrypted(xml))
        assert response.status_code == 400, name
    assert count(session, InboxMessage) == 0


# --- staff API ---


def test_staff_manage_rules_with_roles_and_audit(client, staff, session):
    manager = staff.headers("campaign_manager")
    body = {"trigger": "keyword_contains", "pattern": "coupon", "reply_type": "text", "reply": {"content": "here"}}
    created = client.post("/api/v1/staff/wechat/auto-replies", json=body, headers=manager)
    assert created.status_code == 201
    rule_id = created.get_json()["id"]
    assert (
        client.post("/api/v1/staff/wechat/auto-replies", json=body, headers=staff.headers("analyst")).status_code == 403
    )
    bad = client.post(
        "/api/v1/staff/wechat/auto-replies",
        headers=manager,
        json={"trigger": "click", "reply_type": "news", "reply": {"articles": []}},
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["details"]["fields"]) == {"pattern", "reply"}
    patched = client.patch(f"/api/v1/staff/wechat/auto-replies/{rule_id}", json={"priority": 5}, headers=manager)
    assert patched.get_json()["priority"] == 5
    assert client.delete(f"/api/v1/staff/wechat/auto-replies/{rule_id}", headers=manager).status_code == 204
    assert client.delete(f"/api/v1/staff/wechat/auto-replies/{rule_id}", headers=manager).status_code == 404
    actions = client.get(
        "/api/v1/staff/audit?target_type=auto_reply_rule", headers=staff.headers("auditor")
    ).get_json()["items"]
    assert [a["action"] for a in actions] == [
        "auto_reply_rule.delete",
        "auto_reply_rule.update",
        "auto_reply_rule.create",
    ]


def test_staff_search_the_inbox(client, staff, oa, wechat):
    post(client, wechat.encrypted(fixture_xml("msg_text")))
    post(client, wechat.encrypted(fixture_xml("event_subscribe")))
    headers = staff.headers("campaign_manager")
    everything = client.get(f"/api/v1/staff/wechat/inbox?appid={APPID}", headers=headers).get_json()
    assert everything["page"]["total"] == 2
    events = client.get("/api/v1/staff/wechat/inbox?msg_type=event", headers=headers).get_json()
    assert [item["event"] for item in events["items"]] == ["subscribe"]
    by_user = client.get(f"/api/v1/staff/wechat/inbox?openid={OPENID}&event=SUBSCRIBE", headers=headers).get_json()
    assert by_user["page"]["total"] == 1
    assert client.get("/api/v1/staff/wechat/inbox", headers=staff.headers("kol_manager")).status_code == 403


def test_the_processing_job_run_twice_has_one_effect(client, session, oa, wechat, monkeypatch):
    from wechat_handlers import jobs

    # Store without processing (as if the worker had not run yet), then run the job twice.
    monkeypatch.setattr("scrm.jobs.InProcessRunner.notify", lambda self, queues: None)
    post(client, wechat.encrypted(fixture_xml("event_subscribe__qrscene")))
    row = session.scalars(select(InboxMessage)).one()
    assert row.status == "pending"
    follows = []

    def on_follow(sender, **kwargs):
        follows.append(sender)

    member_signals.wechat_followed.connect(on_follow)
    try:
        jobs.process_inbox(session, {"inbox_id": row.id})
        jobs.process_inbox(session, {"inbox_id": row.id})
    finally:
        member_signals.wechat_followed.disconnect(on_follow)
    assert len(follows) == 1
    session.flush()
    identity = session.scalars(select(WeChatIdentity)).one()
    assert identity.subscribed is True
    assert row.status == INBOX_DONE
    assert count(session, WeChatIdentity) == 1
