"""Choosing and rendering the passive reply to a callback from the staff's auto-reply rules (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from wechat_handlers.dispatch import route_of
from wechat_handlers.parsing import CallbackMessage
from wechat_handlers.replies import Article, image_reply, news_reply, text_reply
from wechat_handlers.rules import ReplyRule


def choose_rule(rules: Sequence[ReplyRule], message: CallbackMessage) -> ReplyRule | None:
    """The rule that answers `message`: the lowest priority number among the matching ones.

    Text matches `keyword_exact` (case-insensitive, trimmed), then `keyword_contains`, then `default`;
    `subscribe` matches `follow` (or `scan` with the QR scene when the follow came from a QR code);
    a follower's `SCAN` matches `scan` by scene; `CLICK` matches `click` by menu key.
    """
    route = route_of(message)
    candidates: list[tuple[int, int, ReplyRule]] = []

    def consider(rank: int, rule: ReplyRule) -> None:
        candidates.append((rank, rule.priority, rule))

    if route.msg_type == "text":
        text = str(message.fields.get("Content") or "").strip().lower()
        for rule in rules:
            pattern = (rule.pattern or "").strip().lower()
            if rule.trigger == "keyword_exact" and pattern and text == pattern:
                consider(0, rule)
            elif rule.trigger == "keyword_contains" and pattern and pattern in text:
                consider(1, rule)
            elif rule.trigger == "default":
                consider(2, rule)
    elif route == ("event", "subscribe"):
        scene = message.referral_scene()
        for rule in rules:
            if rule.trigger == "scan" and scene is not None and rule.pattern == scene:
                consider(0, rule)
            elif rule.trigger == "follow":
                consider(1, rule)
    elif route == ("event", "scan"):
        scene = message.referral_scene()
        for rule in rules:
            if rule.trigger == "scan" and rule.pattern == scene:
                consider(0, rule)
    elif route == ("event", "click"):
        for rule in rules:
            if rule.trigger == "click" and rule.pattern == message.event_key:
                consider(0, rule)
    if not candidates:
        return None
    return min(candidates, key=lambda item: (item[0], item[1], item[2].id))[2]


def render_reply(rule: ReplyRule, message: CallbackMessage, *, create_time: int) -> str:
    """The reply XML for `rule` (plaintext; the view seals it for safe mode)."""
    if rule.reply_type == "text":
        return text_reply(message, str(rule.reply.get("content", "")), create_time=create_time)
    if rule.reply_type == "image":
        return image_reply(message, str(rule.reply["media_id"]), create_time=create_time)
    articles = [
        Article(
            title=str(a.get("title", "")),
            description=str(a.get("description", "")),
            pic_url=str(a.get("picurl", "")),
            url=str(a.get("url", "")),
        )
        for a in rule.reply.get("articles", [])
    ]
    # WeChat shows one article in reply to a user's message, up to 8 after an event.
    limit = 8 if message.is_event else 1
    return news_reply(message, articles[:limit], create_time=create_time)
