"""The sandbox's own control API under ``/sandbox/``: set it up, act as users, inject faults, read what happened."""

from __future__ import annotations

import secrets
import string
from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from scrm.wechat.apps import AppCredentials
from scrm.wechat.sandbox import actions
from scrm.wechat.sandbox.actions import ControlError, UserAction
from scrm.wechat.sandbox.api_support import sandbox_state
from scrm.wechat.sandbox.callbacks import CallbackPoster
from scrm.wechat.sandbox.models import InjectedFault, SandboxApp

bp = Blueprint("sandbox_control", __name__, url_prefix="/sandbox")

POSTER_KEY = "scrm_wechat_sandbox_poster"
_PROFILE_FIELDS = {"nickname": str, "phone": str, "country_code": str, "risk_rank": int}


def _body() -> dict[str, Any]:
    if not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{name} is required and must be a non-empty string")
    return value


def _profile(body: dict[str, Any]) -> dict[str, Any]:
    profile = {}
    for name, expected in _PROFILE_FIELDS.items():
        if name in body:
            if not isinstance(body[name], expected):
                raise ControlError(400, f"{name} must be a {expected.__name__}")
            profile[name] = body[name]
    phone = profile.get("phone")
    if phone and phone.startswith("+86"):
        profile["phone"], profile["country_code"] = phone[3:], "86"
    return profile


def _callback_url(app: SandboxApp) -> str | None:
    target = sandbox_state().callbacks.target_url
    if app.callback_url:
        return app.callback_url
    return f"{target.rstrip('/')}/wechat/{app.appid}/callback" if target else None


def _deliver(action: UserAction) -> dict[str, Any]:
    """Post the action's callback outside the state lock (the service may call the sandbox back meanwhile)."""
    state = sandbox_state()
    result: dict[str, Any] = {"appid": action.app.appid, "openid": action.openid, **action.summary, "callback": None}
    if action.callback_fields is None:
        return result
    settings = state.callbacks
    poster: CallbackPoster = current_app.extensions[POSTER_KEY]
    report = poster.deliver(
        action.app,
        action.callback_fields,
        url=_callback_url(action.app),
        openid=action.openid,
        timeout_s=settings.timeout_s,
        attempts=settings.attempts,
    )
    with state.lock:
        state.callback_log.append({"appid": action.app.appid, "openid": action.openid, **action.summary, **report})
    result["callback"] = report
    return result


@bp.get("/")
def console() -> Response:
    page = resources.files("scrm.wechat.sandbox").joinpath("console.html").read_text(encoding="utf-8")
    return Response(page, mimetype="text/html")


@bp.get("/config")
def get_config() -> dict[str, Any]:
    settings = sandbox_state().callbacks
    return {
        "target_url": settings.target_url,
        "callback_timeout_s": settings.timeout_s,
        "callback_attempts": settings.attempts,
    }


@bp.put("/config")
def put_config() -> dict[str, Any]:
    body = _body()
    state = sandbox_state()
    with state.lock:
        if "target_url" in body:
            state.callbacks.target_url = body["target_url"] or None
        if "callback_timeout_s" in body:
            state.callbacks.timeout_s = float(body["callback_timeout_s"])
        if "callback_attempts" in body:
            state.callbacks.attempts = max(1, int(body["callback_attempts"]))
    return get_config()


@bp.post("/reset")
def reset() -> dict[str, Any]:
    sandbox_state().reset()
    return {"reset": True}


@bp.get("/apps")
def list_apps() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        return {"apps": [app.public() for app in state.apps.values()]}


@bp.post("/apps")
def register_app() -> tuple[dict[str, Any], int]:
    """Register an app; an OA without a token or EncodingAESKey gets generated ones, returned once, here."""
    body = _body()
    kind = body.get("kind", "oa")
    token, aes_key = body.get("token"), body.get("encoding_aes_key")
    if kind == "oa":
        token = token or secrets.token_hex(16)
        aes_key = aes_key or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
    try:
        credentials = AppCredentials(
            appid=_text(body, "appid"),
            secret=body.get("secret") or secrets.token_hex(16),
            kind=kind,
            token=token,
            encoding_aes_key=aes_key,
            mode=body.get("mode", "safe"),
            original_id=body.get("original_id"),
            name=body.get("name"),
        )
    except (TypeError, ValueError) as error:
        raise ControlError(400, str(error)) from None
    app = SandboxApp.from_credentials(credentials)
    app.callback_url = body.get("callback_url")
    app.pages = set(body.get("pages") or ())
    sandbox_state().register_app(app)
    secrets_once = {"secret": app.secret, "token": app.token, "encoding_aes_key": app.encoding_aes_key}
    return {
        "app": app.public(),
        "credentials": {"appid": app.appid, "original_id": app.original_id, **secrets_once},
    }, 201


@bp.get("/apps/<appid>")
def get_app(appid: str) -> dict[str, Any]:
    app = sandbox_state().find_app(appid)
    if app is None:
        raise ControlError(404, f"no sandbox app {appid!r}")
    return {"app": app.public(), "menu": app.menu}


@bp.post("/apps/<appid>/expire-tokens")
def expire_tokens(appid: str) -> dict[str, Any]:
    return {"appid": appid, "expired": sandbox_state().expire_tokens(appid)}


@bp.get("/users")
def list_users() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        users = list(state.users.values())
    return {"users": [state.user_json(user) for user in users]}


@bp.post("/users")
def create_user() -> tuple[dict[str, Any], int]:
    body = _body()
    state = sandbox_state()
    try:
        user = state.create_user(body.get("user_id"), **_profile(body))
    except ValueError as error:
        raise ControlError(409, str(error)) from None
    return {"user": state.user_json(user)}, 201


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> dict[str, Any]:
    state = sandbox_state()
    if request.args.get("appid"):
        state.find_app(request.args["appid"])  # lets the app loader bring the app in, so its openid is listed
    return {"user": state.user_json(actions.get_user(state, user_id))}


@bp.patch("/users/<user_id>")
def update_user(user_id: str) -> dict[str, Any]:
    state = sandbox_state()
    user = actions.get_user(state, user_id)
    with state.lock:
        for name, value in _profile(_body()).items():
            setattr(user, name, value)
    return {"user": state.user_json(user)}


@bp.post("/users/<user_id>/follow")
def follow(user_id: str) -> dict[str, Any]:
    body = _body()
    scene = body.get("subscribe_scene", "ADD_SCENE_SEARCH")
    return _deliver(actions.follow(sandbox_state(), user_id, _text(body, "appid"), subscribe_scene=scene))


@bp.post("/users/<user_id>/scan")
def scan(user_id: str) -> dict[str, Any]:
    return _deliver(actions.scan(sandbox_state(), user_id, _text(_body(), "ticket")))


@bp.post("/users/<user_id>/unfollow")
def unfollow(user_id: str) -> dict[str, Any]:
    return _deliver(actions.unfollow(sandbox_state(), user_id, _text(_body(), "appid")))


@bp.post("/users/<user_id>/text")
def send_text(user_id: str) -> dict[str, Any]:
    body = _body()
    return _deliver(actions.send_text(sandbox_state(), user_id, _text(body, "appid"), _text(body, "content")))


@bp.post("/users/<user_id>/click")
def click(user_id: str) -> dict[str, Any]:
    body = _body()
    return _deliver(actions.click_menu(sandbox_state(), user_id, _text(body, "appid"), _text(body, "key")))


@bp.post("/users/<user_id>/view")
def view(user_id: str) -> dict[str, Any]:
    body = _body()
    return _deliver(actions.view_menu(sandbox_state(), user_id, _text(body, "appid"), _text(body, "url")))


@bp.post("/users/<user_id>/subscribe-popup")
def subscribe_popup(user_id: str) -> dict[str, Any]:
    body = _body()
    template_ids = body.get("template_ids")
    if not isinstance(template_ids, list) or not all(isinstance(t, str) for t in template_ids):
        raise ControlError(400, "template_ids must be a list of strings")
    action = actions.answer_subscribe_popup(
        sandbox_state(), user_id, _text(body, "appid"), template_ids, accept=body.get("accept", True) is not False
    )
    return _deliver(action)


@bp.post("/users/<user_id>/miniprogram/login")
def miniprogram_login(user_id: str) -> dict[str, Any]:
    return actions.open_miniprogram(sandbox_state(), user_id, _text(_body(), "appid"))


@bp.post("/users/<user_id>/miniprogram/phone")
def miniprogram_phone(user_id: str) -> dict[str, Any]:
    return actions.share_phone_number(sandbox_state(), user_id, _text(_body(), "appid"))


@bp.get("/messages")
def list_messages() -> dict[str, Any]:
    state = sandbox_state()
    filters = {name: request.args[name] for name in ("appid", "openid", "kind", "user_id") if name in request.args}
    with state.lock:
        sent = [m.public() for m in state.messages if all(getattr(m, k) == v for k, v in filters.items())]
    return {"messages": sent}


@bp.get("/callbacks")
def list_callbacks() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        return {"callbacks": list(state.callback_log)}


@bp.get("/tickets")
def list_tickets() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        now = state.clock()
        return {"tickets": [qr.public(now) for qr in state.tickets.values()]}


@bp.post("/sms")
def send_sms() -> tuple[dict[str, Any], int]:
    """The SMS outbox the member centre's one-time-code sender writes to in development and tests."""
    body = _body()
    state = sandbox_state()
    with state.lock:
        message = {
            "id": len(state.sms) + 1,
            "phone": _text(body, "phone"),
            "text": _text(body, "text"),
            "sent_at": state.clock(),
        }
        state.sms.append(message)
    return message, 201


@bp.get("/sms")
def list_sms() -> dict[str, Any]:
    state = sandbox_state()
    phone = request.args.get("phone")
    with state.lock:
        return {"messages": [m for m in state.sms if phone is None or m["phone"] == phone]}


@bp.get("/quotas")
def get_quotas() -> dict[str, Any]:
    return sandbox_state().quotas_json()


@bp.put("/quotas")
def put_quota() -> dict[str, Any]:
    body = _body()
    limit = body.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ControlError(400, "limit must be a non-negative integer or null (unlimited)")
    sandbox_state().set_quota(_text(body, "path"), limit, body.get("appid"))
    return sandbox_state().quotas_json()


def _count(body: dict[str, Any]) -> int | None:
    count = body.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ControlError(400, "count must be a positive integer, or absent for every call until cleared")
    return count


@bp.post("/faults/stall")
def stall() -> dict[str, Any]:
    body = _body()
    seconds = body.get("seconds")
    if not isinstance(seconds, int | float) or seconds <= 0:
        raise ControlError(400, "seconds must be a positive number")
    fault = InjectedFault(path=_text(body, "path"), stall_seconds=float(seconds), remaining=_count(body))
    sandbox_state().add_fault(fault)
    return {"fault": fault.public()}


@bp.post("/faults/errcode")
def inject_errcode() -> dict[str, Any]:
    body = _body()
    errcode = body.get("errcode")
    if not isinstance(errcode, int) or errcode == 0:
        raise ControlError(400, "errcode must be a non-zero integer")
    count = _count(body) or 1
    fault = InjectedFault(path=_text(body, "path"), errcode=errcode, errmsg=body.get("errmsg"), remaining=count)
    sandbox_state().add_fault(fault)
    return {"fault": fault.public()}


@bp.post("/faults/http-status")
def inject_http_status() -> dict[str, Any]:
    body = _body()
    status = body.get("status")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ControlError(400, "status must be an HTTP error status (400-599)")
    fault = InjectedFault(path=_text(body, "path"), http_status=status, remaining=_count(body) or 1)
    sandbox_state().add_fault(fault)
    return {"fault": fault.public()}


@bp.get("/faults")
def list_faults() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        return {"faults": [fault.public() for fault in state.faults.values()]}


@bp.delete("/faults")
def clear_faults() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        state.faults.clear()
    return {"faults": []}


@bp.get("/stats")
def get_stats() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        return state.stats.public()


@bp.delete("/stats")
def reset_stats() -> dict[str, Any]:
    state = sandbox_state()
    with state.lock:
        state.stats.token_fetches.clear()
        state.stats.calls.clear()
        return state.stats.public()


@bp.errorhandler(ControlError)
def control_error(error: ControlError) -> tuple[Response, int]:
    return jsonify(error=error.message), error.status
