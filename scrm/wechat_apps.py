"""The brand's WeChat apps: register and update them, and read their credentials back (decrypted)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm import audit
from scrm.clock import utcnow
from scrm.errors import InvalidInput, NotFound
from scrm.models import WeChatApp
from scrm.secretbox import SecretBox

_APPID = re.compile(r"^wx[0-9A-Za-z]{8,30}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")
_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")
_ORIGINAL_ID = re.compile(r"^gh_[0-9A-Za-z]{4,28}$")


@dataclass(frozen=True)
class AppRecord:
    """A registered app with its credentials decrypted; never logged or returned by the API."""

    appid: str
    kind: str
    mode: str
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    encoding_aes_key: str | None = field(default=None, repr=False)
    original_id: str | None = None
    name: str | None = None
    is_active: bool = True


def public_view(app: WeChatApp) -> dict[str, object]:
    """What staff and the audit log may see of an app: everything but the credentials."""
    return {
        "appid": app.appid,
        "kind": app.kind,
        "name": app.name,
        "original_id": app.original_id,
        "mode": app.mode,
        "is_active": app.is_active,
        "has_token": app.token_encrypted is not None,
        "has_aes_key": app.aes_key_encrypted is not None,
    }


def _validate(
    *,
    appid: str,
    kind: str,
    mode: str,
    token: str | None,
    aes_key: str | None,
    original_id: str | None,
    allow_plain: bool,
) -> None:
    fields: dict[str, list[str]] = {}
    if not _APPID.match(appid):
        fields["appid"] = ["must look like wx followed by 8-30 letters or digits"]
    if kind not in ("oa", "miniprogram"):
        fields["kind"] = ["must be oa or miniprogram"]
    if mode not in ("safe", "compat", "plain"):
        fields["mode"] = ["must be safe, compat or plain"]
    if token is not None and not _TOKEN.match(token):
        fields["token"] = ["must be 3-32 letters or digits"]
    if aes_key is not None and not _AES_KEY.match(aes_key):
        fields["aes_key"] = ["must be 43 letters or digits (WeChat's EncodingAESKey)"]
    if original_id is not None and not _ORIGINAL_ID.match(original_id):
        fields["original_id"] = ["must look like gh_…"]
    if kind == "oa":
        if token is None:
            fields.setdefault("token", []).append("an official account needs its callback token")
        if mode in ("safe", "compat") and aes_key is None:
            fields.setdefault("aes_key", []).append(f"{mode} mode needs the EncodingAESKey")
        if mode == "plain" and not allow_plain:
            fields.setdefault("mode", []).append("plain mode does not sign the message body; use safe mode")
    if fields:
        raise InvalidInput("invalid WeChat app settings", details={"fields": fields})


def register_app(
    session: Session,
    box: SecretBox,
    *,
    appid: str,
    kind: str,
    secret: str,
    actor: audit.Actor,
    token: str | None = None,
    aes_key: str | None = None,
    mode: str = "safe",
    original_id: str | None = None,
    name: str | None = None,
    allow_plain: bool = True,
) -> WeChatApp:
    """Register an app, or update it in place when the appid is known; audited without the credentials."""
    _validate(
        appid=appid,
        kind=kind,
        mode=mode,
        token=token,
        aes_key=aes_key,
        original_id=original_id,
        allow_plain=allow_plain,
    )
    if not secret or len(secret) > 128:
        raise InvalidInput("invalid WeChat app settings", details={"fields": {"secret": ["required"]}})
    app = session.scalar(select(WeChatApp).where(WeChatApp.appid == appid).with_for_update())
    before = public_view(app) if app is not None else None
    if app is None:
        app = WeChatApp(appid=appid, kind=kind, secret_encrypted="")
        session.add(app)
    else:
        app.updated_at = utcnow()
    app.kind, app.mode, app.name, app.original_id = kind, mode, name, original_id
    app.secret_encrypted = box.seal(secret)
    app.token_encrypted = box.seal(token) if token is not None else None
    app.aes_key_encrypted = box.seal(aes_key) if aes_key is not None else None
    app.is_active = True
    session.flush()
    audit.record(
        session,
        actor,
        "wechat_app.register" if before is None else "wechat_app.update",
        target_type="wechat_app",
        target_id=appid,
        before=before,
        after={**public_view(app), "credentials_changed": True},
    )
    return app


def set_app_active(session: Session, appid: str, *, is_active: bool, actor: audit.Actor) -> WeChatApp:
    app = session.scalar(select(WeChatApp).where(WeChatApp.appid == appid).with_for_update())
    if app is None:
        raise NotFound("WeChat app not found")
    before = public_view(app)
    app.is_active = is_active
    app.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "wechat_app.update",
        target_type="wechat_app",
        target_id=appid,
        before=before,
        after=public_view(app),
    )
    return app


def list_apps(session: Session) -> list[WeChatApp]:
    return list(session.scalars(select(WeChatApp).order_by(WeChatApp.id)))


def load_app(session: Session, box: SecretBox, appid: str) -> AppRecord | None:
    """The active app `appid` with decrypted credentials, or None."""
    app = session.scalar(select(WeChatApp).where(WeChatApp.appid == appid, WeChatApp.is_active.is_(True)))
    return _record(app, box) if app is not None else None


def load_all_apps(session: Session, box: SecretBox) -> list[AppRecord]:
    return [_record(app, box) for app in session.scalars(select(WeChatApp).where(WeChatApp.is_active.is_(True)))]


def plain_mode_official_accounts(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(WeChatApp.appid).where(
                WeChatApp.kind == "oa", WeChatApp.mode == "plain", WeChatApp.is_active.is_(True)
            )
        )
    )


def _record(app: WeChatApp, box: SecretBox) -> AppRecord:
    return AppRecord(
        appid=app.appid,
        kind=app.kind,
        mode=app.mode,
        secret=box.open(app.secret_encrypted),
        token=box.open(app.token_encrypted) if app.token_encrypted else None,
        encoding_aes_key=box.open(app.aes_key_encrypted) if app.aes_key_encrypted else None,
        original_id=app.original_id,
        name=app.name,
        is_active=app.is_active,
    )
