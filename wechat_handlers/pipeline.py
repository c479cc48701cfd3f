"""The whole stateless inbound path of a callback: raw request in, verified ``CallbackMessage`` (or a 4xx) out."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from wechat_handlers import security
from wechat_handlers.apps import CallbackApp
from wechat_handlers.errors import CallbackRejected
from wechat_handlers.parsing import CallbackMessage, message_from_fields, parse_callback_xml

#: Longest query parameter value we hash or compare; WeChat's are 10 to 40 characters.
MAX_PARAMETER_LENGTH = 256


def open_callback(
    *,
    raw_body: bytes,
    query: Mapping[str, str],
    content_type: str | None,
    app: CallbackApp,
    now: float,
    window_s: int = security.DEFAULT_WINDOW_S,
    content_length: int | None = None,
) -> CallbackMessage:
    """Verify, decrypt and parse one callback POST.

    Order: content type and size, bytes screening, ``signature`` and timestamp window, then in compat and safe
    mode the hardened parse of the envelope, ``msg_signature`` over ``Encrypt``, decryption and the appid check,
    then the hardened parse of the message and the ``ToUserName`` check. The mode is ``app.mode``; the request's
    ``encrypt_type`` is ignored, and in compat mode the plaintext siblings of ``Encrypt`` are never read.
    Stateful checks (replay cache, inbox dedup) are the caller's: see ``replay_key`` and ``dedup_key``.

    Args:
        raw_body: The request body, read with a cap (e.g. ``request.stream.read(MAX_BODY_BYTES + 1)``).
        query: The query parameters (``signature``, ``timestamp``, ``nonce``, and ``msg_signature`` when encrypted).
        content_type: The ``Content-Type`` header, or None.
        app: The receiving account's configuration.
        now: The current time in seconds since the epoch.
        window_s: Accepted distance between ``timestamp`` and ``now``.
        content_length: The declared ``Content-Length``, if any.

    Returns:
        The verified message.

    Raises:
        CallbackRejected: With a 4xx ``status`` for every failure; nothing else escapes for any input.
    """
    security.check_content_type(content_type)
    security.check_declared_length(content_length)
    body_text = security.check_xml_bytes(raw_body)
    timestamp, nonce = _authenticate_query(query, token=app.token, now=now, window_s=window_s)
    if app.is_encrypted:
        message_xml = _decrypt_envelope(body_text, query, app=app, timestamp=timestamp, nonce=nonce)
    else:
        message_xml = body_text
    message = message_from_fields(parse_callback_xml(message_xml), raw_xml=message_xml)
    if app.original_id and message.to_user != app.original_id:
        raise CallbackRejected("to_user_mismatch")
    return message


def verify_echo(
    *, query: Mapping[str, str], app: CallbackApp, now: float, window_s: int = security.DEFAULT_WINDOW_S
) -> str:
    """Answer WeChat's GET URL verification: check the plain signature and return ``echostr`` verbatim.

    The official account signs this request with the plain ``signature`` in every mode.

    Returns:
        The ``echostr`` query parameter, to send back unchanged as ``text/plain``.

    Raises:
        CallbackRejected: 401 for a missing or wrong signature or a stale timestamp; 400 for a malformed parameter.
    """
    _authenticate_query(query, token=app.token, now=now, window_s=window_s)
    return _parameter(query, "echostr")


def replay_key(query: Mapping[str, str]) -> str:
    """The key for the caller's replay cache: timestamp, nonce and signature of a request already verified.

    The inbox stores its digest (``replay_digest``) with ``body_digest``, unique per app, in the same commit as the
    message: a later request with the same key and digest is WeChat retrying (answer ``success``), a different
    digest is a replay with a swapped body (answer 401).

    Raises:
        CallbackRejected: ``missing_parameter`` (401) or ``bad_parameter`` (400).
    """
    return ":".join(_parameter(query, name) for name in ("timestamp", "nonce", "signature"))


def replay_digest(query: Mapping[str, str]) -> str:
    """SHA-256 hex of ``replay_key(query)``: what the inbox keeps of a signed query (its parts may be long).

    Raises:
        CallbackRejected: ``missing_parameter`` (401) or ``bad_parameter`` (400).
    """
    return hashlib.sha256(replay_key(query).encode("utf-8", "surrogatepass")).hexdigest()


def body_digest(raw_body: bytes) -> str:
    """SHA-256 hex digest of the raw body, to tell a genuine retry from a replayed query with another body."""
    return hashlib.sha256(raw_body).hexdigest()


def _authenticate_query(query: Mapping[str, str], *, token: str, now: float, window_s: int) -> tuple[str, str]:
    signature = _parameter(query, "signature")
    timestamp = _parameter(query, "timestamp")
    nonce = _parameter(query, "nonce")
    security.check_signature(token=token, signature=signature, timestamp=timestamp, nonce=nonce)
    security.check_timestamp(timestamp, now=now, window_s=window_s)
    return timestamp, nonce


def _decrypt_envelope(body_text: str, query: Mapping[str, str], *, app: CallbackApp, timestamp: str, nonce: str) -> str:
    msg_signature = _parameter(query, "msg_signature")
    encrypt = parse_callback_xml(body_text).get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise CallbackRejected("missing_encrypt")
    message_bytes = app.crypto.decrypt(encrypt, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce)
    return security.check_xml_bytes(message_bytes)


def _parameter(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not isinstance(value, str) or not value:
        raise CallbackRejected("missing_parameter")
    if len(value) > MAX_PARAMETER_LENGTH:
        raise CallbackRejected("bad_parameter")
    return value
