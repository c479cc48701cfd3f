"""Tests for safe-mode crypto against the official vectors, the 32-byte padding and wechatpy interoperability."""

from __future__ import annotations

import base64
import struct

import pytest
import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.crypto.base import WeChatCipher

from wechat_handlers.apps import CallbackApp
from wechat_handlers.crypto import MessageCrypto, aes_key_from_encoding_key, new_random_prefix
from wechat_handlers.errors import CallbackRejected
from wechat_handlers.pipeline import open_callback
from wechat_handlers.security import sha1_signature

# V1: Tencent's official Python sample (Sample.py), a compatible-mode text message.
V1_TOKEN = "spamtest"
V1_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
V1_APPID = "wx2c2769f8efd9abc2"
V1_TIMESTAMP = "1409735669"
V1_NONCE = "1320562132"
V1_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
V1_AES_KEY_HEX = "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
V1_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9Fr"
    "XpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+W"
    "GzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0E"
    "IBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
V1_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n"
    "</xml>"
)

# V2: Tencent's official Java sample test (WXBizMsgCryptTest.java), deterministic encryption.
V2_TOKEN = "pamtest"
V2_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
V2_APPID = "wxb11529c136998cb6"
V2_RANDOM = b"aaaabbbbccccdddd"
V2_TIMESTAMP = "1409304348"
V2_NONCE = "xxxxxx"
V2A_PLAINTEXT = "我是中文abcd123"
V2A_ENCRYPT = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
V2A_MSG_SIGNATURE = "82c962d39941aa48552f90ef55aa323dc620cc10"


@pytest.fixture
def v1() -> MessageCrypto:
    return MessageCrypto(token=V1_TOKEN, encoding_aes_key=V1_KEY, appid=V1_APPID)


@pytest.fixture
def v2() -> MessageCrypto:
    return MessageCrypto(token=V2_TOKEN, encoding_aes_key=V2_KEY, appid=V2_APPID)


def test_aes_key_matches_v1() -> None:
    assert aes_key_from_encoding_key(V1_KEY).hex() == V1_AES_KEY_HEX


@pytest.mark.parametrize("key", ["", V1_KEY[:-1], V1_KEY + "A", V1_KEY[:-1] + "=", V1_KEY[:-1] + "é"])
def test_malformed_encoding_aes_key_is_a_configuration_error(key: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        MessageCrypto(token="t", encoding_aes_key=key, appid="wx")


def test_v1_msg_signature_and_exact_plaintext(v1: MessageCrypto) -> None:
    assert v1.sign(timestamp=V1_TIMESTAMP, nonce=V1_NONCE, encrypt=V1_ENCRYPT) == V1_MSG_SIGNATURE
    message = v1.decrypt(V1_ENCRYPT, msg_signature=V1_MSG_SIGNATURE, timestamp=V1_TIMESTAMP, nonce=V1_NONCE)
    assert message.decode("utf-8") == V1_PLAINTEXT


def test_v1_layout_is_prefix_length_message_appid_and_pad() -> None:
    padded = WeChatCipher(aes_key_from_encoding_key(V1_KEY)).decrypt(base64.b64decode(V1_ENCRYPT))
    assert padded[:16] == b"89465c840c5f116f"
    assert struct.unpack(">I", padded[16:20]) == (280,)
    assert padded[-1] == 2
    assert padded[-2:] == b"\x02\x02"
    assert padded[20 + 280 : -2] == V1_APPID.encode()


def test_v2a_encrypts_byte_for_byte(v2: MessageCrypto) -> None:
    encrypt = v2.encrypt(V2A_PLAINTEXT, random_prefix=V2_RANDOM)
    assert encrypt == V2A_ENCRYPT
    assert v2.sign(timestamp=V2_TIMESTAMP, nonce=V2_NONCE, encrypt=encrypt) == V2A_MSG_SIGNATURE


def test_v2a_decrypts_back(v2: MessageCrypto) -> None:
    message = v2.decrypt(V2A_ENCRYPT, msg_signature=V2A_MSG_SIGNATURE, timestamp=V2_TIMESTAMP, nonce=V2_NONCE)
    assert message.decode("utf-8") == V2A_PLAINTEXT


def test_v2a_with_wrong_appid_fails_the_appid_check() -> None:
    wrong = MessageCrypto(token=V2_TOKEN, encoding_aes_key=V2_KEY, appid="wx_wrong")
    with pytest.raises(CallbackRejected) as rejected:
        wrong.decrypt(V2A_ENCRYPT, msg_signature=V2A_MSG_SIGNATURE, timestamp=V2_TIMESTAMP, nonce=V2_NONCE)
    assert (rejected.value.status, rejected.value.code) == (403, "appid_mismatch")


def test_v2a_encrypt_reply_envelope_is_deterministic(v2: MessageCrypto) -> None:
    envelope = v2.encrypt_reply(V2A_PLAINTEXT, nonce=V2_NONCE, timestamp=V2_TIMESTAMP, random_prefix=V2_RANDOM)
    assert envelope == (
        "<xml>\n"
        f"<Encrypt><![CDATA[{V2A_ENCRYPT}]]></Encrypt>\n"
        f"<MsgSignature><![CDATA[{V2A_MSG_SIGNATURE}]]></MsgSignature>\n"
        f"<TimeStamp>{V2_TIMESTAMP}</TimeStamp>\n"
        f"<Nonce><![CDATA[{V2_NONCE}]]></Nonce>\n"
        "</xml>"
    )


def test_wrong_msg_signature_is_403_before_decrypting(v1: MessageCrypto) -> None:
    with pytest.raises(CallbackRejected) as rejected:
        v1.decrypt(V1_ENCRYPT, msg_signature=V1_MSG_SIGNATURE[:-1] + "0", timestamp=V1_TIMESTAMP, nonce=V1_NONCE)
    assert (rejected.value.status, rejected.value.code) == (403, "bad_msg_signature")


@pytest.mark.parametrize(
    "encrypt",
    [
        "!!!not base64!!!",
        "AAAA",
        "QUJD",
        "é",
        base64.b64encode(b"\x00" * 15).decode(),
        base64.b64encode(b"x" * 32).decode(),
    ],
)
def test_garbage_with_a_valid_msg_signature_is_a_controlled_400(v1: MessageCrypto, encrypt: str) -> None:
    signature = v1.sign(timestamp=V1_TIMESTAMP, nonce=V1_NONCE, encrypt=encrypt)
    with pytest.raises(CallbackRejected) as rejected:
        v1.decrypt(encrypt, msg_signature=signature, timestamp=V1_TIMESTAMP, nonce=V1_NONCE)
    assert rejected.value.status in {400, 403}


def _seal(plaintext: bytes, key: str = V1_KEY) -> str:
    """Encrypt an exact padded plaintext with the bare AES step, so tests choose the pad bytes themselves."""
    return base64.b64encode(WeChatCipher(aes_key_from_encoding_key(key)).encrypt(plaintext)).decode()


def _layout(message: bytes, appid: str = V1_APPID) -> bytes:
    return b"0123456789abcdef" + struct.pack(">I", len(message)) + message + appid.encode()


def _message_with_pad(pad: int) -> bytes:
    # Grow the message until WeChat's 32-byte block padding comes out at exactly ``pad``.
    for filler in range(64):
        message = b"<xml>" + b"a" * filler + b"</xml>"
        if 32 - len(_layout(message)) % 32 == pad:
            return message
    raise AssertionError(pad)


@pytest.mark.parametrize("pad", [17, 25, 32])
def test_message_padded_above_16_decrypts(v1: MessageCrypto, pad: int) -> None:
    message = _message_with_pad(pad)
    encrypt = _seal(_layout(message) + bytes([pad]) * pad)
    signature = v1.sign(timestamp=V1_TIMESTAMP, nonce=V1_NONCE, encrypt=encrypt)
    assert v1.decrypt(encrypt, msg_signature=signature, timestamp=V1_TIMESTAMP, nonce=V1_NONCE) == message


def test_wechatpy_1_8_18_strips_pads_above_16_but_validates_nothing() -> None:
    # Pins what our own unpadding replaces: pad 25 works in wechatpy, pad 0 crashes it with struct.error.
    key = aes_key_from_encoding_key(V1_KEY)
    message = _message_with_pad(25)
    assert PrpCrypto(key).decrypt(_seal(_layout(message) + bytes([25]) * 25), V1_APPID) == message.decode()
    with pytest.raises(struct.error):
        PrpCrypto(key).decrypt(_seal(_layout(message) + bytes([25]) * 24 + b"\x00"), V1_APPID)


@pytest.mark.parametrize(
    "tail",
    [b"\x00", b"\x21", b"\xff", b"\x07\x19"],
    ids=["pad-0", "pad-33", "pad-255", "inconsistent-pad-bytes"],
)
def test_invalid_padding_is_bad_ciphertext(v1: MessageCrypto, tail: bytes) -> None:
    message = _message_with_pad(25)
    encrypt = _seal(_layout(message) + bytes([25]) * (25 - len(tail)) + tail)
    signature = v1.sign(timestamp=V1_TIMESTAMP, nonce=V1_NONCE, encrypt=encrypt)
    with pytest.raises(CallbackRejected) as rejected:
        v1.decrypt(encrypt, msg_signature=signature, timestamp=V1_TIMESTAMP, nonce=V1_NONCE)
    assert rejected.value.code == "bad_ciphertext"


def test_length_field_beyond_the_plaintext_is_bad_ciphertext(v1: MessageCrypto) -> None:
    body = b"0123456789abcdef" + struct.pack(">I", 10_000) + b"<xml/>" + V1_APPID.encode()
    pad = 32 - len(body) % 32
    encrypt = _seal(body + bytes([pad]) * pad)
    signature = v1.sign(timestamp=V1_TIMESTAMP, nonce=V1_NONCE, encrypt=encrypt)
    with pytest.raises(CallbackRejected) as rejected:
        v1.decrypt(encrypt, msg_signature=signature, timestamp=V1_TIMESTAMP, nonce=V1_NONCE)
    assert rejected.value.code == "bad_ciphertext"


def test_encrypted_reply_decrypts_with_wechatpy_to_the_same_xml(v1: MessageCrypto) -> None:
    reply = "<xml><Content><![CDATA[你好 ]]]]><![CDATA[>]]></Content></xml>"
    envelope = v1.encrypt_reply(reply, nonce=V1_NONCE, timestamp=V1_TIMESTAMP)
    signature = xmltodict.parse(envelope)["xml"]["MsgSignature"]
    decrypted = WeChatCrypto(V1_TOKEN, V1_KEY, V1_APPID).decrypt_message(envelope, signature, V1_TIMESTAMP, V1_NONCE)
    assert decrypted == reply


def test_message_encrypted_by_wechatpy_decrypts_with_ours(v1: MessageCrypto) -> None:
    envelope = WeChatCrypto(V1_TOKEN, V1_KEY, V1_APPID).encrypt_message(V1_PLAINTEXT, V1_NONCE, V1_TIMESTAMP)
    fields = xmltodict.parse(envelope)["xml"]
    decrypted = v1.decrypt(
        fields["Encrypt"], msg_signature=fields["MsgSignature"], timestamp=V1_TIMESTAMP, nonce=V1_NONCE
    )
    assert decrypted.decode("utf-8") == V1_PLAINTEXT


def test_random_prefix_comes_from_a_csprng_and_differs_per_message(v1: MessageCrypto) -> None:
    prefixes = {new_random_prefix() for _ in range(50)}
    assert len(prefixes) == 50
    assert all(len(prefix) == 16 and prefix.isalnum() for prefix in prefixes)
    assert v1.encrypt("<xml/>") != v1.encrypt("<xml/>")


@pytest.mark.parametrize(("nonce", "timestamp"), [("ok", "-1"), ("ok", "1.5"), ("", "1"), ("a\x00b", "1")])
def test_reply_envelope_refuses_unsafe_nonce_or_timestamp(v1: MessageCrypto, nonce: str, timestamp: str) -> None:
    with pytest.raises(ValueError):
        v1.encrypt_reply("<xml/>", nonce=nonce, timestamp=timestamp)


def test_repr_never_shows_the_token_or_key(v1: MessageCrypto) -> None:
    assert V1_TOKEN not in repr(v1)
    assert V1_KEY not in repr(v1)


def test_v1_compat_body_opens_through_the_pipeline() -> None:
    app = CallbackApp(
        appid=V1_APPID, token=V1_TOKEN, encoding_aes_key=V1_KEY, mode="compat", original_id="gh_10f6c3c3ac5a"
    )
    body = (
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
        "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId>"
        f"<Encrypt><![CDATA[{V1_ENCRYPT}]]></Encrypt></xml>"
    )
    query = {
        "signature": sha1_signature(V1_TOKEN, V1_TIMESTAMP, V1_NONCE),
        "timestamp": V1_TIMESTAMP,
        "nonce": V1_NONCE,
        "openid": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        "encrypt_type": "aes",
        "msg_signature": V1_MSG_SIGNATURE,
    }
    message = open_callback(
        raw_body=body.encode(), query=query, content_type="text/xml", app=app, now=float(V1_TIMESTAMP), window_s=300
    )
    assert message.raw_xml == V1_PLAINTEXT
    assert (message.from_user, message.create_time, message.msg_type, message.msg_id) == (
        "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        1409735668,
        "text",
        "6054768590064713728",
    )
    assert message.fields["Content"] == "abcdteT"
