"""Request helpers shared by the sandbox's WeChat API endpoints."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from scrm.wechat.sandbox.models import SandboxApiError, SandboxApp
from scrm.wechat.sandbox.state import SandboxState

EXTENSION_KEY = "scrm_wechat_sandbox"


def sandbox_state() -> SandboxState:
    return current_app.extensions[EXTENSION_KEY]


def json_body() -> dict[str, Any]:
    """The request's JSON object; WeChat answers 47001 to anything else."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise SandboxApiError(47001)
    return body


def authenticated_app(kind: str | None = None, *, quota_key: str | None = None) -> SandboxApp:
    """Check the ``access_token`` query parameter and charge the call to the app's daily quota.

    Args:
        kind: "oa" or "miniprogram" when only that kind may call the API (48001 otherwise).
        quota_key: The quota bucket; the request path by default.
    """
    state = sandbox_state()
    app = state.authenticate(request.args.get("access_token"))
    claimed_appid = request.args.get("appid")
    if claimed_appid and claimed_appid != app.appid:
        # The token speaks for another app than the request names.
        raise SandboxApiError(40001)
    if kind is not None and app.kind != kind:
        raise SandboxApiError(48001)
    state.charge_quota(app.appid, quota_key or request.path)
    return app


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def require_openid_list(value: Any, *, at_most: int) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > at_most:
        raise SandboxApiError(40032)
    if not all(isinstance(openid, str) for openid in value):
        raise SandboxApiError(40003)
    return value
