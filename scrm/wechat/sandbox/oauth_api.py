"""The sandbox's web OAuth: the authorize page (pick a sandbox user), the code exchange and ``sns/userinfo``."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, redirect, render_template_string, request

from scrm.wechat.sandbox.api_support import sandbox_state
from scrm.wechat.sandbox.models import OAuthUserToken, SandboxApiError
from scrm.wechat.sandbox.state import TOKEN_LIFETIME_S, make_wechat_id

bp = Blueprint("sandbox_oauth_api", __name__)

OAUTH_SCOPES = ("snsapi_base", "snsapi_userinfo")

_AUTHORIZE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WeChat sandbox · authorize</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto}
label{display:block;margin:.5rem 0}
</style>
</head><body>
<h1>Sign in to {{ app_name }}</h1>
{% if error %}<p role="alert">{{ error }}</p>{% else %}
<p>Scope <code>{{ scope }}</code>. Choose the sandbox user who is opening this page in WeChat.</p>
<form method="get">
  {% for name, value in params %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <label>User <select name="sandbox_user">
    {% for user_id in users %}<option>{{ user_id }}</option>{% endfor %}
  </select></label>
  <label><input type="checkbox" name="sandbox_snapshot" value="1"> open as a snapshot page (virtual identity)</label>
  <label><input type="checkbox" name="sandbox_refuse" value="1"> refuse (no code is returned)</label>
  <button type="submit">Allow</button>
</form>{% endif %}
</body></html>"""


def _page(status: int, **context: Any) -> Response:
    context.setdefault("error", None)
    context.setdefault("app_name", "an official account")
    return Response(render_template_string(_AUTHORIZE_PAGE, **context), status=status, mimetype="text/html")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit(parts._replace(query=query))


@bp.get("/connect/oauth2/authorize")
def authorize() -> Response:
    """WeChat's authorize page: picks a sandbox user (``sandbox_user``) and redirects back with code and state."""
    state = sandbox_state()
    args = request.args
    app = state.find_app(args.get("appid"))
    if app is None or app.kind != "oa":
        return _page(400, error="appid参数错误 (invalid appid)")
    redirect_uri = args.get("redirect_uri", "")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _page(400, error="redirect_uri参数错误 (invalid redirect_uri)")
    scope = args.get("scope", "")
    if args.get("response_type") != "code" or scope not in OAUTH_SCOPES:
        return _page(400, error="scope参数错误或没有scope权限 (10005)")
    oauth_state = args.get("state", "")
    user_id = args.get("sandbox_user")
    if not user_id:
        with state.lock:
            users = sorted(state.users)
        params = [
            (name, args[name]) for name in ("appid", "redirect_uri", "response_type", "scope", "state") if name in args
        ]
        return _page(200, app_name=app.name or app.appid, scope=scope, users=users, params=params)
    with state.lock:
        user = state.users.get(user_id)
    if user is None:
        return _page(404, error=f"no sandbox user {user_id!r}")
    if args.get("sandbox_refuse") == "1":
        return redirect(_with_query(redirect_uri, state=oauth_state))
    code = state.issue_code("oauth", app.appid, user, scope=scope, snapshot=args.get("sandbox_snapshot") == "1")
    return redirect(_with_query(redirect_uri, code=code, state=oauth_state))


@bp.get("/sns/oauth2/access_token")
def exchange_code() -> dict[str, Any]:
    state = sandbox_state()
    app = state.app_or_error(request.args.get("appid"))
    state.check_secret(app, request.args.get("secret"))
    if request.args.get("grant_type") != "authorization_code":
        raise SandboxApiError(40002)
    state.charge_quota(app.appid, request.path)
    entry = state.redeem_code("oauth", app.appid, request.args.get("code"))
    with state.lock:
        user = state.users[entry.user_id]
    if entry.snapshot:
        # Snapshot pages hand out virtual identities that match no real user.
        openid, unionid = make_wechat_id(secrets.token_bytes(21)), make_wechat_id(secrets.token_bytes(21))
    else:
        openid, unionid = state.openid_for(user, app.appid), user.unionid
    grant = OAuthUserToken(
        token=secrets.token_urlsafe(64),
        appid=app.appid,
        openid=openid,
        unionid=unionid,
        scope=entry.scope,
        expires_at=state.clock() + TOKEN_LIFETIME_S,
        snapshot=entry.snapshot,
    )
    with state.lock:
        state.oauth_tokens[grant.token] = grant
    answer: dict[str, Any] = {
        "access_token": grant.token,
        "expires_in": TOKEN_LIFETIME_S,
        "refresh_token": secrets.token_urlsafe(64),
        "openid": openid,
        "scope": entry.scope,
    }
    if entry.scope == "snsapi_userinfo":
        answer["unionid"] = unionid
    if entry.snapshot:
        answer["is_snapshotuser"] = 1
    return answer


@bp.get("/sns/userinfo")
def userinfo() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        grant = state.oauth_tokens.get(request.args.get("access_token", ""))
    if grant is None:
        raise SandboxApiError(40001)
    if state.clock() >= grant.expires_at:
        raise SandboxApiError(42001)
    if request.args.get("openid") != grant.openid:
        raise SandboxApiError(40003)
    if grant.scope != "snsapi_userinfo":
        raise SandboxApiError(48001)
    nickname = "微信用户"
    if not grant.snapshot:
        with state.lock:
            owner = state.openid_owners[grant.openid]
            nickname = state.users[owner[1]].nickname
    return {
        "openid": grant.openid,
        "nickname": nickname,
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": "",
        "privilege": [],
        "unionid": grant.unionid,
    }
