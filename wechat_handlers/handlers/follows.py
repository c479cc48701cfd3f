"""subscribe, SCAN and unsubscribe: the follow state of the WeChat identity, and the referral touch signal."""

from __future__ import annotations

from member.services import identity as identities
from wechat_handlers.handlers import HandlerContext, dispatcher
from wechat_handlers.parsing import CallbackMessage


@dispatcher.handles("event", "subscribe")
def on_subscribe(message: CallbackMessage, context: HandlerContext) -> str:
    identities.record_follow(
        context.session,
        appid=context.appid,
        openid=message.from_user,
        at=context.event_time(message),
        scene_str=message.referral_scene(),
        is_new_follow=True,
    )
    return "follow:qr" if message.referral_scene() else "follow"


@dispatcher.handles("event", "SCAN")
def on_scan(message: CallbackMessage, context: HandlerContext) -> str:
    identities.record_follow(
        context.session,
        appid=context.appid,
        openid=message.from_user,
        at=context.event_time(message),
        scene_str=message.referral_scene(),
        is_new_follow=False,
    )
    return "scan"


@dispatcher.handles("event", "unsubscribe")
def on_unsubscribe(message: CallbackMessage, context: HandlerContext) -> str:
    identities.record_unfollow(
        context.session, appid=context.appid, openid=message.from_user, at=context.event_time(message)
    )
    return "unfollow"
