"""Callbacks from the sandbox to the service, signed and encrypted exactly as WeChat's servers post them."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any, Union

import requests
import xmltodict
from wechatpy.crypto import WeChatCrypto

from scrm.wechat.sandbox.models import SandboxApp

log = logging.getLogger("scrm.wechat.sandbox")

#: An XML element: a name and its text, number, or child elements.
XmlField = tuple[str, Union[str, int, "Sequence[XmlField]"]]


def build_xml(fields: Sequence[XmlField]) -> str:
    """Render fields as WeChat's message XML: text in CDATA, numbers bare, nested lists as child elements."""
    return f"<xml>{_render(fields)}</xml>"


def _render(fields: Sequence[XmlField]) -> str:
    parts = []
    for name, value in fields:
        if isinstance(value, bool):
            raise TypeError(f"{name}: booleans have no WeChat XML form")
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        elif isinstance(value, str):
            # "]]>" cannot appear inside CDATA: close the section after "]]" and reopen it before ">".
            parts.append(f"<{name}><![CDATA[{value.replace(']]>', ']]]]><![CDATA[>')}]]></{name}>")
        else:
            parts.append(f"<{name}>{_render(value)}</{name}>")
    return "".join(parts)


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted values joined without separators."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's protocol is SHA-1


def encode_callback(
    app: SandboxApp, fields: Sequence[XmlField], *, openid: str, timestamp: str, nonce: str
) -> tuple[dict[str, str], str, str]:
    """Build the query and body WeChat would post for ``fields`` in the app's mode.

    Returns:
        ``(query, body, plaintext_xml)``.

    Raises:
        ValueError: the app lacks the token (or, for safe/compat, the AES key) its mode needs.
    """
    if not app.token:
        raise ValueError(f"{app.appid} has no callback token configured")
    plaintext = build_xml(fields)
    query = {"signature": sign(app.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": openid}
    if app.mode == "plain":
        return query, plaintext, plaintext
    if not app.encoding_aes_key:
        raise ValueError(f"{app.appid} is in {app.mode} mode but has no EncodingAESKey")
    crypto = WeChatCrypto(app.token, app.encoding_aes_key, app.appid)
    # wechatpy renders an encrypted *reply*; the Encrypt value and its signature are exactly what a callback
    # carries too, only wrapped differently.
    envelope = xmltodict.parse(crypto.encrypt_message(plaintext, nonce, timestamp))["xml"]
    encrypted = envelope["Encrypt"]
    query.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
    if app.mode == "safe":
        body = build_xml([("ToUserName", app.original_id or ""), ("Encrypt", encrypted)])
    else:  # compat: the plaintext fields travel beside Encrypt, covered by no signature
        body = build_xml([*fields, ("Encrypt", encrypted)])
    return query, body, plaintext


def read_reply(app: SandboxApp, body: str) -> dict[str, Any]:
    """Describe the service's reply: an acknowledgement, a plain reply, or an encrypted reply and its plaintext."""
    reply: dict[str, Any] = {"body": body, "acknowledged": body in ("", "success"), "plaintext": None, "error": None}
    if reply["acknowledged"] or "<Encrypt>" not in body:
        if not reply["acknowledged"]:
            reply["plaintext"] = body
        return reply
    try:
        envelope = xmltodict.parse(body)["xml"]
        crypto = WeChatCrypto(app.token, app.encoding_aes_key, app.appid)
        reply["plaintext"] = crypto.decrypt_message(
            body, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
        )
    except Exception as error:  # wechatpy raises anything from ValueError to binascii.Error on a bad reply
        reply["error"] = f"the reply could not be decrypted ({type(error).__name__})"
    return reply


class CallbackPoster:
    """Posts a callback and retries it the way WeChat does when the service does not answer in time."""

    def __init__(self) -> None:
        self._http = requests.Session()

    def deliver(
        self,
        app: SandboxApp,
        fields: Sequence[XmlField],
        *,
        url: str | None,
        openid: str,
        timeout_s: float,
        attempts: int,
    ) -> dict[str, Any]:
        """Post the event (or message) to ``url`` and report what happened.

        Every attempt sends the same query and body. A try that gets no answer within ``timeout_s`` (or cannot
        connect) is repeated, up to ``attempts`` tries in all; an answer of any HTTP status ends the delivery.

        Returns:
            ``{"url", "query", "body", "plaintext", "attempts": [...], "delivered", "reply"}``.
        """
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        report: dict[str, Any] = {"url": url, "attempts": [], "delivered": False, "reply": None}
        try:
            query, body, plaintext = encode_callback(app, fields, openid=openid, timestamp=timestamp, nonce=nonce)
        except ValueError as error:
            report["error"] = str(error)
            return report
        report.update(query=query, body=body, plaintext=plaintext)
        if url is None:
            report["error"] = "no target_url configured: nothing was posted"
            return report
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            outcome: dict[str, Any] = {"attempt": attempt, "status": None, "error": None}
            try:
                response = self._http.post(
                    url,
                    params=query,
                    data=body.encode("utf-8"),
                    headers={"Content-Type": "text/xml"},
                    timeout=(timeout_s, timeout_s),
                )
            except requests.Timeout:
                outcome["error"] = "timeout"
            except requests.RequestException as error:
                outcome["error"] = f"connection failed ({type(error).__name__})"
            else:
                outcome["status"] = response.status_code
                report["delivered"] = True
                report["reply"] = {"status": response.status_code, **read_reply(app, response.text)}
            outcome["elapsed_ms"] = round((time.monotonic() - started) * 1000)
            report["attempts"].append(outcome)
            if report["delivered"]:
                break
        log.info(
            "sandbox callback for %s: %d attempt(s), delivered=%s",
            app.appid,
            len(report["attempts"]),
            report["delivered"],
        )
        return report
