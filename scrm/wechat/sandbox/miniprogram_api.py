"""The sandbox's mini-program endpoints: ``jscode2session``, phone number, unlimited codes and the risk rank."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

from flask import Blueprint, Response, request

from scrm.wechat.sandbox.api_support import authenticated_app, json_body, ok, sandbox_state
from scrm.wechat.sandbox.models import SandboxApiError
from scrm.wechat.sandbox.png import pattern_png

bp = Blueprint("sandbox_miniprogram_api", __name__)

_WXACODE_SCENE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$")
ENV_VERSIONS = ("release", "trial", "develop")
#: The risk API only knows users who opened the mini-program this recently.
RISK_ACTIVITY_WINDOW_S = 30 * 86400


@bp.get("/sns/jscode2session")
def jscode2session() -> dict[str, Any]:
    state = sandbox_state()
    app = state.app_or_error(request.args.get("appid"))
    if app.kind != "miniprogram":
        raise SandboxApiError(40013)
    state.check_secret(app, request.args.get("secret"))
    if request.args.get("grant_type") != "authorization_code":
        raise SandboxApiError(40002)
    state.charge_quota(app.appid, request.path)
    entry = state.redeem_code("login", app.appid, request.args.get("js_code"))
    session_key = base64.b64encode(secrets.token_bytes(16)).decode()
    with state.lock:
        user = state.users[entry.user_id]
        user.session_keys[app.appid] = session_key  # each login rotates the key, as wx.login may
    return {"openid": state.openid_for(user, app.appid), "session_key": session_key, "unionid": user.unionid}


@bp.post("/wxa/business/getuserphonenumber")
def get_phone_number() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("miniprogram")
    body = json_body()
    entry = state.redeem_code("phone", app.appid, body.get("code"))
    with state.lock:
        user = state.users[entry.user_id]
    if body.get("openid") and body["openid"] != state.openid_for(user, app.appid):
        raise SandboxApiError(40003)
    if not user.phone:
        raise SandboxApiError(40029)
    # Mainland numbers come without a prefix; others carry "+<country code>".
    shown = user.phone if user.country_code == "86" else f"+{user.country_code}{user.phone}"
    return ok(
        phone_info={
            "phoneNumber": shown,
            "purePhoneNumber": user.phone,
            "countryCode": user.country_code,
            "watermark": {"timestamp": int(state.clock()), "appid": app.appid},
        }
    )


@bp.post("/wxa/getwxacodeunlimit")
def get_wxacode_unlimited() -> Response | dict[str, Any]:
    app = authenticated_app("miniprogram")
    body = json_body()
    scene = body.get("scene")
    if not isinstance(scene, str) or not _WXACODE_SCENE.match(scene):
        raise SandboxApiError(40129)
    page = body.get("page")
    if page is not None and (not isinstance(page, str) or page.startswith("/") or "?" in page):
        raise SandboxApiError(41030)
    if page and body.get("check_path", True) and app.pages and page not in app.pages:
        raise SandboxApiError(41030)
    if body.get("env_version", "release") not in ENV_VERSIONS:
        raise SandboxApiError(40097)
    width = body.get("width", 430)
    width = min(max(width if isinstance(width, int) else 430, 280), 1280)
    return Response(pattern_png(f"{app.appid}:{page}:{scene}", width), mimetype="image/png")


@bp.post("/wxa/getuserriskrank")
def get_user_risk_rank() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("miniprogram")
    body = json_body()
    if body.get("appid") != app.appid:
        raise SandboxApiError(40001)  # the token belongs to another app than the one asked about
    user = state.user_by_openid(app.appid, body.get("openid"))
    if body.get("scene") not in (0, 1) or not body.get("client_ip"):
        raise SandboxApiError(40097)
    with state.lock:
        opened_at = user.miniprogram_opened_at.get(app.appid)
        if opened_at is None or state.clock() - opened_at > RISK_ACTIVITY_WINDOW_S:
            raise SandboxApiError(61010)
        risk_rank = user.risk_rank
    # "unoin_id" is WeChat's spelling.
    union_number = int.from_bytes(hashlib.sha256(user.unionid.encode()).digest()[:6], "big")
    return {"errcode": 0, "errmsg": "getuserriskrank succ", "risk_rank": risk_rank, "unoin_id": union_number}
