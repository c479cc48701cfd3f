"""Checks on a callback request that run before any XML is parsed: size, bytes, content type, signature, clock."""

from __future__ import annotations

import hashlib
import hmac
import re

from wechat_handlers.errors import CallbackRejected

#: WeChat packets are a few KiB at most; anything larger is refused unread.
MAX_BODY_BYTES = 64 * 1024
#: Default freshness window for the ``timestamp`` query parameter (WeChat documents none; Stripe uses 300 s).
DEFAULT_WINDOW_S = 300
XML_CONTENT_TYPES = frozenset({"text/xml", "application/xml"})

_CDATA_OPEN = "<![CDATA["
_CDATA_CLOSE = "]]>"
# Markup WeChat never sends outside CDATA. Entity and element declarations can only live inside a DOCTYPE,
# and a namespace declaration is the only way to reach XInclude, so refusing these closes whole attack classes.
_FORBIDDEN_MARKUP = re.compile(
    r"(?P<doctype><!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST|<!NOTATION)"
    r"|(?P<pi><\?xml-stylesheet)"
    r"|(?P<namespace>xmlns|XInclude)",
    re.IGNORECASE,
)
_CODE_BY_GROUP = {
    "doctype": "doctype_forbidden",
    "pi": "processing_instruction_forbidden",
    "namespace": "namespace_forbidden",
}


def sha1_signature(*values: str) -> str:
    """Compute WeChat's signature: SHA-1 of the values sorted lexicographically and joined, as lowercase hex.

    Args:
        *values: The token, timestamp and nonce, plus ``Encrypt`` for a ``msg_signature``.

    Returns:
        40 lowercase hex characters.
    """
    joined = "".join(sorted(values))
    # surrogatepass keeps the encoding total and injective for any str a caller may hand us.
    return hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324 (WeChat's algorithm)


def signatures_match(expected: str, provided: str) -> bool:
    """Compare two signatures in constant time; any string (even non-ASCII) is accepted."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), provided.encode("utf-8", "surrogatepass"))


def check_signature(*, token: str, signature: str, timestamp: str, nonce: str) -> None:
    """Verify the plain ``signature`` query parameter (token, timestamp and nonce only; never the body).

    Raises:
        CallbackRejected: ``bad_signature`` (401).
    """
    if not signatures_match(sha1_signature(token, timestamp, nonce), signature):
        raise CallbackRejected("bad_signature")


def check_timestamp(timestamp: str, *, now: float, window_s: int) -> int:
    """Parse the ``timestamp`` query parameter and require it within ``window_s`` seconds of ``now``.

    Returns:
        The timestamp as an int.

    Raises:
        CallbackRejected: ``bad_timestamp`` or ``stale_timestamp`` (401).
    """
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise CallbackRejected("bad_timestamp")
    value = int(timestamp)
    if abs(now - value) > window_s:
        raise CallbackRejected("stale_timestamp")
    return value


def check_content_type(content_type: str | None) -> None:
    """Accept an XML media type (parameters such as charset are ignored) or no content type at all.

    Raises:
        CallbackRejected: ``unsupported_media_type`` (415).
    """
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type not in XML_CONTENT_TYPES:
        raise CallbackRejected("unsupported_media_type")


def check_declared_length(content_length: int | None, *, limit: int = MAX_BODY_BYTES) -> None:
    """Refuse a request whose declared ``Content-Length`` is over ``limit``, before the body is read.

    Raises:
        CallbackRejected: ``body_too_large`` (413).
    """
    if content_length is not None and content_length > limit:
        raise CallbackRejected("body_too_large")


def check_xml_bytes(data: bytes, *, limit: int = MAX_BODY_BYTES) -> str:
    """Screen raw XML bytes (a request body, or a decrypted message) before any parser sees them.

    Size, NUL bytes and UTF-8 are checked on the bytes. DTD, entity, stylesheet and namespace markup is looked
    for outside CDATA sections only, because users' own text (which WeChat always wraps in CDATA) may quote such
    markup harmlessly. The hardened parser refuses the same constructs structurally, so this is a fast first
    line, not the only one.

    Args:
        data: The bytes to screen.
        limit: Maximum size in bytes.

    Returns:
        The bytes decoded as UTF-8.

    Raises:
        CallbackRejected: ``body_too_large`` (413), or ``nul_byte``, ``invalid_utf8``, ``doctype_forbidden``,
            ``processing_instruction_forbidden``, ``namespace_forbidden`` (400).
    """
    if len(data) > limit:
        raise CallbackRejected("body_too_large")
    if b"\x00" in data:
        raise CallbackRejected("nul_byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackRejected("invalid_utf8") from None
    forbidden = _FORBIDDEN_MARKUP.search(_markup_outside_cdata(text))
    if forbidden is not None:
        raise CallbackRejected(_CODE_BY_GROUP[forbidden.lastgroup or "doctype"])
    return text


def _markup_outside_cdata(text: str) -> str:
    # A linear scan with str.find: a regex such as <!\[CDATA\[.*?]]> is quadratic on many unterminated openers.
    pieces: list[str] = []
    position = 0
    while True:
        start = text.find(_CDATA_OPEN, position)
        if start < 0:
            pieces.append(text[position:])
            break
        pieces.append(text[position:start])
        end = text.find(_CDATA_CLOSE, start + len(_CDATA_OPEN))
        if end < 0:
            # An unterminated section hides nothing: keep the rest visible to the scan.
            pieces.append(text[start:])
            break
        position = end + len(_CDATA_CLOSE)
    return "".join(pieces)
