"""T03 on PostgreSQL with real commits: 500 messages, each delivered 3 times (2 at once) → 500 rows, 500 effects."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from member.models import WeChatIdentity
from scrm import jobs
from scrm.audit import Actor
from scrm.models import OUTBOX_DONE, OutboxMessage
from scrm.secretbox import SecretBox
from scrm.wechat_apps import register_app
from tests.conftest import TEST_SECRET_KEY
from tests.wechat_handlers.conftest import APPID, ENCODING_AES_KEY, ORIGINAL_ID, TOKEN, CallbackSender
from wechat_handlers.models import INBOX_DONE, InboxMessage

MESSAGES = 500


def text_xml(n: int, created: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[oTESTload{n:019d}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello {n}]]></Content>"
        f"<MsgId>{7_000_000_000 + n}</MsgId></xml>"
    )


def event_xml(n: int, created: int, event: str, key: str) -> str:
    # Pairs share FromUserName and CreateTime but differ in Event/EventKey: they must not be merged.
    return (
        f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[oTESTpair{n // 2:019d}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey></xml>"
    )


@pytest.mark.slow
def test_t03_retries_and_concurrent_duplicates_store_and_process_each_message_once(committed_app):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
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
    now = int(time.time())
    sender = CallbackSender(now=now)
    payloads = [text_xml(n, now) for n in range(400)]
    for n in range(100):
        payloads.append(event_xml(n, now, "CLICK" if n % 2 else "VIEW", f"KEY_{n}"))
    assert len(payloads) == MESSAGES
    client = committed_app.test_client()

    first_requests = [sender.encrypted(xml, nonce=f"a{i}") for i, xml in enumerate(payloads)]
    retry_requests = [sender.encrypted(xml, nonce=f"b{i}") for i, xml in enumerate(payloads)]

    def deliver(request) -> int:
        response = client.post(
            f"/wechat/{APPID}/callback?{urlencode(request.query)}", data=request.raw_body, content_type="text/xml"
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        # Deliveries 1 and 2 arrive at once with the same query; delivery 3 is a later retry with a new nonce.
        # WeChat resends a request byte for byte, so the concurrent pair is one request sent twice.
        # Submitted back to back, each pair is picked up by two pool threads at the same time.
        pairs = [pool.submit(deliver, request) for request in first_requests for _ in range(2)]
        statuses = [f.result() for f in pairs]
        statuses += list(pool.map(deliver, retry_requests))
    assert statuses.count(200) == 3 * MESSAGES, sorted(set(statuses))

    jobs.run_worker(committed_app, ["callbacks"], burst=True, with_scheduler=False)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(InboxMessage)) == MESSAGES
        assert session.scalar(select(func.count()).where(InboxMessage.status == INBOX_DONE)) == MESSAGES
        outbox_rows = session.execute(select(OutboxMessage.status, OutboxMessage.attempts)).all()
        assert len(outbox_rows) == MESSAGES
        assert {(status, attempts) for status, attempts in outbox_rows} == {(OUTBOX_DONE, 1)}
        # 400 texting users + 50 users who each sent a pair of same-second events.
        assert session.scalar(select(func.count()).select_from(WeChatIdentity)) == 450
