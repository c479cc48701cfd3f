"""Acting as a WeChat user in the sandbox: each action changes state and yields the callback WeChat would post."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from scrm.wechat.sandbox.callbacks import XmlField
from scrm.wechat.sandbox.models import SandboxApp, SandboxUser
from scrm.wechat.sandbox.state import SandboxState

#: Customer-service windows (since 2023-06): a message opens 5 sends for 48 h; follow, scan or click 3 for 1 min.
MESSAGE_WINDOW = (48 * 3600, 5)
ACTION_WINDOW = (60, 3)


class ControlError(Exception):
    """A control-API request the sandbox cannot carry out; answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(status, message)


@dataclass
class UserAction:
    """What a user action produced: the callback to post (if any) and a summary for the control API's answer."""

    app: SandboxApp
    openid: str
    callback_fields: list[XmlField] | None
    summary: dict[str, Any] = field(default_factory=dict)


def get_user(state: SandboxState, user_id: str) -> SandboxUser:
    with state.lock:
        user = state.users.get(user_id)
    if user is None:
        raise ControlError(404, f"no sandbox user {user_id!r}")
    return user


def get_app(state: SandboxState, appid: str | None, kind: str) -> SandboxApp:
    app = state.find_app(appid)
    if app is None:
        raise ControlError(404, f"no sandbox app {appid!r}")
    if app.kind != kind:
        raise ControlError(400, f"{app.appid} is not {'an official account' if kind == 'oa' else 'a mini-program'}")
    return app


def _event(app: SandboxApp, openid: str, event: str, *extra: XmlField) -> list[XmlField]:
    # CreateTime is real time, not the sandbox clock: the service checks it against its own clock.
    return [
        ("ToUserName", app.original_id or ""),
        ("FromUserName", openid),
        ("CreateTime", int(time.time())),
        ("MsgType", "event"),
        ("Event", event),
        *extra,
    ]


def follow(state: SandboxState, user_id: str, appid: str, *, subscribe_scene: str = "ADD_SCENE_SEARCH") -> UserAction:
    """Follow an official account directly (search, profile card…): a ``subscribe`` event without a scene."""
    user, app = get_user(state, user_id), get_app(state, appid, "oa")
    openid = state.openid_for(user, app.appid)
    with state.lock:
        relation = user.follow(app.appid)
        if relation.subscribed:
            return UserAction(app, openid, None, {"already_following": True})
        now = state.clock()
        relation.subscribed, relation.subscribe_time, relation.subscribe_scene = True, int(now), subscribe_scene
        relation.qr_scene, relation.qr_scene_str = 0, ""
        state.open_window(relation, now, seconds=ACTION_WINDOW[0], sends=ACTION_WINDOW[1])
    return UserAction(app, openid, _event(app, openid, "subscribe", ("EventKey", "")), {"event": "subscribe"})


def scan(state: SandboxState, user_id: str, ticket: str) -> UserAction:
    """Scan a parametric QR: a new follower sends ``subscribe`` + ``qrscene_<scene>``, a follower ``SCAN``."""
    user = get_user(state, user_id)
    qr = state.live_ticket(ticket)
    if qr is None:
        raise ControlError(410, "the QR ticket is unknown or expired")
    app = get_app(state, qr.appid, "oa")
    openid = state.openid_for(user, app.appid)
    with state.lock:
        relation = user.follow(app.appid)
        now = state.clock()
        state.open_window(relation, now, seconds=ACTION_WINDOW[0], sends=ACTION_WINDOW[1])
        if relation.subscribed:
            fields = _event(app, openid, "SCAN", ("EventKey", qr.scene), ("Ticket", qr.ticket))
            return UserAction(app, openid, fields, {"event": "SCAN", "scene": qr.scene})
        relation.subscribed, relation.subscribe_time, relation.subscribe_scene = True, int(now), "ADD_SCENE_QR_CODE"
        relation.qr_scene_str = qr.scene_str or ""
        relation.qr_scene = qr.scene_id or 0
    fields = _event(app, openid, "subscribe", ("EventKey", f"qrscene_{qr.scene}"), ("Ticket", qr.ticket))
    return UserAction(app, openid, fields, {"event": "subscribe", "scene": qr.scene})


def unfollow(state: SandboxState, user_id: str, appid: str) -> UserAction:
    """Stop following: an ``unsubscribe`` event; the customer-service window closes."""
    user, app = get_user(state, user_id), get_app(state, appid, "oa")
    openid = state.openid_for(user, app.appid)
    with state.lock:
        relation = user.follow(app.appid)
        if not relation.subscribed:
            raise ControlError(409, "the user does not follow this account")
        relation.subscribed = False
        relation.window_expires_at, relation.window_sends_left = 0.0, 0
    return UserAction(app, openid, _event(app, openid, "unsubscribe", ("EventKey", "")), {"event": "unsubscribe"})


def _following(state: SandboxState, user_id: str, appid: str) -> tuple[SandboxUser, SandboxApp, str]:
    user, app = get_user(state, user_id), get_app(state, appid, "oa")
    with state.lock:
        if not user.follow(app.appid).subscribed:
            raise ControlError(409, "the user must follow the account first")
    return user, app, state.openid_for(user, app.appid)


def send_text(state: SandboxState, user_id: str, appid: str, content: str) -> UserAction:
    """Send a text message to the account: a ``text`` message with a fresh MsgId; opens the 48-hour window."""
    user, app, openid = _following(state, user_id, appid)
    msgid = state.next_msgid()
    with state.lock:
        state.open_window(user.follow(app.appid), state.clock(), seconds=MESSAGE_WINDOW[0], sends=MESSAGE_WINDOW[1])
    fields: list[XmlField] = [
        ("ToUserName", app.original_id or ""),
        ("FromUserName", openid),
        ("CreateTime", int(time.time())),
        ("MsgType", "text"),
        ("Content", content),
        ("MsgId", msgid),
    ]
    return UserAction(app, openid, fields, {"msgtype": "text", "msgid": msgid})


def _menu_buttons(app: SandboxApp) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    for button in (app.menu or {}).get("button", []):
        buttons.append(button)
        buttons.extend(button.get("sub_button") or [])
    return buttons


def click_menu(state: SandboxState, user_id: str, appid: str, key: str) -> UserAction:
    """Click a ``click`` menu button: a ``CLICK`` event with its key; the key must be in the current menu."""
    user, app, openid = _following(state, user_id, appid)
    with state.lock:
        if not any(b.get("type") == "click" and b.get("key") == key for b in _menu_buttons(app)):
            raise ControlError(409, f"the account's menu has no click button with key {key!r}")
        state.open_window(user.follow(app.appid), state.clock(), seconds=ACTION_WINDOW[0], sends=ACTION_WINDOW[1])
    return UserAction(app, openid, _event(app, openid, "CLICK", ("EventKey", key)), {"event": "CLICK", "key": key})


def view_menu(state: SandboxState, user_id: str, appid: str, url: str) -> UserAction:
    """Tap a ``view`` menu button: a ``VIEW`` event whose EventKey is the URL."""
    _, app, openid = _following(state, user_id, appid)
    with state.lock:
        if not any(b.get("type") == "view" and b.get("url") == url for b in _menu_buttons(app)):
            raise ControlError(409, f"the account's menu has no view button for {url!r}")
    fields = _event(app, openid, "VIEW", ("EventKey", url), ("MenuId", 1))
    return UserAction(app, openid, fields, {"event": "VIEW", "url": url})


def answer_subscribe_popup(
    state: SandboxState, user_id: str, appid: str, template_ids: list[str], *, accept: bool
) -> UserAction:
    """Accept or reject subscription-message templates; each acceptance allows one send of that template.

    An official account receives ``subscribe_msg_popup_event``; a mini-program gets no callback here.
    """
    user = get_user(state, user_id)
    app = state.find_app(appid)
    if app is None:
        raise ControlError(404, f"no sandbox app {appid!r}")
    if not template_ids:
        raise ControlError(400, "template_ids must name at least one template")
    openid = state.openid_for(user, app.appid)
    with state.lock:
        for template_id in template_ids if accept else ():
            user.subscribe_grants[(app.appid, template_id)] += 1
    summary = {"accepted" if accept else "rejected": template_ids}
    if app.kind != "oa":
        return UserAction(app, openid, None, summary)
    popup: list[XmlField] = [
        (
            "List",
            [
                ("TemplateId", template_id),
                ("SubscribeStatusString", "accept" if accept else "reject"),
                ("PopupScene", "2"),
            ],
        )
        for template_id in template_ids
    ]
    fields = _event(app, openid, "subscribe_msg_popup_event", ("SubscribeMsgPopupEvent", popup))
    return UserAction(app, openid, fields, {"event": "subscribe_msg_popup_event", **summary})


def open_miniprogram(state: SandboxState, user_id: str, appid: str) -> dict[str, Any]:
    """Open the mini-program: ``wx.login`` yields a single-use code for ``jscode2session``."""
    user, app = get_user(state, user_id), get_app(state, appid, "miniprogram")
    with state.lock:
        user.miniprogram_opened_at[app.appid] = state.clock()
    return {"code": state.issue_code("login", app.appid, user), "expires_in": 300}


def share_phone_number(state: SandboxState, user_id: str, appid: str) -> dict[str, Any]:
    """Tap the ``getPhoneNumber`` button and allow it: a single-use code for ``getuserphonenumber``."""
    user, app = get_user(state, user_id), get_app(state, appid, "miniprogram")
    if not user.phone:
        raise ControlError(409, "the user has no phone number; set one with PATCH /sandbox/users/<user_id>")
    return {"code": state.issue_code("phone", app.appid, user), "expires_in": 300}
