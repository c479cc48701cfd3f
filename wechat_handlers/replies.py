"""Passive replies to a callback: acknowledgements, text, image and news XML, encrypted in compat and safe mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wechat_handlers.apps import CallbackApp
from wechat_handlers.parsing import CallbackMessage
from wechat_handlers.xmltext import cdata

#: WeChat stops retrying on this body (or an empty one) and does nothing; it is never encrypted.
ACK_SUCCESS = "success"
#: The zero-byte acknowledgement, equivalent to ``ACK_SUCCESS``.
ACK_EMPTY = ""
#: A news reply to a user's message may carry one article; one sent on an event, up to eight.
MAX_ARTICLES_FOR_USER_MESSAGE = 1
MAX_ARTICLES_FOR_EVENT = 8


@dataclass(frozen=True)
class Article:
    """One item of a news reply (图文消息)."""

    title: str
    description: str = ""
    pic_url: str = ""
    url: str = ""


def text_reply(message: CallbackMessage, content: str, *, create_time: int) -> str:
    """Build a text reply to ``message``.

    Args:
        message: The message being answered; the reply goes back to its sender.
        content: The text; any ``]]>`` is neutralised, characters XML cannot carry are dropped and CR/CRLF
            become LF.
        create_time: Seconds since the epoch.

    Returns:
        The reply XML (plaintext; pass it through ``seal_reply``).
    """
    if not content:
        raise ValueError("a text reply needs content")
    return _reply(message, "text", f"<Content>{cdata(content)}</Content>", create_time=create_time)


def image_reply(message: CallbackMessage, media_id: str, *, create_time: int) -> str:
    """Build an image reply to ``message`` from an uploaded media id."""
    if not media_id:
        raise ValueError("an image reply needs a media_id")
    return _reply(message, "image", f"<Image><MediaId>{cdata(media_id)}</MediaId></Image>", create_time=create_time)


def news_reply(message: CallbackMessage, articles: Sequence[Article], *, create_time: int) -> str:
    """Build a news reply: one article when answering a user's message, up to eight when answering an event.

    Raises:
        ValueError: No articles, or more than the limit for this kind of message.
    """
    limit = MAX_ARTICLES_FOR_EVENT if message.is_event else MAX_ARTICLES_FOR_USER_MESSAGE
    if not 1 <= len(articles) <= limit:
        raise ValueError(f"a news reply to this message takes 1 to {limit} articles")
    items = "".join(
        "<item>"
        f"<Title>{cdata(article.title)}</Title>"
        f"<Description>{cdata(article.description)}</Description>"
        f"<PicUrl>{cdata(article.pic_url)}</PicUrl>"
        f"<Url>{cdata(article.url)}</Url>"
        "</item>"
        for article in articles
    )
    body = f"<ArticleCount>{len(articles)}</ArticleCount><Articles>{items}</Articles>"
    return _reply(message, "news", body, create_time=create_time)


def seal_reply(
    reply: str, *, app: CallbackApp, nonce: str, timestamp: int | str, random_prefix: bytes | None = None
) -> str:
    """Make a reply ready to send: encrypted for a compat or safe app, unchanged for a plain one.

    Acknowledgements (``success`` and the empty string) are always sent as they are, as WeChat expects.

    Args:
        reply: The reply XML, or an acknowledgement.
        app: The account that received the message.
        nonce: Nonce for the envelope signature (the request's nonce will do).
        timestamp: Seconds since the epoch for the envelope.
        random_prefix: Fixed 16-byte prefix; only for deterministic tests.

    Returns:
        The response body.
    """
    if reply in (ACK_SUCCESS, ACK_EMPTY) or not app.is_encrypted:
        return reply
    return app.crypto.encrypt_reply(reply, nonce=nonce, timestamp=timestamp, random_prefix=random_prefix)


def _reply(message: CallbackMessage, msg_type: str, body: str, *, create_time: int) -> str:
    if isinstance(create_time, bool) or not isinstance(create_time, int) or create_time < 0:
        raise ValueError("create_time must be a non-negative int")
    # In plain mode the ids come from an unsigned body, so they are escaped like any other text.
    return (
        "<xml>"
        f"<ToUserName>{cdata(message.from_user)}</ToUserName>"
        f"<FromUserName>{cdata(message.to_user)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{cdata(msg_type)}</MsgType>"
        f"{body}"
        "</xml>"
    )
