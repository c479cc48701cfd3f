"""The member centre API: login (mini-program, OA OAuth), phone, profile, consents, export and erasure.

The member is always the one the token names (followed through merges); ids, openids or unionids a client sends
are never read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import redirect as flask_redirect
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from member import selectors
from member.models import Member, WeChatIdentity
from member.phones import mask_phone
from member.schemas.centre import (
    ConsentsSchema,
    ConsentsUpdateSchema,
    ExportSchema,
    IdentitySchema,
    MemberTokenSchema,
    MeSchema,
    MiniProgramLoginSchema,
    OAuthCallbackArgsSchema,
    OAuthStartArgsSchema,
    PhoneBoundSchema,
    ProfileUpdateSchema,
    SmsCodeRequestSchema,
    SmsCodeSentSchema,
    SmsCodeVerifySchema,
    WeChatPhoneSchema,
    custom_fields_schema,
)
from member.services import phone as phone_services
from member.services import privacy, profile, sessions
from member.services.merge import resolve_member
from scrm.audit import Actor
from scrm.context import db_session, ext, gateway
from scrm.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from scrm.guards import client_ip, current_member_claims, member_tokens
from scrm.http import member_route
from scrm.views import limiter

member_bp = Blueprint(
    "member_centre", __name__, url_prefix="/api/v1/member", description="The member centre (member token)"
)

#: Logins one client IP may attempt per minute (WeChat codes are single use; this caps guessing and floods).
LOGINS_PER_MIN_PER_IP = 60


def _token_answer(member: Member, appid: str | None) -> dict[str, Any]:
    config = ext().config
    return {
        "token": member_tokens().issue(member.id, appid=appid),
        "token_type": "Bearer",
        "expires_in": config.member_token_ttl_s,
    }


def current_member(session: Session) -> Member:
    """The member behind the token (the survivor, after a merge)."""
    member = resolve_member(session, current_member_claims().member_id)
    if member is None:
        raise Unauthorized("invalid member token", code="invalid_token")
    return member


def _writable(member: Member) -> Member:
    if member.erased_at is not None:
        raise Conflict("this member's data was erased", code="member_erased")
    return member


@member_bp.route("/session/miniprogram")
class MiniProgramSessionView(MethodView):
    @member_bp.arguments(MiniProgramLoginSchema)
    @member_bp.response(201, MemberTokenSchema)
    @member_bp.alt_response(409, description="The code was used before")
    @member_bp.alt_response(422, description="Unknown app, or a code WeChat does not know")
    def post(self, data: dict[str, Any]) -> Any:
        """Log in from the mini-program with a `wx.login` code; returns a member token."""
        limiter().hit(f"member-login:ip:{client_ip()}", limit=LOGINS_PER_MIN_PER_IP, window_s=60)
        session = db_session()
        member = sessions.login_miniprogram(session, gateway(), appid=data["appid"], code=data["code"])
        session.commit()
        return _token_answer(member, data["appid"])


def _callback_url(appid: str, redirect: str) -> str:
    query = urlencode({"appid": appid, **({"redirect": redirect} if redirect else {})})
    return f"{request.host_url.rstrip('/')}{member_bp.url_prefix}/session/oauth/callback?{query}"


@member_bp.route("/session/oauth/start")
class OAuthStartView(MethodView):
    @member_bp.arguments(OAuthStartArgsSchema, location="query")
    @member_bp.response(302, description="To WeChat's authorize page")
    @member_bp.alt_response(422, description="Unknown app or a redirect target off the allow-list")
    def get(self, args: dict[str, Any]) -> Any:
        """Start OA web OAuth: redirect to WeChat with a signed, single-use, 10-minute `state`.

        `redirect` (optional) must be on SCRM_MEMBER_OAUTH_REDIRECT_ALLOWLIST: the callback then redirects there
        with `#token=…&expires_in=…` in the fragment; without it the callback answers the token as JSON.
        """
        config = ext().config
        state, target = sessions.start_oauth(
            db_session(),
            appid=args["appid"],
            redirect=args.get("redirect"),
            allowlist=config.member_oauth_redirect_allowlist,
            secret_key=config.secret_key,
        )
        url = gateway().oauth_authorize_url(args["appid"], _callback_url(args["appid"], target), state, args["scope"])
        return flask_redirect(url, code=302)


@member_bp.route("/session/oauth/callback")
class OAuthCallbackView(MethodView):
    @member_bp.arguments(OAuthCallbackArgsSchema, location="query")
    @member_bp.response(200, MemberTokenSchema)
    @member_bp.alt_response(302, description="To the allow-listed front-end URL, token in the fragment")
    @member_bp.alt_response(409, description="The code was used before")
    @member_bp.alt_response(422, description="Forged, expired or reused state")
    def get(self, args: dict[str, Any]) -> Any:
        """WeChat's return from OAuth: check the state, exchange the code, issue a member token."""
        limiter().hit(f"member-login:ip:{client_ip()}", limit=LOGINS_PER_MIN_PER_IP, window_s=60)
        config = ext().config
        session = db_session()
        target = args["redirect"]
        if target and not sessions.allowed_redirect(target, config.member_oauth_redirect_allowlist):
            raise InvalidInput("redirect target is not allow-listed", code="redirect_not_allowed")
        sessions.consume_oauth_state(
            session,
            args["state"],
            appid=args["appid"],
            redirect=target,
            secret_key=config.secret_key,
            ttl_s=config.member_oauth_state_ttl_s,
        )
        member = sessions.login_oauth(session, gateway(), appid=args["appid"], code=args["code"])
        session.commit()
        answer = _token_answer(member, args["appid"])
        if not target:
            return answer
        fragment = urlencode({"token": answer["token"], "expires_in": answer["expires_in"]})
        return flask_redirect(f"{target.split('#', 1)[0]}#{fragment}", code=302)


@member_bp.route("/me")
class MeView(MethodView):
    @member_route(member_bp, schema=MeSchema)
    def get(self) -> Any:
        """The member's profile (phone masked), consents, and the blocks of other concerns (points, tier, …)."""
        session = db_session()
        return selectors.me_view(session, current_member(session))

    @member_route(
        member_bp,
        args=ProfileUpdateSchema,
        schema=MeSchema,
        errors={422: "A field the member may not change, or an invalid value"},
    )
    def patch(self, data: dict[str, Any]) -> Any:
        """Change name, gender, birthday, region, avatar and the custom fields staff made member-editable."""
        session = db_session()
        member = _writable(current_member(session))
        if "custom_fields" in data:
            definitions = profile.list_definitions(session)
            schema = custom_fields_schema(profile.definitions_version(session), definitions)
            try:
                data["custom_fields"] = schema.load(data["custom_fields"] or {})
            except ma.ValidationError as error:
                names = ", ".join(sorted(f"custom_fields.{key}" for key in error.messages_dict))
                raise InvalidInput(
                    f"The request did not pass validation: {names}",
                    details={"fields": {"custom_fields": error.messages_dict}},
                ) from None
        profile.update_profile(session, member, data)
        session.commit()
        return selectors.me_view(session, member)

    @member_route(member_bp, status=204)
    def delete(self) -> None:
        """Erase the member's personal data (PIPL): the member is pseudonymised; points and orders stay counted."""
        session = db_session()
        member = current_member(session)
        privacy.erase_member(session, member, actor=Actor("member", member.id))
        session.commit()


@member_bp.route("/identities")
class IdentitiesView(MethodView):
    @member_route(member_bp, schema=IdentitySchema(many=True))
    def get(self) -> Any:
        """The member's WeChat identities (openids masked)."""
        session = db_session()
        member = current_member(session)
        return [selectors.identity_view(i, masked=True) for i in selectors.list_identities(session, member.id)]


@member_bp.route("/identities/<int:identity_id>")
class IdentityView(MethodView):
    @member_route(member_bp, schema=IdentitySchema, errors={404: "No such identity of this member"})
    def get(self, identity_id: int) -> Any:
        """One of the member's identities; another member's is a 404."""
        session = db_session()
        member = current_member(session)
        identity = session.scalar(
            select(WeChatIdentity).where(WeChatIdentity.id == identity_id, WeChatIdentity.member_id == member.id)
        )
        if identity is None:
            raise NotFound("identity not found")
        return selectors.identity_view(identity, masked=True)


def _phone_answer(member: Member, before_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "phone": mask_phone(member.phone),
        "phone_verified_method": member.phone_verified_method,
    }
    if member.id != before_id:
        # The phone joined this login to an existing member: carry on as that member.
        answer.update(_token_answer(member, current_member_claims().appid))
    return answer


@member_bp.route("/phone")
class WeChatPhoneView(MethodView):
    @member_route(
        member_bp,
        args=WeChatPhoneSchema,
        schema=PhoneBoundSchema,
        errors={
            409: "Code used before, or the phone belongs to another WeChat user",
            422: "A phone number in the body, or an invalid code",
        },
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Share the WeChat-verified phone number (mini-program `getPhoneNumber` code). A phone number sent by the
        client is refused: only WeChat's answer counts."""
        session = db_session()
        member = _writable(current_member(session))
        before = member.id
        member = phone_services.bind_wechat_phone(
            session, gateway(), member, appid=current_member_claims().appid, code=data["code"]
        )
        session.commit()
        return _phone_answer(member, before)


@member_bp.route("/phone/sms")
class SmsCodeView(MethodView):
    @member_route(
        member_bp,
        args=SmsCodeRequestSchema,
        status=202,
        schema=SmsCodeSentSchema,
        errors={429: "Cooldown (60 s), daily cap (10 per phone) or the IP's cap"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Send a 6-digit one-time code by SMS (valid 5 minutes), the fallback when WeChat's phone button is not
        available."""
        config = ext().config
        session = db_session()
        member = _writable(current_member(session))
        phone_services.request_sms_code(
            session,
            member,
            phone_raw=data["phone"],
            client_ip=client_ip(),
            secret_key=config.secret_key,
            ip_daily_limit=config.sms_ip_daily_limit,
        )
        session.commit()
        return {
            "expires_in": int(phone_services.CODE_TTL.total_seconds()),
            "resend_after": int(phone_services.RESEND_COOLDOWN.total_seconds()),
        }


@member_bp.route("/phone/sms/verify")
class SmsVerifyView(MethodView):
    @member_route(
        member_bp,
        args=SmsCodeVerifySchema,
        schema=PhoneBoundSchema,
        errors={422: "Wrong, expired or unknown code", 429: "Locked after 5 wrong answers"},
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Check the SMS code and bind the phone."""
        config = ext().config
        session = db_session()
        member = _writable(current_member(session))
        before = member.id
        outcome = phone_services.verify_sms_code(
            session, member, phone_raw=data["phone"], code=data["code"], secret_key=config.secret_key
        )
        # Commit first: a wrong answer must count even though the request fails.
        session.commit()
        check = outcome.check
        if check is phone_services.CodeCheck.LOCKED:
            raise RateLimited("too many wrong answers; ask for a new code", code="code_locked")
        if check is phone_services.CodeCheck.WRONG:
            raise InvalidInput("wrong code", code="code_invalid", details={"attempts_left": outcome.attempts_left})
        if check is phone_services.CodeCheck.EXPIRED:
            raise InvalidInput("the code expired; ask for a new one", code="code_expired")
        if check is phone_services.CodeCheck.MISSING or outcome.member is None:
            raise InvalidInput("no code to check; ask for one", code="code_invalid")
        return _phone_answer(outcome.member, before)


def _consents_answer(session: Session, member_id: int) -> dict[str, Any]:
    current = selectors.current_consents(session, member_id)
    history = selectors.consent_history(session, member_id)
    return {
        **{
            purpose: None
            if row is None
            else {"granted": row.granted, "policy_version": row.policy_version, "at": row.at}
            for purpose, row in current.items()
        },
        "policy_version": ext().config.member_consent_policy_version,
        "history": selectors.jsonable(
            [
                {"purpose": r.purpose, "granted": r.granted, "policy_version": r.policy_version, "at": r.at}
                for r in history
            ]
        ),
    }


@member_bp.route("/consents")
class ConsentsView(MethodView):
    @member_route(member_bp, schema=ConsentsSchema)
    def get(self) -> Any:
        """Current consent per purpose (marketing messages, profiling) and its history."""
        session = db_session()
        return _consents_answer(session, current_member(session).id)

    @member_route(member_bp, args=ConsentsUpdateSchema, schema=ConsentsSchema)
    def put(self, data: dict[str, Any]) -> Any:
        """Give or withdraw consent per purpose under the current policy version (repeating an answer adds nothing)."""
        session = db_session()
        member = _writable(current_member(session))
        profile.set_consents(session, member.id, data, policy_version=ext().config.member_consent_policy_version)
        session.commit()
        return _consents_answer(session, member.id)


@member_bp.route("/export")
class ExportView(MethodView):
    @member_route(member_bp, schema=ExportSchema)
    def get(self) -> Any:
        """Everything held about the member (PIPL access), including every concern's export block."""
        session = db_session()
        return selectors.export_member(session, current_member(session))
