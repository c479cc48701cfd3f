"""The official-account callback endpoint, and the staff API for auto-replies and the inbox."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from scrm import outbox
from scrm.cache import TTLCache
from scrm.context import db_session, ext, gateway
from scrm.errors import NotFound
from scrm.guards import staff_actor
from scrm.http import PageArgsSchema, error_response, page_schema, staff_route
from scrm.secretbox import SecretBox
from scrm.wechat_apps import load_app
from wechat_handlers import selectors, services
from wechat_handlers.apps import CallbackApp
from wechat_handlers.autoreply import choose_rule, render_reply
from wechat_handlers.errors import CallbackRejected
from wechat_handlers.pipeline import body_digest, open_callback, replay_digest, verify_echo
from wechat_handlers.replies import ACK_SUCCESS, seal_reply
from wechat_handlers.rules import ReplyRule
from wechat_handlers.schemas import (
    AutoReplyRuleCreateSchema,
    AutoReplyRuleSchema,
    AutoReplyRuleUpdateSchema,
    InboxMessageSchema,
    InboxQueryArgsSchema,
    MenuSchema,
    RuleQueryArgsSchema,
)
from wechat_handlers.security import MAX_BODY_BYTES, check_declared_length

log = logging.getLogger(__name__)

callback_bp = FlaskBlueprint("wechat_callbacks", __name__)

APP_CACHE_TTL_S = 10.0
RULE_CACHE_TTL_S = 5.0


def _state() -> dict[str, Any]:
    services_ = ext().services
    if "wechat_callbacks" not in services_:
        services_["wechat_callbacks"] = {
            "apps": TTLCache[str, CallbackApp | None](APP_CACHE_TTL_S),
            "rules": TTLCache[str, tuple[ReplyRule, ...]](RULE_CACHE_TTL_S),
            "box": SecretBox(ext().config.secret_key),
        }
    return services_["wechat_callbacks"]


def _callback_app(appid: str) -> CallbackApp | None:
    state = _state()

    def load() -> CallbackApp | None:
        # Its own short transaction: the request's session may still be switched to autocommit (see `receive`).
        with ext().db.transaction() as session:
            record = load_app(session, state["box"], appid)
        if record is None or record.kind != "oa" or not record.token:
            return None
        return CallbackApp(
            appid=record.appid,
            token=record.token,
            encoding_aes_key=record.encoding_aes_key,
            mode=record.mode,
            original_id=record.original_id,
        )

    return state["apps"].get(appid, load)


def _rejected(rejection: CallbackRejected) -> Response:
    # The code and status say what failed; the body of the request is never echoed.
    log.info("wechat callback rejected", extra={"code": rejection.code, "status": rejection.status})
    return error_response(rejection.status, rejection.message, code=rejection.code)


def _unknown_app() -> Response:
    return error_response(404, "No official account with this appid is configured.", code="unknown_app")


@callback_bp.get("/wechat/<appid>/callback")
def verify_url(appid: str) -> Response:
    """WeChat's URL verification: echo `echostr` when the signature is valid."""
    app = _callback_app(appid)
    if app is None:
        return _unknown_app()
    try:
        echo = verify_echo(query=request.args, app=app, now=time.time(), window_s=ext().config.wechat_replay_window_s)
    except CallbackRejected as rejection:
        return _rejected(rejection)
    return Response(echo, mimetype="text/plain")


@callback_bp.post("/wechat/<appid>/callback")
def receive(appid: str) -> Response:
    """A message or event: verify, decrypt, store once, answer `success` or a passive reply."""
    app = _callback_app(appid)
    if app is None:
        return _unknown_app()
    config = ext().config
    now = time.time()
    try:
        check_declared_length(request.content_length)
        raw_body = request.stream.read(MAX_BODY_BYTES + 1)
        message = open_callback(
            raw_body=raw_body,
            query=request.args,
            content_type=request.content_type,
            app=app,
            now=now,
            window_s=config.wechat_replay_window_s,
            content_length=request.content_length,
        )
    except CallbackRejected as rejection:
        return _rejected(rejection)

    state = _state()
    signed_query, digest = replay_digest(request.args), body_digest(raw_body)
    # Chosen before storing, so a failure here cannot leave a stored message whose reply was never sent.
    rule = choose_rule(state["rules"].get(appid, lambda: selectors.active_rules(db_session(), appid)), message)
    scrm = ext()
    if scrm.db.autocommit_writes:
        # The hot path: one statement, committed when it returns (success goes back only after that).
        inbox_id = services.store_message_committed(
            scrm.db, appid=appid, message=message, replay_key=signed_query, body_digest=digest
        )
        if inbox_id is not None:
            scrm.runner.notify([outbox.queue_of(services.PROCESS_INBOX)])
    else:
        session = db_session()
        inbox_id = services.store_message(
            session, appid=appid, message=message, replay_key=signed_query, body_digest=digest
        )
        if inbox_id is not None:
            session.commit()
    if inbox_id is None:
        # The message or this signed query is already stored: WeChat retrying (success, nothing done twice), or
        # someone replaying a captured query with another body (refused).
        if selectors.replayed_with_another_body(db_session(), appid=appid, replay_key=signed_query, body_digest=digest):
            return _rejected(CallbackRejected("replayed_query"))
        return Response(ACK_SUCCESS, mimetype="text/plain")
    if rule is None:
        return Response(ACK_SUCCESS, mimetype="text/plain")
    reply = render_reply(rule, message, create_time=int(now))
    sealed = seal_reply(reply, app=app, nonce=request.args.get("nonce", ""), timestamp=str(int(now)))
    return Response(sealed, mimetype="application/xml")


staff_bp = Blueprint(
    "wechat_staff", __name__, url_prefix="/api/v1/staff/wechat", description="Auto-reply rules and the callback inbox"
)


def _invalidate_rules() -> None:
    _state()["rules"].invalidate()


@staff_bp.route("/auto-replies")
class AutoReplyRules(MethodView):
    @staff_bp.arguments(RuleQueryArgsSchema, location="query", as_kwargs=True)
    @staff_route(
        staff_bp, "campaign_manager", args=PageArgsSchema, location="query", schema=page_schema(AutoReplyRuleSchema)
    )
    def get(self, page: dict[str, Any], appid: str | None = None) -> Any:
        """List auto-reply rules (admin, campaign_manager)."""
        rows, total = selectors.list_rules(db_session(), appid=appid, limit=page["limit"], offset=page["offset"])
        return {"items": rows, "page": {**page, "total": total}}

    @staff_route(staff_bp, "campaign_manager", args=AutoReplyRuleCreateSchema, status=201, schema=AutoReplyRuleSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an auto-reply rule (admin, campaign_manager)."""
        session = db_session()
        rule = services.create_rule(session, actor=staff_actor(), **data)
        session.commit()
        _invalidate_rules()
        return rule


@staff_bp.route("/auto-replies/<int:rule_id>")
class AutoReplyRuleById(MethodView):
    @staff_route(staff_bp, "campaign_manager", args=AutoReplyRuleUpdateSchema, schema=AutoReplyRuleSchema)
    def patch(self, data: dict[str, Any], rule_id: int) -> Any:
        """Change an auto-reply rule (admin, campaign_manager)."""
        session = db_session()
        rule = services.update_rule(session, rule_id, actor=staff_actor(), **data)
        session.commit()
        _invalidate_rules()
        return rule

    @staff_route(staff_bp, "campaign_manager", status=204)
    def delete(self, rule_id: int) -> None:
        """Delete an auto-reply rule (admin, campaign_manager)."""
        session = db_session()
        services.delete_rule(session, rule_id, actor=staff_actor())
        session.commit()
        _invalidate_rules()


@staff_bp.route("/menus/<appid>")
class Menu(MethodView):
    @staff_route(staff_bp, "campaign_manager", schema=MenuSchema)
    def get(self, appid: str) -> Any:
        """The official account's current custom menu, read from WeChat (admin, campaign_manager)."""
        _require_official_account(appid)
        current = gateway().get_menu(appid)
        return {"button": ((current or {}).get("menu") or {}).get("button", [])}

    @staff_route(staff_bp, "campaign_manager", args=MenuSchema, schema=MenuSchema)
    def put(self, menu: dict[str, Any], appid: str) -> Any:
        """Publish a custom menu to WeChat; audited (admin, campaign_manager)."""
        _require_official_account(appid)
        session = db_session()
        previous = gateway().get_menu(appid)
        gateway().create_menu(appid, menu)
        # WeChat has the new menu now; the audit row records it even though the change lives at WeChat.
        services.record_menu_published(session, appid=appid, menu=menu, previous=previous, actor=staff_actor())
        session.commit()
        return menu


def _require_official_account(appid: str) -> None:
    if _callback_app(appid) is None:
        raise NotFound("no official account with this appid is configured")


@staff_bp.route("/inbox")
class Inbox(MethodView):
    @staff_bp.arguments(InboxQueryArgsSchema, location="query", as_kwargs=True)
    @staff_route(
        staff_bp, "campaign_manager", args=PageArgsSchema, location="query", schema=page_schema(InboxMessageSchema)
    )
    def get(self, page: dict[str, Any], **filters: Any) -> Any:
        """Search stored callbacks by app, openid, type, event and time, newest first (admin, campaign_manager)."""
        rows, total = selectors.search_inbox(db_session(), limit=page["limit"], offset=page["offset"], **filters)
        return {"items": rows, "page": {**page, "total": total}}
