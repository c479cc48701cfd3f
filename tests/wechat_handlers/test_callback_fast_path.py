"""The callback's hot path on PostgreSQL with real commits: one autocommitted statement, replay cache in the inbox."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from sqlalchemy import func, select

from scrm.audit import Actor
from scrm.models import OutboxMessage
from scrm.secretbox import SecretBox
from scrm.wechat_apps import register_app
from tests.conftest import TEST_SECRET_KEY
from tests.wechat_handlers.conftest import APPID, ENCODING_AES_KEY, ORIGINAL_ID, TOKEN, CallbackRequest, CallbackSender
from wechat_handlers.models import InboxMessage
from wechat_handlers.pipeline import body_digest, replay_digest


def register(db, mode: str) -> None:
    with db.transaction() as session:
        register_app(
            session,
            SecretBox(TEST_SECRET_KEY),
            appid=APPID,
            kind="oa",
            secret="s" * 32,
            token=TOKEN,
            aes_key=ENCODING_AES_KEY,
            mode=mode,
            original_id=ORIGINAL_ID,
            actor=Actor.system(),
        )


def text_xml(msg_id: int, created: int, content: str = "hello") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><FromUserName><![CDATA[oFAST{msg_id:023d}]]>"
        f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def post(client, request: CallbackRequest):
    return client.post(
        f"/wechat/{APPID}/callback?{urlencode(request.query)}", data=request.raw_body, content_type="text/xml"
    )


def stored(db) -> tuple[int, int]:
    with db.transaction() as session:
        inbox = session.scalar(select(func.count()).select_from(InboxMessage))
        outbox = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "wechat.process_inbox")
        )
    return inbox, outbox


def test_a_stored_message_keeps_its_signed_query_and_retries_store_nothing(committed_app):
    db = committed_app.extensions["scrm"].db
    assert db.autocommit_writes
    register(db, "safe")
    sender = CallbackSender(now=int(time.time()))
    client = committed_app.test_client()
    request = sender.encrypted(text_xml(1, sender.now), nonce="n1")

    response = post(client, request)
    assert (response.status_code, response.get_data(as_text=True)) == (200, "success")
    # Acknowledged means committed: another connection sees the row and its one outbox row.
    assert stored(db) == (1, 1)
    with db.transaction() as session:
        row = session.scalars(select(InboxMessage)).one()
        assert (row.replay_key, row.body_digest) == (replay_digest(request.query), body_digest(request.raw_body))

    # WeChat's retries, with the same query or a fresh one, are acknowledged and store nothing.
    assert post(client, request).get_data(as_text=True) == "success"
    assert post(client, sender.encrypted(text_xml(1, sender.now), nonce="n2")).get_data(as_text=True) == "success"
    assert stored(db) == (1, 1)


def test_a_captured_plain_mode_query_with_another_body_is_refused_and_not_stored(committed_app):
    # Plain mode signs only the query, so only the replay cache stands between a captured query and a forged body.
    db = committed_app.extensions["scrm"].db
    register(db, "plain")
    sender = CallbackSender(now=int(time.time()))
    client = committed_app.test_client()
    original = sender.plain(text_xml(10, sender.now), nonce="p1")
    assert post(client, original).status_code == 200

    forged = CallbackRequest(text_xml(11, sender.now, content="forged").encode(), original.query)
    response = post(client, forged)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "replayed_query"
    assert stored(db) == (1, 1)
    # The genuine message, sent again with its own query, is still just a retry.
    assert post(client, original).get_data(as_text=True) == "success"
    assert stored(db) == (1, 1)
