"""Tests for the hardened XML parser and ``CallbackMessage``: fixtures, lists, limits, dedup keys, referral scenes."""

from __future__ import annotations

import pytest

from wechat_handlers.errors import CallbackRejected
from wechat_handlers.parsing import (
    MAX_DEDUP_KEY_LENGTH,
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_ID_LENGTH,
    CallbackMessage,
    message_from_fields,
    parse_callback_xml,
)

HEADER = (
    "<ToUserName><![CDATA[gh_test0000001]]></ToUserName>"
    "<FromUserName><![CDATA[oTESTuser0000000000000000001]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime>"
)


def parse_message(xml: str) -> CallbackMessage:
    return message_from_fields(parse_callback_xml(xml), raw_xml=xml)


def event_xml(event: str, event_key: str | None = None, create_time: int = 1700000000) -> str:
    key = f"<EventKey><![CDATA[{event_key}]]></EventKey>" if event_key is not None else ""
    header = HEADER.replace("1700000000", str(create_time))
    return f"<xml>{header}<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{key}</xml>"


def rejection(xml: str) -> tuple[int, str]:
    with pytest.raises(CallbackRejected) as rejected:
        parse_message(xml)
    return rejected.value.status, rejected.value.code


def test_every_fixture_parses_to_a_message(load_fixture, fixture_name: str) -> None:
    xml = load_fixture(fixture_name)
    message = parse_message(xml)
    assert message.to_user == "gh_test0000001"
    assert message.from_user.startswith("oTESTuser")
    assert len(message.from_user) == 28
    assert 1_700_000_000 < message.create_time < 1_700_000_100
    assert message.raw_xml == xml
    assert message.is_event == fixture_name.startswith("event_")
    assert (message.msg_id is not None) == (fixture_name.startswith("msg_") or "jobfinish" in fixture_name)


def test_text_keeps_content_exactly_including_whitespace(load_fixture) -> None:
    message = parse_message(load_fixture("msg_text"))
    assert message.fields["Content"] == "你好，我想查一下积分 "
    assert message.dedup_key == "gh_test0000001:msgid:24300000000000001"


def test_quoted_markup_in_cdata_is_plain_text(load_fixture) -> None:
    content = parse_message(load_fixture("msg_text__markup")).fields["Content"]
    assert content.startswith("how do I stop <!DOCTYPE x [<!ENTITY y")
    assert content.endswith("and ]]> ?")


def test_single_list_parses_to_a_one_element_list(load_fixture) -> None:
    items = parse_message(load_fixture("event_subscribe_msg_popup__one")).fields["SubscribeMsgPopupEvent"]["List"]
    assert items == [
        {
            "TemplateId": "TESTtemplate_points_changed_00000000000001",
            "SubscribeStatusString": "accept",
            "PopupScene": "2",
        }
    ]


def test_several_lists_parse_in_order(load_fixture) -> None:
    items = parse_message(load_fixture("event_subscribe_msg_popup__many")).fields["SubscribeMsgPopupEvent"]["List"]
    assert [item["SubscribeStatusString"] for item in items] == ["accept", "reject"]


@pytest.mark.parametrize(
    ("fixture", "path"),
    [
        ("event_subscribe_msg_change", ("SubscribeMsgChangeEvent", "List")),
        ("event_subscribe_msg_sent", ("SubscribeMsgSentEvent", "List")),
        ("event_pic_weixin", ("SendPicsInfo", "PicList", "item")),
        ("event_masssendjobfinish", ("ArticleUrlResult", "ResultList", "item")),
    ],
)
def test_repeated_elements_are_always_lists(load_fixture, fixture: str, path: tuple[str, ...]) -> None:
    value = parse_message(load_fixture(fixture)).fields
    for name in path:
        value = value[name]
    assert isinstance(value, list)
    assert len(value) == 1


def test_referral_scene_and_new_follow(load_fixture) -> None:
    qr_follow = parse_message(load_fixture("event_subscribe__qrscene"))
    assert (qr_follow.referral_scene(), qr_follow.is_new_follow()) == ("r:AbC123", True)
    plain_follow = parse_message(load_fixture("event_subscribe"))
    assert (plain_follow.referral_scene(), plain_follow.is_new_follow()) == (None, True)
    scan = parse_message(load_fixture("event_scan"))
    assert (scan.event, scan.normalized_event, scan.referral_scene(), scan.is_new_follow()) == (
        "SCAN",
        "scan",
        "r:AbC123",
        False,
    )
    assert parse_message(load_fixture("event_click")).referral_scene() is None
    assert parse_message(load_fixture("msg_text")).referral_scene() is None


@pytest.mark.parametrize("event_key", ["", "qrscene_", "last_trade_no_1"])
def test_subscribe_without_a_usable_scene_has_none(event_key: str) -> None:
    assert parse_message(event_xml("subscribe", event_key)).referral_scene() is None


def test_job_finish_events_dedup_on_msgid(load_fixture) -> None:
    template = parse_message(load_fixture("event_templatesendjobfinish"))
    assert (template.msg_id, template.dedup_key) == ("200163836", "gh_test0000001:jobid:200163836")
    mass = parse_message(load_fixture("event_masssendjobfinish"))
    assert mass.dedup_key == "gh_test0000001:jobid:1000001625"


def test_events_dedup_on_sender_time_event_and_key() -> None:
    subscribe = parse_message(event_xml("subscribe", "qrscene_42"))
    scan = parse_message(event_xml("SCAN", "42"))
    assert subscribe.dedup_key == "gh_test0000001:from:oTESTuser0000000000000000001:1700000000:subscribe:qrscene_42"
    assert scan.dedup_key != subscribe.dedup_key
    assert parse_message(event_xml("SCAN", "43")).dedup_key != scan.dedup_key
    assert parse_message(event_xml("SCAN", "42", create_time=1700000001)).dedup_key != scan.dedup_key
    assert parse_message(event_xml("SCAN", "42")).dedup_key == scan.dedup_key


def test_message_without_msgid_dedups_on_sender_time_and_type() -> None:
    message = parse_message(f"<xml>{HEADER}<MsgType>text</MsgType></xml>")
    assert message.dedup_key == "gh_test0000001:from:oTESTuser0000000000000000001:1700000000:text:"


def test_dedup_key_stays_short_for_long_event_keys() -> None:
    view = parse_message(event_xml("VIEW", "https://crm.example.com/" + "p" * 2000))
    longest = CallbackMessage(
        to_user="g" * MAX_ID_LENGTH,
        from_user="o" * MAX_ID_LENGTH,
        create_time=999_999_999_999,
        msg_type="event",
        event="e" * MAX_ID_LENGTH,
        event_key="k" * 5000,
        msg_id=None,
        fields={},
    )
    assert "sha256:" in view.dedup_key
    assert len(view.dedup_key) <= len(longest.dedup_key) <= MAX_DEDUP_KEY_LENGTH


def test_nesting_at_the_limit_parses_and_one_deeper_is_refused() -> None:
    def nested(depth: int) -> str:
        # <xml> is depth 1, so depth - 1 nested elements reach ``depth``.
        inner = "<a>" * (depth - 1) + "x" + "</a>" * (depth - 1)
        return f"<xml>{HEADER}<MsgType>event</MsgType><Event>deep</Event>{inner}</xml>"

    assert parse_message(nested(MAX_DEPTH)).fields
    assert rejection(nested(MAX_DEPTH + 1)) == (400, "xml_too_deep")


def test_element_count_at_the_limit_parses_and_one_more_is_refused() -> None:
    def wide(elements: int) -> str:
        # xml, the three header fields, MsgType, Event and L make 7.
        children = "<i/>" * (elements - 7)
        return f"<xml>{HEADER}<MsgType>event</MsgType><Event>wide</Event><L>{children}</L></xml>"

    assert parse_message(wide(MAX_ELEMENTS)).fields
    assert rejection(wide(MAX_ELEMENTS + 1)) == (400, "too_many_elements")


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        ("", "malformed_xml"),
        ("just text", "malformed_xml"),
        ("<xml>", "malformed_xml"),
        ("<xml/><xml/>", "malformed_xml"),
        (f"<root>{HEADER}<MsgType>text</MsgType></root>", "malformed_xml"),
        ("<xml/>", "malformed_xml"),
        ("<xml>text only</xml>", "malformed_xml"),
        (f"<xml>{HEADER}stray text<MsgType>text</MsgType></xml>", "malformed_xml"),
        (f"<xml>{HEADER}<MsgType>text</MsgType>&undefined;</xml>", "malformed_xml"),
        (f"<xml>{HEADER}<ToUserName>gh_other</ToUserName><MsgType>text</MsgType></xml>", "duplicate_element"),
        (f"<xml>{HEADER}<MsgType>text</MsgType><MsgType>event</MsgType></xml>", "duplicate_element"),
        (f"<xml>{HEADER}<MsgType>text</MsgType><x:a xmlns:x='urn:x'/></xml>", "namespace_forbidden"),
        (f"<xml>{HEADER}<MsgType>text</MsgType><a xmlns='urn:x'/></xml>", "namespace_forbidden"),
        (f"<xml>{HEADER}<MsgType>text</MsgType><?pi data?></xml>", "processing_instruction_forbidden"),
        ('<!-- <![CDATA[ --><!DOCTYPE xml [<!ENTITY e "x">]><!-- ]]> --><xml/>', "doctype_forbidden"),
    ],
)
def test_malformed_or_hostile_xml_is_refused(xml: str, code: str) -> None:
    assert rejection(xml) == (400, code)


@pytest.mark.parametrize(
    "xml",
    [
        "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
        f"<xml>{HEADER}</xml>",
        f"<xml>{HEADER}<MsgType></MsgType></xml>",
        f"<xml>{HEADER}<MsgType>event</MsgType></xml>",
        f"<xml>{HEADER}<MsgType><a>text</a></MsgType></xml>",
        f"<xml>{HEADER.replace('1700000000', '17e8')}<MsgType>text</MsgType></xml>",
        f"<xml>{HEADER.replace('1700000000', '-1')}<MsgType>text</MsgType></xml>",
        f"<xml>{HEADER}<MsgType>text</MsgType><MsgId>{'9' * (MAX_ID_LENGTH + 1)}</MsgId></xml>",
        f"<xml>{HEADER}<MsgType>event</MsgType><Event>CLICK</Event><EventKey><k>v</k></EventKey></xml>",
    ],
)
def test_message_without_valid_required_fields_is_invalid(xml: str) -> None:
    assert rejection(xml) == (400, "invalid_message")


def test_attributes_are_ignored_and_declared_encoding_is_overridden() -> None:
    xml = f'<?xml version="1.0" encoding="gbk"?><xml a="1">{HEADER}<MsgType t="x">text</MsgType></xml>'
    assert parse_message(xml).msg_type == "text"


def test_event_names_keep_wechat_spelling_and_normalise_for_dispatch() -> None:
    message = parse_message(event_xml("TEMPLATESENDJOBFINISH"))
    assert (message.event, message.normalized_event) == ("TEMPLATESENDJOBFINISH", "templatesendjobfinish")
    text = parse_message(f"<xml>{HEADER}<MsgType>text</MsgType><Event>subscribe</Event></xml>")
    assert (text.event, text.normalized_event, text.is_new_follow()) == (None, None, False)
