"""The sandbox's message endpoints: template, subscription (OA and mini-program) and customer-service messages."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint

from scrm.wechat.sandbox.api_support import authenticated_app, json_body, ok, sandbox_state
from scrm.wechat.sandbox.models import SandboxApiError, SandboxApp
from scrm.wechat.sandbox.state import CLIENT_MSG_ID_WINDOW_S

bp = Blueprint("sandbox_messages_api", __name__)

_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Since 2023-05-04 template keyword values are cut at 20 characters, silently.
TEMPLATE_VALUE_CHARS = 20
#: Subscription-message keyword types and their maximum lengths; a longer value is refused with 47003.
SUBSCRIBE_KEYWORD_LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phone_number": 17,
    "car_number": 8,
    "name": 20,
    "phrase": 5,
    "amount": 11,
}
MINIPROGRAM_STATES = ("developer", "trial", "formal")


def _keyword_values(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not data:
        raise SandboxApiError(47003)
    values = {}
    for keyword, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise SandboxApiError(47003)
        values[keyword] = entry["value"]
    return values


def _template_id(body: dict[str, Any]) -> str:
    template_id = body.get("template_id")
    if not isinstance(template_id, str) or not _TEMPLATE_ID.match(template_id):
        raise SandboxApiError(40037)
    return template_id


@bp.post("/cgi-bin/message/template/send")
def send_template() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    body = json_body()
    openid = body.get("touser", "")
    user = state.user_by_openid(app.appid, openid)
    template_id = _template_id(body)
    values = _keyword_values(body.get("data"))
    client_msg_id = body.get("client_msg_id")
    with state.lock:
        relation = user.follows.get(app.appid)
        if relation is None or not relation.subscribed:
            raise SandboxApiError(43004)
        now = state.clock()
        dedup_key = (app.appid, openid, str(client_msg_id))
        if client_msg_id:
            previous = state.template_dedup.get(dedup_key)
            if previous is not None and now - previous[1] < CLIENT_MSG_ID_WINDOW_S:
                return ok(msgid=previous[0])  # same openid + client_msg_id within 10 minutes: sent once
        sent = {
            "template_id": template_id,
            "data": {keyword: value[:TEMPLATE_VALUE_CHARS] for keyword, value in values.items()},
            "url": body.get("url"),
            "miniprogram": body.get("miniprogram"),
            "client_msg_id": client_msg_id,
        }
        msgid = state.record_message("template", app, user, openid, sent)
        if client_msg_id:
            state.template_dedup[dedup_key] = (msgid, now)
    return ok(msgid=msgid)


def _send_subscribe(app: SandboxApp, body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    state = sandbox_state()
    openid = body.get("touser", "")
    user = state.user_by_openid(app.appid, openid)
    template_id = _template_id(body)
    values = _keyword_values(body.get("data"))
    for keyword, value in values.items():
        limit = SUBSCRIBE_KEYWORD_LIMITS.get(keyword.rstrip("0123456789"))
        if limit is not None and len(value) > limit:
            raise SandboxApiError(47003, f"argument invalid! data.{keyword}.value")
    with state.lock:
        grant_key = (app.appid, template_id)
        if user.subscribe_grants[grant_key] <= 0:
            raise SandboxApiError(43101)
        user.subscribe_grants[grant_key] -= 1
        sent = {"template_id": template_id, "data": values, "page": body.get("page"), **extra}
        msgid = state.record_message("subscribe", app, user, openid, sent)
    return ok(msgid=msgid)


@bp.post("/cgi-bin/message/subscribe/bizsend")
def send_oa_subscribe_message() -> dict[str, Any]:
    app = authenticated_app("oa")
    body = json_body()
    return _send_subscribe(app, body, {"miniprogram": body.get("miniprogram")})


@bp.post("/cgi-bin/message/subscribe/send")
def send_miniprogram_subscribe_message() -> dict[str, Any]:
    app = authenticated_app("miniprogram")
    body = json_body()
    miniprogram_state = body.get("miniprogram_state", "formal")
    if miniprogram_state not in MINIPROGRAM_STATES:
        raise SandboxApiError(47003, "argument invalid! miniprogram_state")
    return _send_subscribe(app, body, {"miniprogram_state": miniprogram_state, "lang": body.get("lang", "zh_CN")})


@bp.post("/cgi-bin/message/custom/send")
def send_custom_message() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    body = json_body()
    openid = body.get("touser", "")
    user = state.user_by_openid(app.appid, openid)
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or not isinstance(body.get(msgtype), dict):
        raise SandboxApiError(47001)
    if msgtype == "text" and not body["text"].get("content"):
        raise SandboxApiError(47003)
    with state.lock:
        relation = user.follows.get(app.appid)
        if relation is None or not relation.subscribed or state.clock() >= relation.window_expires_at:
            raise SandboxApiError(45015)
        if relation.window_sends_left <= 0:
            raise SandboxApiError(45047)
        relation.window_sends_left -= 1
        state.record_message("custom", app, user, openid, {"msgtype": msgtype, msgtype: body[msgtype]})
    return ok()
