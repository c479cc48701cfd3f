"""Tests for passive replies: no input can inject markup, news limits, and encryption in compat and safe mode."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
import xmltodict
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto
from wechatpy.messages import TextMessage
from wechatpy.replies import create_reply

from wechat_handlers.parsing import CallbackMessage, message_from_fields, parse_callback_xml
from wechat_handlers.replies import (
    ACK_EMPTY,
    ACK_SUCCESS,
    MAX_ARTICLES_FOR_EVENT,
    Article,
    image_reply,
    news_reply,
    seal_reply,
    text_reply,
)
from wechat_handlers.xmltext import cdata, clean_xml_text

INJECTION = "hi ]]><MsgType><![CDATA[news]]></MsgType><Evil>x</Evil><![CDATA["
CREATE_TIME = 1_700_000_200


def parse_reply(xml: str) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 (parsing our own output to check its structure)


@pytest.fixture(scope="module")
def text_message() -> CallbackMessage:
    return CallbackMessage(
        to_user="gh_test0000001",
        from_user="oTESTuser0000000000000000001",
        create_time=1_700_000_000,
        msg_type="text",
        event=None,
        event_key=None,
        msg_id="1",
        fields={},
    )


@pytest.fixture(scope="module")
def event_message(text_message: CallbackMessage) -> CallbackMessage:
    return replace(text_message, msg_type="event", event="CLICK", event_key="MENU", msg_id=None)


def test_wechatpy_create_reply_is_injectable_which_is_why_we_build_our_own() -> None:
    message = TextMessage({"FromUserName": "oTEST", "ToUserName": "gh_test", "CreateTime": 1, "MsgType": "text"})
    rendered = create_reply(INJECTION, message).render()
    assert any(element.tag == "Evil" for element in parse_reply(rendered).iter())


def test_text_reply_with_cdata_terminator_cannot_inject_an_element(text_message: CallbackMessage) -> None:
    root = parse_reply(text_reply(text_message, INJECTION, create_time=CREATE_TIME))
    assert [child.tag for child in root] == ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"]
    assert root.findtext("Content") == INJECTION
    assert not any(element.tag == "Evil" for element in root.iter())
    assert root.findtext("MsgType") == "text"
    assert (root.findtext("ToUserName"), root.findtext("FromUserName")) == (text_message.from_user, "gh_test0000001")
    assert root.findtext("CreateTime") == str(CREATE_TIME)


def test_text_reply_reads_back_through_the_hardened_parser(text_message: CallbackMessage) -> None:
    reply = text_reply(text_message, INJECTION, create_time=CREATE_TIME)
    fields = parse_callback_xml(reply)
    assert fields["Content"] == INJECTION
    assert message_from_fields(fields).msg_type == "text"


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(content=st.text(min_size=1, max_size=200))
def test_any_text_reads_back_exactly_after_cleaning(content: str) -> None:
    message = CallbackMessage("gh_test0000001", "oTEST", 1, "text", None, None, "1", {})
    root = parse_reply(text_reply(message, content, create_time=CREATE_TIME))
    assert [child.tag for child in root] == ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"]
    assert (root.findtext("Content") or "") == clean_xml_text(content)


def test_control_characters_are_dropped_and_line_breaks_normalised() -> None:
    assert clean_xml_text("a\x00b\x08c\x1fd\ufffee\ud800f") == "abcdef"
    assert clean_xml_text("tab\tand\r\nlines\rend\n") == "tab\tand\nlines\nend\n"
    assert cdata("]]>") == "<![CDATA[]]]]><![CDATA[>]]>"
    with pytest.raises(TypeError):
        cdata(42)  # type: ignore[arg-type]


def test_hostile_ids_from_an_unsigned_body_are_escaped_too(text_message: CallbackMessage) -> None:
    forged = replace(text_message, from_user="o]]></ToUserName><ToUserName>oVICTIM", to_user="gh]]><x/>")
    root = parse_reply(text_reply(forged, "hello", create_time=CREATE_TIME))
    assert [child.tag for child in root] == ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"]
    assert root.findtext("ToUserName") == forged.from_user


def test_image_reply_shape(text_message: CallbackMessage) -> None:
    root = parse_reply(image_reply(text_message, "MEDIA]]>ID", create_time=CREATE_TIME))
    assert root.findtext("MsgType") == "image"
    assert root.findtext("Image/MediaId") == "MEDIA]]>ID"
    with pytest.raises(ValueError):
        image_reply(text_message, "", create_time=CREATE_TIME)


def test_news_reply_to_a_user_message_takes_one_article(text_message: CallbackMessage) -> None:
    article = Article(
        title="T]]>", description="D", pic_url="https://img.example.com/a.jpg", url="https://x.example.com"
    )
    root = parse_reply(news_reply(text_message, [article], create_time=CREATE_TIME))
    assert (root.findtext("MsgType"), root.findtext("ArticleCount")) == ("news", "1")
    item = root.find("Articles/item")
    assert item is not None
    assert [item.findtext(name) for name in ("Title", "Description", "PicUrl", "Url")] == [
        "T]]>",
        "D",
        "https://img.example.com/a.jpg",
        "https://x.example.com",
    ]
    with pytest.raises(ValueError):
        news_reply(text_message, [article, article], create_time=CREATE_TIME)
    with pytest.raises(ValueError):
        news_reply(text_message, [], create_time=CREATE_TIME)


def test_news_reply_to_an_event_takes_up_to_eight(event_message: CallbackMessage) -> None:
    articles = [Article(title=f"A{index}") for index in range(MAX_ARTICLES_FOR_EVENT)]
    root = parse_reply(news_reply(event_message, articles, create_time=CREATE_TIME))
    assert root.findtext("ArticleCount") == "8"
    assert len(root.findall("Articles/item")) == 8
    with pytest.raises(ValueError):
        news_reply(event_message, [*articles, Article(title="one too many")], create_time=CREATE_TIME)


@pytest.mark.parametrize("create_time", [-1, True, 1.5, "1"])
def test_reply_refuses_a_bad_create_time(text_message: CallbackMessage, create_time) -> None:
    with pytest.raises(ValueError):
        text_reply(text_message, "x", create_time=create_time)


def test_empty_text_reply_is_refused(text_message: CallbackMessage) -> None:
    with pytest.raises(ValueError):
        text_reply(text_message, "", create_time=CREATE_TIME)


def test_seal_leaves_plain_replies_and_acknowledgements_alone(plain_app, safe_app, text_message) -> None:
    reply = text_reply(text_message, "hello", create_time=CREATE_TIME)
    assert seal_reply(reply, app=plain_app, nonce="1", timestamp=CREATE_TIME) == reply
    for ack in (ACK_SUCCESS, ACK_EMPTY):
        assert seal_reply(ack, app=safe_app, nonce="1", timestamp=CREATE_TIME) == ack


@pytest.mark.parametrize("app_fixture", ["safe_app", "compat_app"])
def test_sealed_reply_decrypts_with_wechatpy_to_the_same_xml(request, text_message, app_fixture: str) -> None:
    app = request.getfixturevalue(app_fixture)
    reply = text_reply(text_message, INJECTION, create_time=CREATE_TIME)
    sealed = seal_reply(reply, app=app, nonce="1320562132", timestamp=CREATE_TIME)
    envelope = xmltodict.parse(sealed)["xml"]
    assert set(envelope) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    crypto = WeChatCrypto(app.token, app.encoding_aes_key, app.appid)
    assert crypto.decrypt_message(sealed, envelope["MsgSignature"], str(CREATE_TIME), "1320562132") == reply


def test_sealed_reply_is_deterministic_with_a_fixed_prefix(safe_app, text_message) -> None:
    reply = text_reply(text_message, "hello", create_time=CREATE_TIME)
    first = seal_reply(reply, app=safe_app, nonce="1", timestamp=CREATE_TIME, random_prefix=b"aaaabbbbccccdddd")
    second = seal_reply(reply, app=safe_app, nonce="1", timestamp=CREATE_TIME, random_prefix=b"aaaabbbbccccdddd")
    assert first == second
    assert seal_reply(reply, app=safe_app, nonce="1", timestamp=CREATE_TIME) != first
