"""HTTP kernel: the API object, the JSON error envelope, request ids, security headers, pagination, staff routes."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import marshmallow as ma
from flask import Flask, Response, current_app, g, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint
from itsdangerous import URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

from scrm.errors import DomainError
from scrm.guards import MEMBER_SECURITY, STAFF_SECURITY, member_required, staff_required
from scrm.logs import request_id_var
from scrm.wechat.errors import (
    AppMisconfigured,
    CodeUsed,
    InvalidArgument,
    InvalidCode,
    InvalidCredential,
    QuotaExceeded,
    WeChatError,
    WeChatUnavailable,
)
from scrm.wechat.errors import RateLimited as WeChatRateLimited

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

API_PREFIX = "/api/v1"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Only these request bodies are accepted on the JSON API; uploads declare their own.
JSON_MIMETYPES = {"application/json"}
UPLOAD_MIMETYPES = {"multipart/form-data"}

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "Stable machine-readable error code"})
    message = ma.fields.String(metadata={"description": "What went wrong, for people"})
    details = ma.fields.Dict(metadata={"description": "Failing fields and other context"})


class ErrorEnvelopeSchema(ma.Schema):
    """Every error response: {"error": {"code", "message", "details"}}."""

    error = ma.fields.Nested(ErrorBodySchema)


def error_body(status: int, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code or _CODES.get(status, "error"), "message": message, "details": details or {}}}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify(error_body(status, message, code=code, details=details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class Api(SmorestApi):
    """flask-smorest's Api with scrm's error envelope instead of its default payload."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def handle_http_exception(self, error: HTTPException) -> Any:  # type: ignore[override]
        return handle_http_exception(error)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    details: dict[str, Any] = {}
    message = data.get("message") or error.description or error.name
    if status == 400 and "Invalid JSON body" in str(data.get("messages", "")):
        message = "The request body is not valid JSON."
    errors = data.get("errors") or data.get("messages")
    if errors:
        details["fields"] = _flatten_locations(errors)
        if status == 422:
            message = "The request did not pass validation: " + ", ".join(sorted(details["fields"]))[:300]
    if status == 405 and getattr(error, "valid_methods", None):
        details["allowed"] = sorted(error.valid_methods)
    if status >= 500:
        message = "Internal server error."
    headers = dict(data.get("headers") or {})
    return error_response(status, message, details=details, headers=headers)


def _flatten_locations(errors: Any) -> Any:
    # webargs nests messages by location ({"json": {"field": [...]}}); clients care about fields.
    if isinstance(errors, dict) and set(errors) <= {"json", "query", "form", "files", "headers", "view_args", "path"}:
        merged: dict[str, Any] = {}
        for location_errors in errors.values():
            if isinstance(location_errors, dict):
                merged.update(location_errors)
            else:
                merged["_schema"] = location_errors
        return merged
    return errors


def handle_domain_error(error: DomainError) -> Response:
    return error_response(error.status, error.message, code=error.code, details=error.details)


def handle_wechat_error(error: WeChatError) -> Response:
    """A WeChat API failure seen by a staff or member route (callbacks never call WeChat inline)."""
    details = {"errcode": error.errcode} if error.errcode is not None else {}
    if isinstance(error, WeChatUnavailable):
        return error_response(503, "WeChat did not answer in time; try again.", code="wechat_unavailable")
    if isinstance(error, CodeUsed):
        return error_response(409, "This WeChat code was already used; get a new one.", code="code_used")
    if isinstance(error, InvalidCode):
        return error_response(422, "This WeChat code is unknown or expired.", code="code_invalid")
    if isinstance(error, QuotaExceeded | WeChatRateLimited):
        return error_response(429, "WeChat's quota for this call is used up.", code="wechat_quota", details=details)
    if isinstance(error, InvalidArgument):
        return error_response(
            422, f"WeChat refused the request: {error.errmsg}", code="wechat_invalid_argument", details=details
        )
    if isinstance(error, AppMisconfigured | InvalidCredential):
        log.error("WeChat app misconfigured", extra={"errcode": error.errcode})
        return error_response(
            502,
            "The WeChat app's credentials or permissions are wrong.",
            code="wechat_app_misconfigured",
            details=details,
        )
    return error_response(502, f"WeChat refused the request: {error.errmsg}", code="wechat_error", details=details)


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled error", extra={"path": request.path, "method": request.method})
    return handle_http_exception(InternalServerError())


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    rid = incoming if _REQUEST_ID_OK.match(incoming) else secrets.token_hex(8)
    g.request_id = rid
    g._request_id_token = request_id_var.set(rid)


def _check_request_body() -> Response | None:
    if request.method not in {"POST", "PUT", "PATCH"} or not request.path.startswith(API_PREFIX):
        return None
    length = request.content_length
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if _accepts_upload():
        # Upload routes take files larger than JSON bodies; werkzeug's form parser enforces the same limit.
        limit = current_app.extensions["scrm"].config.max_upload_bytes
        request.max_content_length = limit
    if limit is not None and length is not None and length > limit:
        return error_response(413, f"Request body is larger than {limit} bytes.")
    if not length and not request.headers.get("Transfer-Encoding"):
        return None
    mimetype = request.mimetype
    allowed = JSON_MIMETYPES | (UPLOAD_MIMETYPES if _accepts_upload() else set())
    if mimetype not in allowed:
        return error_response(
            415, f"Send the request body as {' or '.join(sorted(allowed))}.", details={"content_type": mimetype or None}
        )
    return None


def _accepts_upload() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    # A MethodView's view function carries its class; the mark may sit on either.
    return bool(
        getattr(view, "accepts_upload", False) or getattr(getattr(view, "view_class", None), "accepts_upload", False)
    )


def accepts_upload(view: Any) -> Any:
    """Mark a view (function or MethodView class) that takes multipart uploads (the JSON-only check lets it through)."""
    view.accepts_upload = True
    return view


def api_route(
    blueprint: Blueprint,
    *,
    guard: Callable[[F], F],
    security: list[dict[str, list[str]]],
    args: type[ma.Schema] | ma.Schema | None = None,
    location: str = "json",
    status: int = 200,
    schema: type[ma.Schema] | ma.Schema | None = None,
    description: str | None = None,
    replay: str | None = None,
    errors: Mapping[int, str] | None = None,
) -> Callable[[F], F]:
    """Declare a guarded endpoint of `blueprint`: arguments, responses, the security scheme and the guard.

    `args` is parsed from `location` and passed to the view; `status` with `schema` (or only a `description`)
    is the success response; `replay` documents a 200 with the same schema, the answer to an idempotent create
    sent again; `errors` maps the other statuses the view answers with to what they mean. A view with a second
    `arguments` stacks it on top.
    """
    if replay is not None and schema is None:
        raise ValueError("replay needs the response schema")

    def decorate(view: F) -> F:
        # The stack the views used to spell out by hand, applied innermost first: guard, security, responses, args.
        view = guard(view)
        view = blueprint.doc(security=security)(view)
        for code, meaning in reversed(list((errors or {}).items())):
            view = blueprint.alt_response(code, description=meaning)(view)
        if replay is not None:
            view = blueprint.alt_response(200, schema=schema, description=replay)(view)
        view = blueprint.response(status, schema, description=description)(view)
        if args is not None:
            view = blueprint.arguments(args, location=location)(view)
        return view

    return decorate


def staff_route(blueprint: Blueprint, *roles: str, **declared: Any) -> Callable[[F], F]:
    """A staff endpoint (`api_route`): a staff token whose role is admin or one of `roles` (none: any staff)."""
    return api_route(blueprint, guard=staff_required(*roles), security=STAFF_SECURITY, **declared)


def member_route(blueprint: Blueprint, **declared: Any) -> Callable[[F], F]:
    """A member endpoint (`api_route`): a member token."""
    return api_route(blueprint, guard=member_required, security=MEMBER_SECURITY, **declared)


def _finish_response(response: Response) -> Response:
    rid = g.get("request_id")
    if rid:
        response.headers[REQUEST_ID_HEADER] = rid
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if request.path.startswith(API_PREFIX) and not request.path.startswith(f"{API_PREFIX}/docs"):
        headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    return response


def _reset_request_id(_exc: BaseException | None = None) -> None:
    token = g.pop("_request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, with the signing serializer built once per key set, not on every request.

    Flask opens the session of every request, and building the serializer (which test-serializes a value) was a
    measurable share of a WeChat callback's CPU time.
    """

    def __init__(self) -> None:
        self._serializers: dict[tuple[Any, ...], URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key)
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            self._serializers = {keys: serializer}  # type: ignore[dict-item]
        return serializer


class RowIdConverter(IntegerConverter):
    """`<int:...>` in a route: row ids are bigints, so a larger number matches no route (404) instead of
    overflowing the query (500)."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def init_http(app: Flask) -> None:
    """Install request ids, the body checks, security headers, the error handlers and the `int` route converter."""
    app.url_map.converters["int"] = RowIdConverter
    app.session_interface = CookieSessionInterface()
    app.before_request(_assign_request_id)
    app.before_request(_check_request_body)
    app.after_request(_finish_response)
    app.teardown_request(_reset_request_id)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(WeChatError, handle_wechat_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)


class PageArgsSchema(ma.Schema):
    """Query arguments of every list endpoint; `limit` is clamped to 1..100."""

    limit = ma.fields.Integer(load_default=20, metadata={"description": "Items per page (1-100)"})
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=10_000_000))

    @ma.post_load
    def clamp(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["limit"] = max(1, min(100, data["limit"]))
        return data


class PageMetaSchema(ma.Schema):
    limit = ma.fields.Integer()
    offset = ma.fields.Integer()
    total = ma.fields.Integer()


def page_schema(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """A response schema {"items": [...], "page": {limit, offset, total}} for `item_schema`."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return type(
        name,
        (ma.Schema,),
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema)),
            "page": ma.fields.Nested(PageMetaSchema),
        },
    )
