"""The small frozen values the gateway returns instead of WeChat's raw dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QrCode:
    """A parametric official-account QR code.

    ``expire_seconds`` is None for a permanent code. ``url`` is the QR content (render it yourself);
    ``image_url`` is WeChat's rendered image.
    """

    ticket: str
    url: str
    expire_seconds: int | None
    image_url: str


@dataclass(frozen=True)
class UserInfo:
    """What ``cgi-bin/user/info`` tells about one user of an official account (no nickname since 2021-12-27)."""

    openid: str
    subscribed: bool
    unionid: str | None = None
    language: str | None = None
    subscribe_time: int | None = None
    subscribe_scene: str | None = None
    qr_scene: int | None = None
    qr_scene_str: str | None = None
    tagid_list: tuple[int, ...] = ()
    remark: str | None = None

    @classmethod
    def from_wechat(cls, raw: dict[str, Any]) -> UserInfo:
        return cls(
            openid=raw["openid"],
            subscribed=bool(raw.get("subscribe")),
            unionid=raw.get("unionid") or None,
            language=raw.get("language") or None,
            subscribe_time=raw.get("subscribe_time"),
            subscribe_scene=raw.get("subscribe_scene") or None,
            qr_scene=raw.get("qr_scene") or None,
            qr_scene_str=raw.get("qr_scene_str") or None,
            tagid_list=tuple(int(tagid) for tagid in raw.get("tagid_list", ())),
            remark=raw.get("remark") or None,
        )


@dataclass(frozen=True)
class Tag:
    """A user tag of an official account."""

    id: int
    name: str
    count: int | None = None


@dataclass(frozen=True)
class OAuthGrant:
    """The result of exchanging a web OAuth code.

    ``access_token`` is the *user's* OAuth token, needed only for :meth:`WeChatGateway.oauth_userinfo`; it is
    kept out of ``repr``. Never bind or reward a member when ``is_snapshotuser`` is true: snapshot pages carry
    virtual identities.
    """

    appid: str
    openid: str
    scope: str
    unionid: str | None = None
    is_snapshotuser: bool = False
    expires_in: int = 7200
    access_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class OAuthUserInfo:
    """A user's profile from ``sns/userinfo`` (needs an ``snsapi_userinfo`` grant)."""

    openid: str
    unionid: str | None = None
    nickname: str | None = None
    headimgurl: str | None = None


@dataclass(frozen=True)
class MiniProgramSession:
    """The result of ``jscode2session``. ``session_key`` never leaves the server and never shows in ``repr``."""

    openid: str
    unionid: str | None = None
    session_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class PhoneNumber:
    """A WeChat-verified phone number from ``getuserphonenumber``; ``phone_number`` carries the country prefix."""

    phone_number: str
    pure_phone_number: str
    country_code: str
