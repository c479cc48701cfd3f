"""Tests for ``open_callback`` and ``verify_echo``: round trips in every mode and the T01 signature matrix."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from wechat_handlers.apps import CallbackApp, CallbackMode
from wechat_handlers.errors import CallbackRejected
from wechat_handlers.pipeline import body_digest, open_callback, replay_key, verify_echo
from wechat_handlers.security import MAX_BODY_BYTES, sha1_signature


def rejection(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(CallbackRejected) as rejected:
        call()
    return rejected.value.status, rejected.value.code


@pytest.mark.parametrize("mode", list(CallbackMode))
def test_every_fixture_round_trips_in_every_mode(
    sender, plain_app, compat_app, safe_app, load_fixture, fixture_name: str, mode: CallbackMode
) -> None:
    xml = load_fixture(fixture_name)
    request, app = {
        CallbackMode.PLAIN: (sender.plain(xml), plain_app),
        CallbackMode.COMPAT: (sender.compat(xml), compat_app),
        CallbackMode.SAFE: (sender.encrypted(xml), safe_app),
    }[mode]
    message = sender.open(request, app)
    assert message.raw_xml == xml
    assert message.to_user == "gh_test0000001"


def test_compat_mode_reads_only_the_ciphertext(sender, compat_app, load_fixture) -> None:
    genuine = load_fixture("event_subscribe")
    forged_siblings = load_fixture("event_subscribe__qrscene").replace("oTESTuser0000000000000000001", "oVICTIM")
    message = sender.open(sender.compat(genuine, siblings_from=forged_siblings), compat_app)
    assert message.raw_xml == genuine
    assert (message.from_user, message.referral_scene(), message.create_time) == (
        "oTESTuser0000000000000000001",
        None,
        1700000010,
    )


def test_mode_comes_from_config_not_from_encrypt_type(sender, safe_app, plain_app, load_fixture) -> None:
    xml = load_fixture("msg_text")
    assert sender.open(sender.encrypted(xml).with_query(encrypt_type="raw"), safe_app).raw_xml == xml
    assert sender.open(sender.encrypted(xml).with_query(encrypt_type=None), safe_app).raw_xml == xml
    # A plain app reads the body as the message, so a safe-mode envelope is not a message to it.
    assert rejection(lambda: sender.open(sender.encrypted(xml), plain_app)) == (400, "invalid_message")


def test_without_original_id_any_to_user_is_accepted(sender, app_factory, load_fixture) -> None:
    app = app_factory(CallbackMode.SAFE, original_id=None)
    xml = load_fixture("msg_text").replace("gh_test0000001", "gh_someoneelse")
    assert sender.open(sender.encrypted(xml), app).to_user == "gh_someoneelse"


def _tamper_encrypt(request):
    body = request.raw_body.decode()
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body).group(1)
    flipped = ("B" if encrypt[0] == "A" else "A") + encrypt[1:]
    return type(request)(raw_body=body.replace(encrypt, flipped).encode(), query=request.query)


def _garbage_encrypt(sender):
    request = sender.encrypted("<xml/>")
    body = re.sub(
        r"<Encrypt><!\[CDATA\[.*?\]\]>", "<Encrypt><![CDATA[AAAAAAAAAAAAAAAAAAAAAA==]]>", request.raw_body.decode()
    )
    query = request.query
    signature = sha1_signature(sender.token, query["timestamp"], query["nonce"], "AAAAAAAAAAAAAAAAAAAAAA==")
    return type(request)(raw_body=body.encode(), query=query).with_query(msg_signature=signature)


def _t01_invalid_variants(sender, make_sender, xml: str) -> dict[str, tuple[object, int, str]]:
    valid = sender.encrypted(xml)
    query = valid.query
    encrypt = re.search(r"CDATA\[([A-Za-z0-9+/=]{40,})\]\]", valid.raw_body.decode()).group(1)
    other = xml.replace("24300000000000001", "24300000000000099")
    return {
        "wrong_token": (make_sender(token="notTheToken").encrypted(xml), 401, "bad_signature"),
        "tampered_timestamp": (valid.with_query(timestamp=str(sender.now + 1)), 401, "bad_signature"),
        "tampered_nonce": (valid.with_query(nonce="1320562133"), 401, "bad_signature"),
        "tampered_encrypt": (_tamper_encrypt(valid), 403, "bad_msg_signature"),
        "tampered_msg_signature": (valid.with_query(msg_signature="0" * 40), 403, "bad_msg_signature"),
        "msg_signature_with_wrong_token": (
            valid.with_query(msg_signature=sha1_signature("notTheToken", query["timestamp"], query["nonce"], encrypt)),
            403,
            "bad_msg_signature",
        ),
        "same_query_other_body": (
            type(valid)(raw_body=sender.encrypted(other).raw_body, query=query),
            403,
            "bad_msg_signature",
        ),
        "wrong_appid_in_ciphertext": (make_sender(appid="wx99999999999999ff").encrypted(xml), 403, "appid_mismatch"),
        "missing_signature": (valid.with_query(signature=None), 401, "missing_parameter"),
        "missing_timestamp": (valid.with_query(timestamp=None), 401, "missing_parameter"),
        "missing_nonce": (valid.with_query(nonce=None), 401, "missing_parameter"),
        "missing_msg_signature": (valid.with_query(msg_signature=None), 401, "missing_parameter"),
        "encrypt_type_raw_downgrade": (sender.plain(xml).with_query(encrypt_type="raw"), 401, "missing_parameter"),
        "plaintext_body_with_msg_signature": (
            sender.plain(xml).with_query(msg_signature=valid.query["msg_signature"], encrypt_type="aes"),
            401,
            "missing_encrypt",
        ),
        "stale_timestamp_minus_301": (sender.encrypted(xml, timestamp=sender.now - 301), 401, "stale_timestamp"),
        "stale_timestamp_plus_301": (sender.encrypted(xml, timestamp=sender.now + 301), 401, "stale_timestamp"),
        "wrong_to_user": (sender.encrypted(xml.replace("gh_test0000001", "gh_other000001")), 403, "to_user_mismatch"),
        "garbage_ciphertext_validly_signed": (_garbage_encrypt(sender), 400, "bad_ciphertext"),
        "oversized_parameter": (valid.with_query(nonce="1" * 257), 400, "bad_parameter"),
        "non_xml_content_type": (type(valid)(valid.raw_body, query, "application/json"), 415, "unsupported_media_type"),
    }


T01_VARIANTS = [
    "wrong_token",
    "tampered_timestamp",
    "tampered_nonce",
    "tampered_encrypt",
    "tampered_msg_signature",
    "msg_signature_with_wrong_token",
    "same_query_other_body",
    "wrong_appid_in_ciphertext",
    "missing_signature",
    "missing_timestamp",
    "missing_nonce",
    "missing_msg_signature",
    "encrypt_type_raw_downgrade",
    "plaintext_body_with_msg_signature",
    "stale_timestamp_minus_301",
    "stale_timestamp_plus_301",
    "wrong_to_user",
    "garbage_ciphertext_validly_signed",
    "oversized_parameter",
    "non_xml_content_type",
]


def test_t01_valid_safe_request_is_accepted(sender, safe_app, load_fixture) -> None:
    message = sender.open(sender.encrypted(load_fixture("msg_text")), safe_app)
    assert message.dedup_key == "gh_test0000001:msgid:24300000000000001"


@pytest.mark.parametrize("variant", T01_VARIANTS)
def test_t01_invalid_safe_request_is_refused(sender, make_sender, safe_app, load_fixture, variant: str) -> None:
    variants = _t01_invalid_variants(sender, make_sender, load_fixture("msg_text"))
    assert sorted(variants) == sorted(T01_VARIANTS)
    request, status, code = variants[variant]
    assert rejection(lambda: sender.open(request, safe_app)) == (status, code)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"signature": "0" * 40}, "bad_signature"),
        ({"timestamp": str(1_700_000_101)}, "bad_signature"),
        ({"nonce": "1"}, "bad_signature"),
        ({"signature": None}, "missing_parameter"),
        ({"timestamp": None}, "missing_parameter"),
        ({"nonce": None}, "missing_parameter"),
        ({"timestamp": "abc"}, "bad_signature"),
    ],
)
def test_t01_invalid_plain_request_is_refused(sender, plain_app, load_fixture, change, code: str) -> None:
    request = sender.plain(load_fixture("msg_text")).with_query(**change)
    assert rejection(lambda: sender.open(request, plain_app)) == (401, code)


@pytest.mark.parametrize("offset", [-301, 301])
def test_plain_request_outside_the_window_is_stale(sender, plain_app, load_fixture, offset: int) -> None:
    request = sender.plain(load_fixture("msg_text"), timestamp=sender.now + offset)
    assert rejection(lambda: sender.open(request, plain_app)) == (401, "stale_timestamp")


def test_declared_length_over_the_cap_is_refused(sender, safe_app, load_fixture) -> None:
    request = sender.encrypted(load_fixture("msg_text"))
    call = lambda: open_callback(  # noqa: E731
        raw_body=request.raw_body,
        query=request.query,
        content_type="text/xml",
        app=safe_app,
        now=sender.now,
        content_length=MAX_BODY_BYTES + 1,
    )
    assert rejection(call) == (413, "body_too_large")


def test_verify_echo_returns_echostr_for_official_vector_s1(app_factory) -> None:
    app = app_factory(CallbackMode.SAFE, token="AAAAA")
    query = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "4375120948345356249",
    }
    assert verify_echo(query=query, app=app, now=1714036504.0) == "4375120948345356249"
    assert rejection(lambda: verify_echo(query={**query, "signature": "0" * 40}, app=app, now=1714036504.0)) == (
        401,
        "bad_signature",
    )
    assert rejection(lambda: verify_echo(query=query, app=app, now=1714036504.0 + 301)) == (401, "stale_timestamp")
    no_echo = {name: value for name, value in query.items() if name != "echostr"}
    assert rejection(lambda: verify_echo(query=no_echo, app=app, now=1714036504.0)) == (401, "missing_parameter")


def test_replay_key_and_body_digest_tell_a_retry_from_a_swapped_body(sender, load_fixture) -> None:
    first = sender.plain(load_fixture("msg_text"))
    retry = sender.plain(load_fixture("msg_text"))
    swapped = sender.plain(load_fixture("msg_image"))
    assert replay_key(first.query) == replay_key(retry.query) == replay_key(swapped.query)
    assert replay_key(first.query) == f"{sender.now}:1320562132:{first.query['signature']}"
    assert body_digest(first.raw_body) == body_digest(retry.raw_body) != body_digest(swapped.raw_body)
    assert rejection(lambda: replay_key({})) == (401, "missing_parameter")


def test_safe_app_requires_a_valid_encoding_aes_key() -> None:
    with pytest.raises(ValueError):
        CallbackApp(appid="wx1", token="t", encoding_aes_key=None, mode="safe")
    with pytest.raises(ValueError):
        CallbackApp(appid="wx1", token="t", encoding_aes_key="short", mode="compat")
    with pytest.raises(ValueError):
        CallbackApp(appid="wx1", token="t", encoding_aes_key=None, mode="aes")
    assert CallbackApp(appid="wx1", token="t", encoding_aes_key=None, mode="plain").is_encrypted is False


def test_app_repr_hides_token_and_key(safe_app) -> None:
    assert safe_app.token not in repr(safe_app)
    assert str(safe_app.encoding_aes_key) not in repr(safe_app)
