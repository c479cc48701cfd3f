"""WeChat's reports: template and mass-send results, subscribe-message consent and send results."""

from __future__ import annotations

from typing import Any

from member.services import messaging
from wechat_handlers.handlers import HandlerContext, dispatcher
from wechat_handlers.parsing import CallbackMessage


def _items(message: CallbackMessage, container: str) -> list[dict[str, Any]]:
    block = message.fields.get(container) or {}
    items = block.get("List") if isinstance(block, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


@dispatcher.handles("event", "TEMPLATESENDJOBFINISH")
def on_template_finished(message: CallbackMessage, context: HandlerContext) -> str:
    messaging.record_delivery(
        context.session,
        appid=context.appid,
        msg_id=str(message.fields.get("MsgID", "")),
        kind="template",
        status=str(message.fields.get("Status", ""))[:40],
        openid=message.from_user,
        at=context.event_time(message),
    )
    return "delivery:template"


@dispatcher.handles("event", "MASSSENDJOBFINISH")
def on_mass_send_finished(message: CallbackMessage, context: HandlerContext) -> str:
    counts = {name: message.fields.get(name) for name in ("TotalCount", "FilterCount", "SentCount", "ErrorCount")}
    messaging.record_delivery(
        context.session,
        appid=context.appid,
        msg_id=str(message.fields.get("MsgID", "")),
        kind="mass",
        status=str(message.fields.get("Status", ""))[:40],
        detail={k: v for k, v in counts.items() if v is not None},
        at=context.event_time(message),
    )
    return "delivery:mass"


def _consents(message: CallbackMessage, container: str) -> list[dict[str, Any]]:
    # An answer WeChat may add later is stored in the inbox but not recorded as consent.
    return [
        item
        for item in _items(message, container)
        if item.get("SubscribeStatusString") in messaging.CONSENT_STATUSES and item.get("TemplateId")
    ]


@dispatcher.handles("event", "subscribe_msg_popup_event")
def on_subscribe_popup(message: CallbackMessage, context: HandlerContext) -> str:
    for item in _consents(message, "SubscribeMsgPopupEvent"):
        scene = item.get("PopupScene")
        messaging.record_consent(
            context.session,
            appid=context.appid,
            openid=message.from_user,
            template_id=str(item.get("TemplateId", "")),
            status=str(item.get("SubscribeStatusString", "")),
            popup_scene=int(scene) if str(scene or "").isdigit() else None,
            at=context.event_time(message),
        )
    return "consent:popup"


@dispatcher.handles("event", "subscribe_msg_change_event")
def on_subscribe_change(message: CallbackMessage, context: HandlerContext) -> str:
    for item in _consents(message, "SubscribeMsgChangeEvent"):
        messaging.record_consent(
            context.session,
            appid=context.appid,
            openid=message.from_user,
            template_id=str(item.get("TemplateId", "")),
            status=str(item.get("SubscribeStatusString", "")),
            at=context.event_time(message),
        )
    return "consent:change"


@dispatcher.handles("event", "subscribe_msg_sent_event")
def on_subscribe_sent(message: CallbackMessage, context: HandlerContext) -> str:
    for item in _items(message, "SubscribeMsgSentEvent"):
        messaging.record_delivery(
            context.session,
            appid=context.appid,
            msg_id=str(item.get("MsgID", "")),
            kind="subscribe",
            status=str(item.get("ErrorStatus", ""))[:40],
            openid=message.from_user,
            template_id=str(item.get("TemplateId", "")),
            detail={"error_code": item.get("ErrorCode")},
            at=context.event_time(message),
        )
    return "delivery:subscribe"
