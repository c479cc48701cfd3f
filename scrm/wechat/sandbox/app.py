"""The sandbox's WSGI application: WeChat's API paths, the control API, fault injection and call counters."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, redirect, request, url_for

from scrm.wechat.sandbox import control, messages_api, miniprogram_api, oauth_api, official_account_api
from scrm.wechat.sandbox.api_support import EXTENSION_KEY, sandbox_state
from scrm.wechat.sandbox.callbacks import CallbackPoster
from scrm.wechat.sandbox.models import SandboxApiError
from scrm.wechat.sandbox.state import TOKEN_PATHS, AppLoader, CallbackSettings, SandboxState

#: Paths that are the sandbox's own, not WeChat's: never counted, never faulted.
_OWN_PATH_PREFIXES = ("/sandbox", "/q/", "/static/")


def create_sandbox_app(
    *,
    target_url: str | None = None,
    callback_timeout_s: float = 5.0,
    callback_attempts: int = 3,
    app_loader: AppLoader | None = None,
) -> Flask:
    """Build a WSGI app that answers like WeChat's servers and can act as WeChat users.

    Args:
        target_url: Base URL of the service; callbacks go to ``<target_url>/wechat/<appid>/callback``.
        callback_timeout_s: How long a callback waits for the service's answer before trying again.
        callback_attempts: Tries per callback in all (WeChat makes three).
        app_loader: Called when an unknown appid shows up, to load apps (e.g. from the ``wechat_apps`` table).

    Returns:
        The Flask app; its state is ``app.extensions["scrm_wechat_sandbox"]`` (a :class:`SandboxState`).
    """
    app = Flask("scrm.wechat.sandbox")
    # WeChat answers UTF-8 JSON in its own field order.
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = SandboxState(
        CallbackSettings(target_url, callback_timeout_s, max(1, callback_attempts)), app_loader=app_loader
    )
    app.extensions[control.POSTER_KEY] = CallbackPoster()
    for blueprint in (
        official_account_api.bp,
        messages_api.bp,
        oauth_api.bp,
        miniprogram_api.bp,
        control.bp,
    ):
        app.register_blueprint(blueprint)
    app.before_request(_count_calls_and_inject_faults)
    app.register_error_handler(SandboxApiError, _wechat_error)
    app.add_url_rule("/", "home", lambda: redirect(url_for("sandbox_control.console")))
    app.add_url_rule("/q/<short_id>", "qr_landing", _qr_landing)
    return app


def _wechat_error(error: SandboxApiError) -> Response:
    # WeChat reports API errors with HTTP 200 and an errcode.
    return jsonify(error.to_json())


def _count_calls_and_inject_faults() -> Any:
    path = request.path
    if path == "/" or path.startswith(_OWN_PATH_PREFIXES):
        return None
    state = sandbox_state()
    fetching_appid = None
    if path in TOKEN_PATHS:
        body = request.get_json(force=True, silent=True)
        fetching_appid = request.args.get("appid") or (body.get("appid") if isinstance(body, dict) else None)
    state.record_call(path, token_fetch_appid=fetching_appid)
    fault = state.take_fault(path)
    if fault is None:
        return None
    if fault.stall_seconds:
        state.stopping.wait(fault.stall_seconds)  # an Event, so shutting down releases stalled requests
    if fault.http_status is not None:
        return Response(
            f"sandbox: injected HTTP {fault.http_status}\n", status=fault.http_status, mimetype="text/plain"
        )
    if fault.errcode is not None:
        return _wechat_error(SandboxApiError(fault.errcode, fault.errmsg))
    return None


def _qr_landing(short_id: str) -> Response:
    """Where a QR code's ``url`` leads: the console, ready to scan the ticket as a sandbox user."""
    state = sandbox_state()
    with state.lock:
        qr = state.tickets_by_short_id.get(short_id)
    if qr is None:
        return Response("unknown QR code\n", status=404, mimetype="text/plain")
    return redirect(url_for("sandbox_control.console", ticket=qr.ticket))
