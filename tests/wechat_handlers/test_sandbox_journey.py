"""End to end over HTTP: a sandbox user follows by a referral QR, scans, writes and clicks; the service answers."""

from __future__ import annotations

import requests
from sqlalchemy import select

from member.models import WeChatIdentity
from scrm.audit import Actor
from scrm.context import gateway
from scrm.secretbox import SecretBox
from scrm.wechat.sandbox import SandboxClient, running_sandbox
from scrm.wechat.wiring import DatabaseAppDirectory
from scrm.wechat_apps import register_app
from tests.conftest import TEST_SECRET_KEY, StaffAuth, live_server, make_config
from wechat_handlers.models import INBOX_DONE, AutoReplyRule, InboxMessage
from wechat_handlers.parsing import parse_callback_xml

APPID = "wxJOURNEYOA000001"
AES_KEY = "JourneyKeyAbCdEfGhIjKlMnOpQrStUvWxYz0123456"


def reply_content(action: dict) -> str | None:
    reply = action["callback"]["reply"]
    assert reply["status"] == 200
    if reply["plaintext"] is None:
        return None
    return parse_callback_xml(reply["plaintext"])["Content"]


def test_follow_by_qr_scan_text_and_click_over_http(embedded_pg_app, pg_url):
    from scrm.app import create_app

    db = embedded_pg_app.extensions["scrm"].db
    with db.transaction() as session:
        register_app(
            session,
            SecretBox(TEST_SECRET_KEY),
            appid=APPID,
            kind="oa",
            secret="journey-secret",
            token="journeyToken",
            aes_key=AES_KEY,
            mode="safe",
            original_id="gh_journey0001",
            actor=Actor.system(),
        )
        session.add_all(
            [
                AutoReplyRule(
                    appid=APPID,
                    trigger="scan",
                    pattern="r:alice",
                    reply_type="text",
                    reply={"content": "alice invited you"},
                ),
                AutoReplyRule(appid=APPID, trigger="follow", reply_type="text", reply={"content": "welcome"}),
                AutoReplyRule(
                    appid=APPID,
                    trigger="keyword_exact",
                    pattern="points",
                    reply_type="text",
                    reply={"content": "see the member centre"},
                ),
                AutoReplyRule(
                    appid=APPID, trigger="click", pattern="MENU_ME", reply_type="text", reply={"content": "your card"}
                ),
            ]
        )
    directory = DatabaseAppDirectory(db, SecretBox(TEST_SECRET_KEY))
    with running_sandbox(app_loader=directory.all) as (sandbox_url, _state):
        app = create_app(make_config(database_url=pg_url, wechat_api_base=sandbox_url, wechat_open_base=sandbox_url))
        with live_server(app) as service_url:
            wechat = SandboxClient(sandbox_url)
            wechat.configure(target_url=service_url)
            with app.app_context():
                qr = gateway(app).create_qrcode(APPID, "r:alice", expire_seconds=3600)
            staff_headers = StaffAuth(app).headers("campaign_manager")
            menu = {
                "button": [
                    {"type": "click", "name": "Me", "key": "MENU_ME"},
                    {
                        "name": "More",
                        "sub_button": [{"type": "view", "name": "Shop", "url": "https://shop.example.com/"}],
                    },
                ]
            }
            published = requests.put(
                f"{service_url}/api/v1/staff/wechat/menus/{APPID}", json=menu, headers=staff_headers, timeout=10
            )
            assert published.status_code == 200, published.text
            current = requests.get(
                f"{service_url}/api/v1/staff/wechat/menus/{APPID}", headers=staff_headers, timeout=10
            ).json()
            assert current["button"][0]["key"] == "MENU_ME"
            wechat.create_user("bob")

            followed = wechat.scan("bob", qr.ticket)
            assert followed["event"] == "subscribe"
            assert reply_content(followed) == "alice invited you"
            scanned = wechat.scan("bob", qr.ticket)
            assert scanned["event"] == "SCAN"
            assert reply_content(scanned) == "alice invited you"
            assert reply_content(wechat.send_text("bob", APPID, "points")) == "see the member centre"
            assert reply_content(wechat.send_text("bob", APPID, "anything else")) is None
            assert reply_content(wechat.click("bob", APPID, "MENU_ME")) == "your card"
            openid = wechat.openid("bob", APPID)
            wechat.unfollow("bob", APPID)
        app.extensions["scrm"].db.dispose()

    with db.transaction() as session:
        identity = session.scalars(select(WeChatIdentity).where(WeChatIdentity.openid == openid)).one()
        assert (identity.subscribed, identity.qr_scene_str, identity.subscribe_scene) == (
            False,
            "r:alice",
            "ADD_SCENE_QR_CODE",
        )
        rows = session.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
        assert [(row.event or row.msg_type) for row in rows] == [
            "subscribe",
            "SCAN",
            "text",
            "text",
            "CLICK",
            "unsubscribe",
        ]
        assert {row.status for row in rows} == {INBOX_DONE}
