"""User messages and menu events: each is an interaction that opens WeChat's customer-service window."""

from __future__ import annotations

from member.services import identity as identities
from wechat_handlers.dispatch import EVENT_TYPES, MESSAGE_TYPES
from wechat_handlers.handlers import HandlerContext, dispatcher
from wechat_handlers.parsing import CallbackMessage

#: Events a user triggers in the chat or the menu (the others are follows or system reports).
USER_EVENTS = (
    "location",
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "view_miniprogram",
)


def record_interaction(message: CallbackMessage, context: HandlerContext) -> str:
    identities.record_interaction(
        context.session, appid=context.appid, openid=message.from_user, at=context.event_time(message)
    )
    return f"interaction:{message.normalized_event or message.msg_type}"


for _msg_type in MESSAGE_TYPES:
    dispatcher.handles(_msg_type)(record_interaction)
for _event in USER_EVENTS:
    assert _event in EVENT_TYPES, _event
    dispatcher.handles("event", _event)(record_interaction)


@dispatcher.fallback
def on_unknown(message: CallbackMessage, context: HandlerContext) -> str:
    # A type WeChat added after this code: the inbox keeps it; nothing else to do.
    return "stored-unknown"
