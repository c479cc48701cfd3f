"""Tests for the pre-parse checks: signatures (official vectors), timestamp window, content type, body screening."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wechat_handlers import crypto, security
from wechat_handlers.errors import REJECTIONS, CallbackRejected
from wechat_handlers.security import (
    MAX_BODY_BYTES,
    check_content_type,
    check_declared_length,
    check_signature,
    check_timestamp,
    check_xml_bytes,
    sha1_signature,
    signatures_match,
)


def test_signature_matches_official_vector_s1() -> None:
    assert "".join(sorted(["AAAAA", "1714036504", "1514711492"])) == "15147114921714036504AAAAA"
    assert sha1_signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    check_signature(
        token="AAAAA", signature="f464b24fc39322e44b38aa78f5edd27bd1441696", timestamp="1714036504", nonce="1514711492"
    )


def test_signature_matches_wechatpy_vector_s2() -> None:
    check_signature(
        token="test", signature="f21891de399b4e33a1a93c9a7b8a8fffb5a443ff", timestamp="1410685589", nonce="test"
    )


def test_signature_rejects_wechatpy_invalid_vector_s2() -> None:
    with pytest.raises(CallbackRejected) as rejected:
        check_signature(
            token="test", signature="f21891de399b4e33a1a93c9a7b8a8fffb5a443fe", timestamp="1410685589", nonce="test"
        )
    assert (rejected.value.status, rejected.value.code) == (401, "bad_signature")


@pytest.mark.parametrize("provided", ["", "F21891DE399B4E33A1A93C9A7B8A8FFFB5A443FF", "签名", "\ud800", "x" * 1000])
def test_signature_comparison_never_raises_and_never_matches_odd_input(provided: str) -> None:
    assert signatures_match("f21891de399b4e33a1a93c9a7b8a8fffb5a443ff", provided) is False


def test_signature_code_compares_with_compare_digest_only() -> None:
    # Static guard (T01): no == or != on anything named like a signature in the modules that verify them.
    for module in (security, crypto):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
                assert not any("signature" in name for name in names), ast.unparse(node)
    assert "hmac.compare_digest" in Path(security.__file__).read_text(encoding="utf-8")


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamp_inside_window_is_accepted(offset: int) -> None:
    assert check_timestamp(str(1_700_000_000 + offset), now=1_700_000_000.0, window_s=300) == 1_700_000_000 + offset


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_timestamp_outside_window_is_stale(offset: int) -> None:
    with pytest.raises(CallbackRejected) as rejected:
        check_timestamp(str(1_700_000_000 + offset), now=1_700_000_000.0, window_s=300)
    assert (rejected.value.status, rejected.value.code) == (401, "stale_timestamp")


@pytest.mark.parametrize("timestamp", ["", "-5", "1.5", " 1700000000", "١٧٠٠٠٠٠٠٠٠", "9" * 13, "0x10"])
def test_timestamp_that_is_not_an_integer_is_refused(timestamp: str) -> None:
    with pytest.raises(CallbackRejected) as rejected:
        check_timestamp(timestamp, now=1_700_000_000.0, window_s=300)
    assert rejected.value.code == "bad_timestamp"


@pytest.mark.parametrize("content_type", [None, "", "text/xml", "application/xml", "Text/XML; charset=utf-8"])
def test_xml_content_types_are_accepted(content_type: str | None) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "multipart/form-data; boundary=x"])
def test_other_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(CallbackRejected) as rejected:
        check_content_type(content_type)
    assert rejected.value.status == 415


def test_declared_length_over_cap_is_refused_before_reading() -> None:
    check_declared_length(None)
    check_declared_length(MAX_BODY_BYTES)
    with pytest.raises(CallbackRejected) as rejected:
        check_declared_length(MAX_BODY_BYTES + 1)
    assert rejected.value.status == 413


def test_body_at_cap_passes_and_one_byte_more_is_refused() -> None:
    filler = b"<xml>" + b"a" * (MAX_BODY_BYTES - 11) + b"</xml>"
    assert len(filler) == MAX_BODY_BYTES
    check_xml_bytes(filler)
    with pytest.raises(CallbackRejected) as rejected:
        check_xml_bytes(filler + b" ")
    assert rejected.value.status == 413


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<xml>\x00</xml>", "nul_byte"),
        (b"<xml>\xff\xfe</xml>", "invalid_utf8"),
        (b"<xml>\xed\xa0\x80</xml>", "invalid_utf8"),  # an encoded surrogate
        (b'<!DOCTYPE xml [<!ENTITY a "b">]><xml/>', "doctype_forbidden"),
        (b"<!doctype xml><xml/>", "doctype_forbidden"),
        (b'<xml><!ENTITY a "b"></xml>', "doctype_forbidden"),
        (b'<?xml-stylesheet type="text/xsl" href="x.xsl"?><xml/>', "processing_instruction_forbidden"),
        (b'<xml xmlns:xi="http://www.w3.org/2001/XInclude"/>', "namespace_forbidden"),
        (b"<xml><![CDATA[unterminated <!DOCTYPE</xml>", "doctype_forbidden"),
    ],
)
def test_body_screening_refuses_bad_bytes_and_markup(body: bytes, code: str) -> None:
    with pytest.raises(CallbackRejected) as rejected:
        check_xml_bytes(body)
    assert (rejected.value.status, rejected.value.code) == (400, code)


def test_markup_quoted_inside_cdata_is_not_a_false_positive(load_fixture) -> None:
    text = load_fixture("msg_text__markup")
    assert check_xml_bytes(text.encode("utf-8")) == text


def test_body_screening_is_linear_on_many_unterminated_cdata_openers() -> None:
    import time

    body = b"<![CDATA[" * (MAX_BODY_BYTES // 9)
    started = time.thread_time()
    check_xml_bytes(body)
    assert time.thread_time() - started < 0.05


def test_every_rejection_is_a_4xx_with_a_fixed_message() -> None:
    for code, (status, message) in REJECTIONS.items():
        assert status in {400, 401, 403, 413, 415}, code
        error = CallbackRejected(code)
        assert (error.code, error.status, error.message) == (code, status, message)
