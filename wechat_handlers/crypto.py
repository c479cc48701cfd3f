"""WeChat safe-mode message crypto: msg_signature, AES-256-CBC with 32-byte PKCS#7, and the reply envelope."""

from __future__ import annotations

import base64
import secrets
import string
import struct

from wechatpy.crypto import PrpCrypto
from wechatpy.crypto.base import WeChatCipher

from wechat_handlers.errors import CallbackRejected
from wechat_handlers.security import sha1_signature, signatures_match
from wechat_handlers.xmltext import cdata, clean_xml_text

RANDOM_PREFIX_BYTES = 16
ENCODING_AES_KEY_LENGTH = 43
#: WeChat pads to 32-byte blocks, so pad values run 1..32 (not 1..16 as AES-block PKCS#7 would have it).
PAD_BLOCK_BYTES = 32
_AES_BLOCK_BYTES = 16
_LENGTH_FIELD = struct.Struct(">I")
_PREFIX_ALPHABET = string.ascii_letters + string.digits


def aes_key_from_encoding_key(encoding_aes_key: str) -> bytes:
    """Decode the 43-character EncodingAESKey from the MP backend into the 32-byte AES key.

    Raises:
        ValueError: The key is not 43 letters and digits. This is a configuration error, not a request error.
    """
    if (
        not isinstance(encoding_aes_key, str)
        or len(encoding_aes_key) != ENCODING_AES_KEY_LENGTH
        or not (encoding_aes_key.isascii() and encoding_aes_key.isalnum())
    ):
        raise ValueError("EncodingAESKey must be 43 ASCII letters and digits")
    return base64.b64decode(encoding_aes_key + "=", validate=True)


def new_random_prefix() -> bytes:
    """Return 16 random letters and digits from a CSPRNG, the shape WeChat's own samples use."""
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(RANDOM_PREFIX_BYTES)).encode("ascii")


class _FixedPrefixPrpCrypto(PrpCrypto):
    """wechatpy's encryptor with our prefix instead of its ``random.sample`` one (not a CSPRNG)."""

    def __init__(self, key: bytes, prefix: bytes) -> None:
        super().__init__(key)
        self._prefix = prefix

    def get_random_string(self) -> bytes:
        return self._prefix


class MessageCrypto:
    """Encrypts and decrypts WeChat messages for one app (token, EncodingAESKey, appid).

    Decryption verifies ``msg_signature`` in constant time before touching the ciphertext, validates the padding
    and the length field, and checks the trailing appid. Every failure is a ``CallbackRejected``.
    """

    def __init__(self, *, token: str, encoding_aes_key: str, appid: str) -> None:
        self._token = token
        self._appid = appid
        self._key = aes_key_from_encoding_key(encoding_aes_key)
        # wechatpy's cipher is AES-256-CBC with IV = key[:16], exactly WeChat's scheme.
        self._cipher = WeChatCipher(self._key)

    def __repr__(self) -> str:
        return f"MessageCrypto(appid={self._appid!r})"

    def sign(self, *, timestamp: str, nonce: str, encrypt: str) -> str:
        """Compute ``msg_signature`` = sha1(sorted(token, timestamp, nonce, Encrypt))."""
        return sha1_signature(self._token, timestamp, nonce, encrypt)

    def decrypt(self, encrypt: str, *, msg_signature: str, timestamp: str, nonce: str) -> bytes:
        """Verify ``msg_signature`` over ``encrypt``, then decrypt it and check the appid inside.

        Args:
            encrypt: The text of the ``Encrypt`` element, exactly as received.
            msg_signature: The ``msg_signature`` query parameter.
            timestamp: The ``timestamp`` query parameter.
            nonce: The ``nonce`` query parameter.

        Returns:
            The decrypted message bytes (UTF-8 XML, not yet screened or parsed).

        Raises:
            CallbackRejected: ``bad_msg_signature`` (403), ``bad_ciphertext`` (400), ``appid_mismatch`` (403).
        """
        if not signatures_match(self.sign(timestamp=timestamp, nonce=nonce, encrypt=encrypt), msg_signature):
            raise CallbackRejected("bad_msg_signature")
        try:
            ciphertext = base64.b64decode(encrypt, validate=True)
        except ValueError:  # binascii.Error is a ValueError; so is non-ASCII input
            raise CallbackRejected("bad_ciphertext") from None
        return self._open(ciphertext)

    def _open(self, ciphertext: bytes) -> bytes:
        if not ciphertext or len(ciphertext) % _AES_BLOCK_BYTES:
            raise CallbackRejected("bad_ciphertext")
        try:
            padded = self._cipher.decrypt(ciphertext)
        except ValueError:
            raise CallbackRejected("bad_ciphertext") from None
        plaintext = _strip_padding(padded)
        header = RANDOM_PREFIX_BYTES + _LENGTH_FIELD.size
        if len(plaintext) < header:
            raise CallbackRejected("bad_ciphertext")
        (message_length,) = _LENGTH_FIELD.unpack_from(plaintext, RANDOM_PREFIX_BYTES)
        message_end = header + message_length
        if message_end > len(plaintext):
            raise CallbackRejected("bad_ciphertext")
        if plaintext[message_end:] != self._appid.encode("utf-8"):
            raise CallbackRejected("appid_mismatch")
        return plaintext[header:message_end]

    def encrypt(self, plaintext: str | bytes, *, random_prefix: bytes | None = None) -> str:
        """Encrypt a message into WeChat's base64 ``Encrypt`` text, with our appid at the end.

        Args:
            plaintext: The XML to encrypt (str is encoded as UTF-8).
            random_prefix: 16 bytes to use instead of a fresh random prefix; only for deterministic tests.

        Returns:
            The base64 ciphertext.
        """
        prefix = new_random_prefix() if random_prefix is None else random_prefix
        if len(prefix) != RANDOM_PREFIX_BYTES:
            raise ValueError("the random prefix must be 16 bytes")
        encrypted: bytes = _FixedPrefixPrpCrypto(self._key, prefix).encrypt(plaintext, self._appid)
        return encrypted.decode("ascii")

    def encrypt_reply(self, xml: str, *, nonce: str, timestamp: int | str, random_prefix: bytes | None = None) -> str:
        """Wrap a passive reply in WeChat's encrypted envelope (Encrypt, MsgSignature, TimeStamp, Nonce).

        Args:
            xml: The reply XML to encrypt.
            nonce: The nonce to sign with and echo; the request's nonce or a fresh one.
            timestamp: Seconds since the epoch, as int or digit string.
            random_prefix: 16 bytes to use instead of a fresh random prefix; only for deterministic tests.

        Returns:
            The envelope XML to send as the response body.

        Raises:
            ValueError: The timestamp is not a non-negative integer, or the nonce holds characters XML cannot carry.
        """
        timestamp_text = str(timestamp)
        if not (timestamp_text.isascii() and timestamp_text.isdigit()):
            raise ValueError("timestamp must be a non-negative integer")
        if not nonce or clean_xml_text(nonce) != nonce:
            raise ValueError("nonce must be non-empty XML text")
        encrypt = self.encrypt(xml, random_prefix=random_prefix)
        msg_signature = self.sign(timestamp=timestamp_text, nonce=nonce, encrypt=encrypt)
        return (
            "<xml>\n"
            f"<Encrypt>{cdata(encrypt)}</Encrypt>\n"
            f"<MsgSignature>{cdata(msg_signature)}</MsgSignature>\n"
            f"<TimeStamp>{timestamp_text}</TimeStamp>\n"
            f"<Nonce>{cdata(nonce)}</Nonce>\n"
            "</xml>"
        )


def _strip_padding(padded: bytes) -> bytes:
    # wechatpy 1.8.18 slices off plaintext[-1] bytes without checking the value, so pad 0 crashes it with
    # struct.error and a forged pad eats into the message; validate 1..32 and every pad byte here instead.
    pad = padded[-1]
    if not 1 <= pad <= PAD_BLOCK_BYTES or pad > len(padded) or padded[-pad:] != bytes((pad,)) * pad:
        raise CallbackRejected("bad_ciphertext")
    return padded[:-pad]
