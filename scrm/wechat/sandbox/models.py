"""The records the WeChat sandbox keeps in memory, and the WeChat-shaped error it answers with."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scrm.wechat.apps import AppCredentials

#: WeChat's errmsg for each errcode the sandbox answers with.
ERRMSGS: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40016: "invalid button size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40029: "invalid code",
    40032: "invalid openid list size",
    40037: "invalid template_id",
    40097: "invalid args",
    40125: "invalid appsecret",
    40129: "invalid scene",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45056: "too many tags",
    45059: "a user has too many tags",
    45157: "invalid tag name, or tag name already exists",
    45158: "tag name too long",
    45159: "invalid tag id",
    46003: "menu no exist",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
    61010: "user is not active in recent days",
}


class SandboxApiError(Exception):
    """An error the sandbox answers exactly as WeChat does: HTTP 200 with ``{"errcode", "errmsg"}``."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSGS.get(errcode, "error")
        super().__init__(errcode, self.errmsg)

    def to_json(self) -> dict[str, Any]:
        # WeChat appends a request id to every errmsg; callers must not parse errmsg, and this keeps them honest.
        return {"errcode": self.errcode, "errmsg": f"{self.errmsg} rid: {secrets.token_hex(12)}"}


@dataclass
class SandboxApp:
    """An app the sandbox plays WeChat for, with its per-app state (tags, menu, published pages)."""

    appid: str
    secret: str = field(repr=False)
    kind: str
    token: str | None = field(default=None, repr=False)
    encoding_aes_key: str | None = field(default=None, repr=False)
    mode: str = "safe"
    original_id: str | None = None
    name: str | None = None
    #: Overrides ``<target_url>/wechat/<appid>/callback`` for this app's callbacks.
    callback_url: str | None = None
    #: Published mini-program pages; empty means every page counts as published.
    pages: set[str] = field(default_factory=set)
    tags: dict[int, str] = field(default_factory=lambda: {2: "星标组"})
    next_tagid: int = 100
    menu: dict[str, Any] | None = None
    loaded: bool = False

    @classmethod
    def from_credentials(cls, credentials: AppCredentials, *, loaded: bool = False) -> SandboxApp:
        return cls(
            appid=credentials.appid,
            secret=credentials.secret,
            kind=credentials.kind,
            token=credentials.token,
            encoding_aes_key=credentials.encoding_aes_key,
            mode=credentials.mode,
            original_id=credentials.original_id or (f"gh_{secrets.token_hex(6)}" if credentials.kind == "oa" else None),
            name=credentials.name,
            loaded=loaded,
        )

    def public(self) -> dict[str, Any]:
        """The app as the control API shows it: no secret, token or AES key."""
        return {
            "appid": self.appid,
            "kind": self.kind,
            "mode": self.mode,
            "original_id": self.original_id,
            "name": self.name,
            "callback_url": self.callback_url,
            "pages": sorted(self.pages),
            "tags": [{"id": tagid, "name": name} for tagid, name in sorted(self.tags.items())],
            "has_menu": self.menu is not None,
            "source": "app_loader" if self.loaded else "control_api",
        }


@dataclass
class Follow:
    """A user's relation to one official account."""

    subscribed: bool = False
    subscribe_time: int = 0
    subscribe_scene: str = ""
    qr_scene: int = 0
    qr_scene_str: str = ""
    tagids: list[int] = field(default_factory=list)
    remark: str = ""
    #: The customer-service window the user's last interaction opened.
    window_expires_at: float = 0.0
    window_sends_left: int = 0


@dataclass
class SandboxUser:
    """A WeChat user: one unionid across the apps, one openid per app."""

    user_id: str
    unionid: str
    nickname: str = "微信用户"
    phone: str | None = None
    country_code: str = "86"
    risk_rank: int = 0
    follows: dict[str, Follow] = field(default_factory=dict)
    miniprogram_opened_at: dict[str, float] = field(default_factory=dict)
    session_keys: dict[str, str] = field(default_factory=dict, repr=False)
    #: One-time subscription-message acceptances per (appid, template_id).
    subscribe_grants: Counter[tuple[str, str]] = field(default_factory=Counter)

    def follow(self, appid: str) -> Follow:
        return self.follows.setdefault(appid, Follow())


@dataclass
class IssuedToken:
    """An access token the sandbox handed out; ``pool`` is "token" (cgi-bin/token) or "stable"."""

    token: str = field(repr=False)
    appid: str
    pool: str
    expires_at: float
    #: True once a newer token of the same pool replaced it: past its grace period it answers 40001, not 42001.
    superseded: bool = False


@dataclass
class OneTimeCode:
    """A single-use code: ``login`` (wx.login), ``oauth`` (web OAuth) or ``phone`` (getPhoneNumber)."""

    code: str = field(repr=False)
    kind: str
    appid: str
    user_id: str
    expires_at: float
    used: bool = False
    scope: str = ""
    snapshot: bool = False


@dataclass
class OAuthUserToken:
    """The user-level token ``sns/oauth2/access_token`` returns."""

    token: str = field(repr=False)
    appid: str
    openid: str
    unionid: str
    scope: str
    expires_at: float
    snapshot: bool = False


@dataclass
class QrTicket:
    """A parametric QR code; exactly one of ``scene_str`` / ``scene_id`` is set."""

    ticket: str
    short_id: str
    appid: str
    scene_str: str | None
    scene_id: int | None
    expires_at: float | None
    created_at: float

    @property
    def scene(self) -> str:
        return self.scene_str if self.scene_str is not None else str(self.scene_id)

    def public(self, now: float) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "appid": self.appid,
            "scene": self.scene,
            "permanent": self.expires_at is None,
            "expired": self.expires_at is not None and now >= self.expires_at,
        }


@dataclass
class SentMessage:
    """A message an app sent to a user through the sandbox."""

    kind: str  # "template" | "subscribe" | "custom"
    appid: str
    openid: str
    user_id: str
    msgid: int
    sent_at: float
    body: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "appid": self.appid,
            "openid": self.openid,
            "user_id": self.user_id,
            "msgid": self.msgid,
            "sent_at": self.sent_at,
            "body": self.body,
        }


@dataclass
class InjectedFault:
    """What the next calls of one path do: stall, answer an errcode, or answer an HTTP error status."""

    path: str
    stall_seconds: float = 0.0
    errcode: int | None = None
    errmsg: str | None = None
    http_status: int | None = None
    #: Calls left to affect; None means every call until the fault is cleared.
    remaining: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "stall_seconds": self.stall_seconds,
            "errcode": self.errcode,
            "http_status": self.http_status,
            "remaining": self.remaining,
        }
