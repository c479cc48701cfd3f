"""Member login: mini-program code exchange and official-account web OAuth with a signed, single-use state.

Identity comes only from WeChat's answer to a server-side code exchange; nothing the client sends names a member.
The mini-program `session_key` is not kept: nothing here decrypts `wx.getUserInfo` data, and a key we do not hold
cannot leak.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from member.errors import AppNotUsable, OAuthStateInvalid, RedirectNotAllowed, SnapshotUser
from member.models import Member, OAuthStateUse
from member.services.identity import ensure_identity
from member.services.merge import join_by_unionid
from scrm.clock import epoch, utcnow
from scrm.models import WeChatApp
from scrm.wechat.errors import WeChatError

OAUTH_SCOPES = ("snsapi_base", "snsapi_userinfo")
_TS_HEX = 8
_NONCE_HEX = 16
_MAC_HEX = 32


def check_app(session: Session, appid: str, kind: str) -> None:
    """Raises AppNotUsable unless `appid` is an active app of `kind` (so a client cannot pick a foreign app)."""
    found = session.scalar(
        select(WeChatApp.id).where(WeChatApp.appid == appid, WeChatApp.kind == kind, WeChatApp.is_active.is_(True))
    )
    if found is None:
        raise AppNotUsable(
            f"{appid!r} is not an active {'mini-program' if kind == 'miniprogram' else 'official account'}"
        )


def _touch(member: Member) -> Member:
    member.last_active_at = utcnow()
    return member


def login_miniprogram(session: Session, gateway: Any, *, appid: str, code: str) -> Member:
    """Exchange a `wx.login` code for the user's openid (and unionid) and return their member.

    Raises:
        AppNotUsable: `appid` is not one of our mini-programs.
        scrm.wechat.errors.CodeUsed / InvalidCode: a replayed or unknown code (the HTTP layer answers 409 / 422).
    """
    check_app(session, appid, "miniprogram")
    wechat_session = gateway.jscode2session(appid, code)
    identity = ensure_identity(
        session,
        appid=appid,
        openid=wechat_session.openid,
        app_kind="miniprogram",
        source="miniprogram",
        unionid=wechat_session.unionid,
    )
    member = join_by_unionid(session, identity)
    session.flush()
    return _touch(member)


def allowed_redirect(redirect: str, allowlist: str) -> bool:
    """Whether `redirect` is on the allow-list: same scheme and host as an entry, and under its path."""
    target = urlsplit(redirect)
    if target.scheme not in ("https", "http") or not target.netloc or target.username or target.password:
        return False
    for entry in (item.strip() for item in allowlist.split(",")):
        if not entry:
            continue
        allowed = urlsplit(entry)
        if (target.scheme, target.netloc.lower()) != (allowed.scheme, allowed.netloc.lower()):
            continue
        prefix = allowed.path or "/"
        path = target.path or "/"
        if prefix.endswith("/") and (path.startswith(prefix) or path + "/" == prefix):
            return True
        if not prefix.endswith("/") and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def _state_mac(secret_key: str, *, appid: str, redirect: str, ts_hex: str, nonce: str) -> str:
    message = f"oauth-state\x00{appid}\x00{redirect}\x00{ts_hex}\x00{nonce}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:_MAC_HEX]


def new_oauth_state(secret_key: str, *, appid: str, redirect: str, now: float | None = None) -> str:
    """A state of WeChat's alphabet ([0-9a-f], 56 characters): issue time, nonce and a MAC over appid and redirect."""
    ts_hex = f"{int(epoch() if now is None else now):0{_TS_HEX}x}"
    nonce = secrets.token_hex(_NONCE_HEX // 2)
    return ts_hex + nonce + _state_mac(secret_key, appid=appid, redirect=redirect, ts_hex=ts_hex, nonce=nonce)


def start_oauth(
    session: Session, *, appid: str, redirect: str | None, allowlist: str, secret_key: str
) -> tuple[str, str]:
    """Check the app and the redirect target; return the state to send and the redirect bound into it.

    Raises:
        AppNotUsable: not one of our official accounts.
        RedirectNotAllowed: `redirect` is not allow-listed.
    """
    check_app(session, appid, "oa")
    target = redirect or ""
    if target and not allowed_redirect(target, allowlist):
        raise RedirectNotAllowed()
    return new_oauth_state(secret_key, appid=appid, redirect=target), target


def consume_oauth_state(
    session: Session, state: str, *, appid: str, redirect: str, secret_key: str, ttl_s: int, now: float | None = None
) -> None:
    """Check the state's MAC and age and spend its nonce.

    Raises:
        OAuthStateInvalid: malformed, forged (another appid or redirect), expired, or used before.
    """
    now = epoch() if now is None else now
    if len(state) != _TS_HEX + _NONCE_HEX + _MAC_HEX or any(c not in "0123456789abcdef" for c in state):
        raise OAuthStateInvalid()
    ts_hex, nonce, mac = state[:_TS_HEX], state[_TS_HEX : _TS_HEX + _NONCE_HEX], state[_TS_HEX + _NONCE_HEX :]
    expected = _state_mac(secret_key, appid=appid, redirect=redirect, ts_hex=ts_hex, nonce=nonce)
    if not hmac.compare_digest(mac, expected):
        raise OAuthStateInvalid()
    issued = int(ts_hex, 16)
    if not (issued - 5 <= now <= issued + ttl_s):
        raise OAuthStateInvalid("the OAuth state expired; start again")
    try:
        with session.begin_nested():
            session.add(OAuthStateUse(nonce=nonce))
            session.flush()
    except IntegrityError:
        raise OAuthStateInvalid("the OAuth state was used before") from None


def login_oauth(session: Session, gateway: Any, *, appid: str, code: str) -> Member:
    """Exchange a web OAuth code for the user's openid (unionid with snsapi_userinfo) and return their member.

    Raises:
        SnapshotUser: WeChat's snapshot page (a virtual identity).
        scrm.wechat.errors.CodeUsed / InvalidCode: a replayed or unknown code.
    """
    grant = gateway.oauth_exchange(appid, code)
    if grant.is_snapshotuser:
        raise SnapshotUser()
    unionid = grant.unionid or _unionid_from_user_info(gateway, appid, grant.openid)
    identity = ensure_identity(
        session, appid=appid, openid=grant.openid, app_kind="oa", source="oauth", unionid=unionid
    )
    member = join_by_unionid(session, identity)
    session.flush()
    return _touch(member)


def _unionid_from_user_info(gateway: Any, appid: str, openid: str) -> str | None:
    """A silent (`snsapi_base`) grant carries no unionid; the account's user info usually does. Best effort: the
    login goes on without it, and a later login that learns the unionid joins the members then."""
    try:
        return gateway.user_info(appid, openid).unionid
    except WeChatError:
        return None
