"""Kernel routes: health probes, staff sessions, staff users and the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select, text

from scrm import auth, wechat_apps
from scrm.context import db_session, ext
from scrm.db import paginate
from scrm.guards import bearer_token, client_ip, staff_actor
from scrm.http import PageArgsSchema, page_schema, staff_route
from scrm.models import AuditEntry, StaffUser
from scrm.ratelimit import RateLimiter
from scrm.schemas import (
    AuditEntrySchema,
    AuditQueryArgsSchema,
    StaffLoginSchema,
    StaffTokenSchema,
    StaffUserCreateSchema,
    StaffUserSchema,
    StaffUserUpdateSchema,
    WeChatAppRegisterSchema,
    WeChatAppSchema,
    WeChatAppUpdateSchema,
)
from scrm.secretbox import SecretBox

health_bp = FlaskBlueprint("health", __name__)


@health_bp.get("/healthz")
def healthz() -> Any:
    """The process is alive."""
    return jsonify(status="ok")


@health_bp.get("/readyz")
def readyz() -> Any:
    """The database (and Redis, when configured) answer; 503 otherwise."""
    checks: dict[str, str] = {}
    scrm = ext()
    try:
        with scrm.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unavailable"
    if scrm.redis is not None:
        try:
            scrm.redis.ping()
            checks["redis"] = "ok"
        except Exception:
            checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    response = jsonify(status="ready" if ready else "unavailable", checks=checks)
    response.status_code = 200 if ready else 503
    return response


staff_bp = Blueprint("staff", __name__, url_prefix="/api/v1/staff", description="Staff sessions, users and audit log")


def limiter() -> RateLimiter:
    services = ext().services
    if "rate_limiter" not in services:
        services["rate_limiter"] = RateLimiter(ext().redis)
    return services["rate_limiter"]


@staff_bp.route("/session")
class StaffSessionView(MethodView):
    @staff_bp.arguments(StaffLoginSchema)
    @staff_bp.response(201, StaffTokenSchema)
    @staff_bp.alt_response(401, description="Invalid username or password")
    @staff_bp.alt_response(429, description="Too many login attempts")
    def post(self, data: dict[str, Any]) -> Any:
        """Log in with a username and password; returns a bearer token."""
        per_min = ext().config.staff_login_rate_per_min
        limiter().hit(f"staff-login:ip:{client_ip()}", limit=per_min * 3, window_s=60)
        limiter().hit(f"staff-login:user:{data['username'].lower()}", limit=per_min, window_s=60)
        session = db_session()
        issued = auth.login_staff(
            session, username=data["username"], password=data["password"], ttl_s=ext().config.staff_token_ttl_s
        )
        session.commit()
        return {"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in, "user": issued.user}

    @staff_route(staff_bp, status=204)
    def delete(self) -> None:
        """Log out: revoke the token used for this request."""
        session = db_session()
        auth.logout_staff(session, bearer_token() or "")
        session.commit()


@staff_bp.route("/me")
class StaffMeView(MethodView):
    @staff_route(staff_bp, schema=StaffUserSchema)
    def get(self) -> Any:
        """The staff user behind the token."""
        from scrm.guards import current_staff

        return current_staff()


@staff_bp.route("/users")
class StaffUsersView(MethodView):
    @staff_route(staff_bp, "admin", args=PageArgsSchema, location="query", schema=page_schema(StaffUserSchema))
    def get(self, page: dict[str, Any]) -> Any:
        """List staff users (admin)."""
        items, total = paginate(db_session(), select(StaffUser).order_by(StaffUser.id), **page)
        return {"items": items, "page": {**page, "total": total}}

    @staff_route(
        staff_bp,
        "admin",
        args=StaffUserCreateSchema,
        status=201,
        schema=StaffUserSchema,
        errors={409: "Username taken"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Create a staff user (admin)."""
        session = db_session()
        user = auth.create_staff_user(session, actor=staff_actor(), **data)
        session.commit()
        return user


@staff_bp.route("/users/<int:user_id>")
class StaffUserView(MethodView):
    @staff_route(staff_bp, "admin", args=StaffUserUpdateSchema, schema=StaffUserSchema)
    def patch(self, data: dict[str, Any], user_id: int) -> Any:
        """Change a staff user's role, name, password or active flag (admin)."""
        session = db_session()
        user = auth.update_staff_user(session, user_id, actor=staff_actor(), **data)
        session.commit()
        return user


@staff_bp.route("/audit")
class AuditLogView(MethodView):
    @staff_bp.arguments(AuditQueryArgsSchema, location="query", as_kwargs=True)
    @staff_route(staff_bp, "auditor", args=PageArgsSchema, location="query", schema=page_schema(AuditEntrySchema))
    def get(self, page: dict[str, Any], **filters: Any) -> Any:
        """Search the audit log, newest first (admin, auditor)."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc())
        for name, value in filters.items():
            query = query.where(getattr(AuditEntry, name) == value)
        items, total = paginate(db_session(), query, **page)
        return {"items": items, "page": {**page, "total": total}}


wechat_apps_bp = Blueprint(
    "wechat_apps",
    __name__,
    url_prefix="/api/v1/staff/wechat-apps",
    description="The brand's official accounts and mini-programs (admin)",
)


def _app_view(app: Any) -> dict[str, Any]:
    return {
        **wechat_apps.public_view(app),
        "callback_path": f"/wechat/{app.appid}/callback" if app.kind == "oa" else "",
    }


@wechat_apps_bp.route("")
class WeChatAppsView(MethodView):
    @staff_route(wechat_apps_bp, "admin", schema=WeChatAppSchema(many=True))
    def get(self) -> Any:
        """List the registered apps (credentials are never shown)."""
        return [_app_view(app) for app in wechat_apps.list_apps(db_session())]

    @staff_route(wechat_apps_bp, "admin", args=WeChatAppRegisterSchema, status=201, schema=WeChatAppSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register an app, or replace the settings and credentials of a registered one."""
        config = ext().config
        session = db_session()
        app = wechat_apps.register_app(
            session,
            SecretBox(config.secret_key),
            actor=staff_actor(),
            allow_plain=config.env != "prod" or config.wechat_allow_plain_mode,
            **data,
        )
        session.commit()
        return _app_view(app)


@wechat_apps_bp.route("/<appid>")
class WeChatAppView(MethodView):
    @staff_route(wechat_apps_bp, "admin", args=WeChatAppUpdateSchema, schema=WeChatAppSchema)
    def patch(self, data: dict[str, Any], appid: str) -> Any:
        """Activate or deactivate an app (a deactivated OA's callbacks get 404)."""
        session = db_session()
        app = wechat_apps.set_app_active(session, appid, is_active=data["is_active"], actor=staff_actor())
        session.commit()
        return _app_view(app)
