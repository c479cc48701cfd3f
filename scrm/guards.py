"""Route guards: staff bearer tokens with roles, and member tokens; identity never comes from the client body."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from scrm import auth
from scrm.audit import Actor
from scrm.context import db_session, ext
from scrm.errors import Forbidden, Unauthorized
from scrm.models import StaffUser

F = TypeVar("F", bound=Callable[..., Any])

#: The security schemes the OpenAPI document declares.
STAFF_SECURITY = [{"staffToken": []}]
MEMBER_SECURITY = [{"memberToken": []}]


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def staff_required(*roles: str) -> Callable[[F], F]:
    """Require a staff token whose role is `admin` or one of `roles` (no roles: any staff)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            if token is None:
                raise Unauthorized("staff bearer token required", code="token_required")
            user = auth.staff_for_token(db_session(), token)
            if roles and user.role != "admin" and user.role not in roles:
                raise Forbidden(f"requires role {' or '.join(('admin', *roles))}", code="role_required")
            g.staff_user = user
            return view(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def current_staff() -> StaffUser:
    return g.staff_user


def staff_actor() -> Actor:
    user = current_staff()
    return Actor("staff", user.id, user.role)


def member_required(view: F) -> F:
    """Require a member token; the member comes from the token only."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthorized("member bearer token required", code="token_required")
        g.member_claims = member_tokens().verify(token)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_member_claims() -> auth.MemberClaims:
    return g.member_claims


def member_tokens() -> auth.MemberTokens:
    config = ext().config
    return auth.MemberTokens(config.secret_key, ttl_s=config.member_token_ttl_s)


def client_ip() -> str:
    # Behind a proxy, ProxyFix (configured by the operator) rewrites remote_addr.
    return request.remote_addr or "unknown"
