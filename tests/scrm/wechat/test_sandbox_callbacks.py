"""Callbacks the sandbox posts when acting as a user: signed, encrypted per mode, retried like WeChat."""

from __future__ import annotations

import xmltodict
from hypothesis import given
from hypothesis import strategies as st
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from scrm.wechat.apps import AppCredentials
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox.callbacks import build_xml
from scrm.wechat.sandbox.client import SandboxClient

from .conftest import OA_COMPAT, OA_PLAIN, OA_SAFE, CallbackReceiver, ReceivedCallback


def decrypt(app: AppCredentials, callback: ReceivedCallback) -> str:
    """What the service must do: check the plain signature, then msg_signature, then decrypt (wechatpy)."""
    query = callback.query
    check_signature(app.token, query["signature"], query["timestamp"], query["nonce"])
    assert query["encrypt_type"] == "aes"
    crypto = WeChatCrypto(app.token, app.encoding_aes_key, app.appid)
    return crypto.decrypt_message(callback.body, query["msg_signature"], query["timestamp"], query["nonce"])


def test_a_new_follower_scanning_a_qr_posts_an_encrypted_subscribe_event(
    gateway: WeChatGateway, control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    qr = gateway.create_qrcode(OA_SAFE.appid, "r:AbC123")

    report = control.scan(user["user_id"], qr.ticket)

    [callback] = receiver.received
    assert callback.path == f"/wechat/{OA_SAFE.appid}/callback"
    assert callback.content_type == "text/xml"
    openid = user["openids"][OA_SAFE.appid]
    assert callback.query["openid"] == openid
    # Safe mode: the body is only ToUserName and Encrypt.
    outer = xmltodict.parse(callback.body)["xml"]
    assert set(outer) == {"ToUserName", "Encrypt"}
    assert outer["ToUserName"] == OA_SAFE.original_id
    event = parse_message(decrypt(OA_SAFE, callback))
    assert event.event == "subscribe_scan"  # wechatpy's name for subscribe + qrscene_
    assert event.scene_id == "r:AbC123"
    assert event.ticket == qr.ticket
    assert event.source == openid
    assert event.target == OA_SAFE.original_id
    assert "<EventKey><![CDATA[qrscene_r:AbC123]]></EventKey>" in report["callback"]["plaintext"]
    assert report["event"] == "subscribe"
    assert report["callback"]["delivered"]
    assert report["callback"]["reply"] == {
        "status": 200,
        "body": "success",
        "acknowledged": True,
        "plaintext": None,
        "error": None,
    }


def test_a_follower_scanning_posts_scan_with_the_bare_scene(
    gateway: WeChatGateway, control: SandboxClient, receiver: CallbackReceiver, follower: dict
) -> None:
    qr = gateway.create_qrcode(OA_SAFE.appid, "r:again")
    control.scan(follower["user_id"], qr.ticket)
    event = parse_message(decrypt(OA_SAFE, receiver.received[-1]))
    assert event.event == "scan"
    assert event.scene_id == "r:again"
    assert event.ticket == qr.ticket
    assert "<EventKey><![CDATA[r:again]]></EventKey>" in decrypt(OA_SAFE, receiver.received[-1])


def test_compat_mode_posts_plaintext_fields_beside_encrypt(
    gateway: WeChatGateway, control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    qr = gateway.create_qrcode(OA_COMPAT.appid, "r:compat")
    control.scan(user["user_id"], qr.ticket)
    [callback] = receiver.received
    outer = xmltodict.parse(callback.body)["xml"]
    assert {"ToUserName", "FromUserName", "Event", "EventKey", "Ticket", "Encrypt"} <= set(outer)
    inner = xmltodict.parse(decrypt(OA_COMPAT, callback))["xml"]
    assert inner["EventKey"] == outer["EventKey"] == "qrscene_r:compat"


def test_plain_mode_posts_signed_plaintext(
    gateway: WeChatGateway, control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    qr = gateway.create_qrcode(OA_PLAIN.appid, "r:plain")
    control.scan(user["user_id"], qr.ticket)
    [callback] = receiver.received
    assert "encrypt_type" not in callback.query
    assert "msg_signature" not in callback.query
    check_signature(OA_PLAIN.token, callback.query["signature"], callback.query["timestamp"], callback.query["nonce"])
    event = parse_message(callback.body)
    assert event.event == "subscribe_scan"
    assert event.scene_id == "r:plain"


def test_follow_text_click_view_unfollow(
    gateway: WeChatGateway, control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    menu_url = "https://m.example.com/member"
    gateway.create_menu(
        OA_SAFE.appid,
        {
            "button": [
                {"type": "click", "name": "签到", "key": "CHECK_IN"},
                {"type": "view", "name": "会员", "url": menu_url},
            ]
        },
    )
    user_id = user["user_id"]
    control.follow(user_id, OA_SAFE.appid)
    text_report = control.send_text(user_id, OA_SAFE.appid, "积分 ]]> 多少")
    control.click(user_id, OA_SAFE.appid, "CHECK_IN")
    control.view(user_id, OA_SAFE.appid, menu_url)
    control.unfollow(user_id, OA_SAFE.appid)

    messages = [parse_message(decrypt(OA_SAFE, callback)) for callback in receiver.received]
    assert [m.type if m.type != "event" else m.event for m in messages] == [
        "subscribe",
        "text",
        "click",
        "view",
        "unsubscribe",
    ]
    text = messages[1]
    assert text.content == "积分 ]]> 多少"
    assert text.id == text_report["msgid"] > 0
    assert messages[2].key == "CHECK_IN"
    assert messages[3].url == menu_url


def test_subscribe_popup_event(control: SandboxClient, receiver: CallbackReceiver, follower: dict) -> None:
    control.answer_subscribe_popup(follower["user_id"], OA_SAFE.appid, ["TPL_A"])
    plaintext = decrypt(OA_SAFE, receiver.received[-1])
    popup = xmltodict.parse(plaintext, force_list=("List",))["xml"]["SubscribeMsgPopupEvent"]["List"]
    assert popup == [{"TemplateId": "TPL_A", "SubscribeStatusString": "accept", "PopupScene": "2"}]


def test_a_stalled_service_gets_the_same_callback_again(
    control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    control.configure(callback_timeout_s=0.3, callback_attempts=3)
    receiver.stalls = [1.0]

    report = control.follow(user["user_id"], OA_SAFE.appid)["callback"]

    attempts = report["attempts"]
    assert [a["error"] for a in attempts] == ["timeout", None]
    assert attempts[1]["status"] == 200
    first, second = receiver.received
    assert (first.query, first.body) == (second.query, second.body)
    assert report["delivered"]


def test_a_service_that_never_answers_gets_three_tries(
    control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    control.configure(callback_timeout_s=0.2, callback_attempts=3)
    receiver.stalls = [0.5, 0.5, 0.5]
    report = control.follow(user["user_id"], OA_SAFE.appid)["callback"]
    assert [a["error"] for a in report["attempts"]] == ["timeout"] * 3
    assert not report["delivered"]
    assert len(receiver.received) == 3


def test_an_encrypted_passive_reply_is_decrypted_in_the_report(
    control: SandboxClient, receiver: CallbackReceiver, user: dict
) -> None:
    def reply(callback: ReceivedCallback) -> str:
        message = parse_message(decrypt(OA_SAFE, callback))
        crypto = WeChatCrypto(OA_SAFE.token, OA_SAFE.encoding_aes_key, OA_SAFE.appid)
        return crypto.encrypt_message(TextReply(message=message, content="欢迎!"), "12345", callback.query["timestamp"])

    receiver.reply = reply
    report = control.follow(user["user_id"], OA_SAFE.appid)["callback"]["reply"]
    assert report["error"] is None
    assert not report["acknowledged"]
    assert "<Content><![CDATA[欢迎!]]></Content>" in report["plaintext"]


def test_without_a_target_nothing_is_posted(control: SandboxClient, user: dict) -> None:
    report = control.follow(user["user_id"], OA_SAFE.appid)["callback"]
    assert report["attempts"] == []
    assert not report["delivered"]
    assert "no target_url" in report["error"]
    assert control.user(user["user_id"])["follows"][OA_SAFE.appid]["subscribed"]


def test_the_callback_log_keeps_reports(control: SandboxClient, receiver: CallbackReceiver, user: dict) -> None:
    control.follow(user["user_id"], OA_SAFE.appid)
    [logged] = control.callbacks()
    assert logged["event"] == "subscribe"
    assert logged["delivered"]


# XML cannot carry control characters, surrogates or non-characters; WeChat never sends them either.
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=200))
def test_any_text_survives_the_callback_xml(content: str) -> None:
    xml = build_xml([("MsgType", "text"), ("Content", content), ("MsgId", 1)])
    parsed = xmltodict.parse(xml, strip_whitespace=False)["xml"]
    assert (parsed["Content"] or "") == content
    assert parsed["MsgId"] == "1"
