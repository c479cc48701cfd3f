"""The sandbox's ``cgi-bin`` endpoints for tokens, QR codes, users, tags and the menu, shaped as WeChat's."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, request

from scrm.wechat.sandbox.api_support import authenticated_app, json_body, ok, require_openid_list, sandbox_state
from scrm.wechat.sandbox.models import SandboxApiError, SandboxApp, SandboxUser
from scrm.wechat.sandbox.png import pattern_png
from scrm.wechat.sandbox.state import FORCE_REFRESH_QUOTA_KEY, TOKEN_LIFETIME_S

bp = Blueprint("sandbox_official_account_api", __name__)

MAX_QR_EXPIRE_SECONDS = 2_592_000
DEFAULT_QR_EXPIRE_SECONDS = 30
MAX_TAGS = 100
MAX_TAGS_PER_USER = 20


def _check_grant_type(grant_type: Any) -> None:
    if grant_type != "client_credential":
        raise SandboxApiError(40002)


@bp.get("/cgi-bin/token")
def token() -> dict[str, Any]:
    state = sandbox_state()
    _check_grant_type(request.args.get("grant_type"))
    app = state.app_or_error(request.args.get("appid"))
    state.check_secret(app, request.args.get("secret"))
    state.charge_quota(app.appid, request.path)
    issued = state.issue_token(app)
    return {"access_token": issued.token, "expires_in": TOKEN_LIFETIME_S}


@bp.post("/cgi-bin/stable_token")
def stable_token() -> dict[str, Any]:
    state = sandbox_state()
    body = json_body()
    _check_grant_type(body.get("grant_type"))
    app = state.app_or_error(body.get("appid"))
    state.check_secret(app, body.get("secret"))
    force_refresh = body.get("force_refresh") is True
    state.charge_quota(app.appid, request.path)
    if force_refresh:
        state.charge_quota(app.appid, FORCE_REFRESH_QUOTA_KEY)
    issued = state.stable_token(app, force_refresh=force_refresh)
    return {"access_token": issued.token, "expires_in": max(0, round(issued.expires_at - state.clock()))}


@bp.post("/cgi-bin/qrcode/create")
def create_qrcode() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    body = json_body()
    action_name = body.get("action_name")
    # A body without the "scene" wrapper silently yields scene 0, as on WeChat (a known pitfall).
    scene = (body.get("action_info") or {}).get("scene") or {}
    scene_str: str | None = None
    scene_id: int | None = None
    if action_name in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
        scene_str = scene.get("scene_str")
        if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= 64:
            raise SandboxApiError(40097)
    elif action_name in ("QR_SCENE", "QR_LIMIT_SCENE"):
        scene_id = scene.get("scene_id", 0)
        upper = 100_000 if action_name == "QR_LIMIT_SCENE" else 2**32 - 1
        if not isinstance(scene_id, int) or not 0 <= scene_id <= upper:
            raise SandboxApiError(40097)
    else:
        raise SandboxApiError(40097)
    permanent = action_name.startswith("QR_LIMIT")
    expire_seconds = None
    if not permanent:
        requested = body.get("expire_seconds", DEFAULT_QR_EXPIRE_SECONDS)
        if not isinstance(requested, int) or requested <= 0:
            raise SandboxApiError(40097)
        expire_seconds = min(requested, MAX_QR_EXPIRE_SECONDS)  # WeChat caps temporary codes at 30 days
    qr = state.create_ticket(app, scene_str=scene_str, scene_id=scene_id, expire_seconds=expire_seconds)
    answer: dict[str, Any] = {"ticket": qr.ticket, "url": f"{request.host_url}q/{qr.short_id}"}
    if expire_seconds is not None:
        answer["expire_seconds"] = expire_seconds
    return answer


@bp.get("/cgi-bin/showqrcode")
def show_qrcode() -> Response:
    qr = sandbox_state().live_ticket(request.args.get("ticket", ""))
    if qr is None:
        abort(404)
    return Response(pattern_png(qr.ticket, 430), mimetype="image/png")


def _user_info(app: SandboxApp, user: SandboxUser, openid: str, lang: str) -> dict[str, Any]:
    relation = user.follows.get(app.appid)
    if relation is None or not relation.subscribed:
        return {"subscribe": 0, "openid": openid, "unionid": user.unionid}
    return {
        "subscribe": 1,
        "openid": openid,
        "language": lang,
        "subscribe_time": relation.subscribe_time,
        "unionid": user.unionid,
        "remark": relation.remark,
        "groupid": 0,
        "tagid_list": list(relation.tagids),
        "subscribe_scene": relation.subscribe_scene,
        "qr_scene": relation.qr_scene,
        "qr_scene_str": relation.qr_scene_str,
    }


@bp.get("/cgi-bin/user/info")
def user_info() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    openid = request.args.get("openid", "")
    user = state.user_by_openid(app.appid, openid)
    with state.lock:
        return _user_info(app, user, openid, request.args.get("lang", "zh_CN"))


@bp.post("/cgi-bin/user/info/batchget")
def batch_user_info() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    entries = json_body().get("user_list")
    if not isinstance(entries, list) or not 0 < len(entries) <= 100:
        raise SandboxApiError(40032)
    infos = []
    for entry in entries:
        openid = entry.get("openid", "") if isinstance(entry, dict) else ""
        user = state.user_by_openid(app.appid, openid)
        with state.lock:
            infos.append(_user_info(app, user, openid, entry.get("lang", "zh_CN")))
    return {"user_info_list": infos}


@bp.post("/cgi-bin/tags/create")
def create_tag() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    name = (json_body().get("tag") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise SandboxApiError(45157)
    if len(name.encode("utf-8")) > 30:
        raise SandboxApiError(45158)
    with state.lock:
        if name in app.tags.values():
            raise SandboxApiError(45157)
        if len(app.tags) >= MAX_TAGS:
            raise SandboxApiError(45056)
        tagid, app.next_tagid = app.next_tagid, app.next_tagid + 1
        app.tags[tagid] = name
    return {"tag": {"id": tagid, "name": name}}


@bp.get("/cgi-bin/tags/get")
def list_tags() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    with state.lock:
        holders = [f.tagids for user in state.users.values() if (f := user.follows.get(app.appid)) is not None]
        counts = {tagid: sum(tagid in tagids for tagids in holders) for tagid in app.tags}
        return {
            "tags": [{"id": tagid, "name": name, "count": counts[tagid]} for tagid, name in sorted(app.tags.items())]
        }


def _change_tags(*, add: bool) -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    body = json_body()
    openids = require_openid_list(body.get("openid_list"), at_most=50)
    tagid = body.get("tagid")
    users = [state.user_by_openid(app.appid, openid) for openid in openids]
    with state.lock:
        if tagid not in app.tags:
            raise SandboxApiError(45159)
        relations = [user.follow(app.appid) for user in users]
        if add and any(tagid not in r.tagids and len(r.tagids) >= MAX_TAGS_PER_USER for r in relations):
            raise SandboxApiError(45059)
        for relation in relations:
            if add and tagid not in relation.tagids:
                relation.tagids.append(tagid)
            elif not add and tagid in relation.tagids:
                relation.tagids.remove(tagid)
    return ok()


@bp.post("/cgi-bin/tags/members/batchtagging")
def tag_users() -> dict[str, Any]:
    return _change_tags(add=True)


@bp.post("/cgi-bin/tags/members/batchuntagging")
def untag_users() -> dict[str, Any]:
    return _change_tags(add=False)


def _check_menu(buttons: Any) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise SandboxApiError(40016)
    for button in buttons:
        subs = button.get("sub_button") if isinstance(button, dict) else None
        if subs:
            if len(subs) > 5:
                raise SandboxApiError(40023)
            _check_buttons(subs)
        else:
            _check_buttons([button])


def _check_buttons(buttons: list[Any]) -> None:
    for button in buttons:
        if not isinstance(button, dict) or not button.get("name"):
            raise SandboxApiError(40016)
        if button.get("type") == "click" and not button.get("key"):
            raise SandboxApiError(40019)
        if button.get("type") == "view" and not button.get("url"):
            raise SandboxApiError(40020)


@bp.post("/cgi-bin/menu/create")
def create_menu() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    body = json_body()
    _check_menu(body.get("button"))
    with state.lock:
        app.menu = {"button": body["button"]}
    return ok()


@bp.get("/cgi-bin/menu/get")
def get_menu() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    with state.lock:
        if app.menu is None:
            raise SandboxApiError(46003)
        return {"menu": app.menu}


@bp.get("/cgi-bin/get_current_selfmenu_info")
def get_current_selfmenu_info() -> dict[str, Any]:
    state = sandbox_state()
    app = authenticated_app("oa")
    with state.lock:
        return {"is_menu_open": int(app.menu is not None), "selfmenu_info": app.menu or {"button": []}}
