"""Staff users, passwords and bearer sessions; signed member tokens. No Flask here: see guards.py."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from scrm import audit
from scrm.clock import utcnow
from scrm.errors import Conflict, InvalidInput, NotFound, Unauthorized
from scrm.models import STAFF_ROLES, StaffSession, StaffUser

MIN_PASSWORD_LENGTH = 10
# A real hash to compare against when the username is unknown, so timing does not reveal it.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def staff_snapshot(user: StaffUser) -> dict[str, object]:
    """The audited view of a staff user (never the password hash)."""
    return {
        "username": user.username,
        "role": user.role,
        "display_name": user.display_name,
        "is_active": user.is_active,
    }


def create_staff_user(
    session: Session, *, username: str, password: str, role: str, display_name: str | None = None, actor: audit.Actor
) -> StaffUser:
    """Create a staff user with a hashed password.

    Raises:
        InvalidInput: unknown role or a password that is too short.
        Conflict: the username is taken.
    """
    if role not in STAFF_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(STAFF_ROLES)}", details={"fields": {"role": ["unknown"]}})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters",
            details={"fields": {"password": ["too short"]}},
        )
    username = username.strip()
    if session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise Conflict("username already taken", code="username_taken")
    user = StaffUser(username=username, password_hash=hash_password(password), role=role, display_name=display_name)
    session.add(user)
    session.flush()
    audit.record(
        session, actor, "staff_user.create", target_type="staff_user", target_id=user.id, after=staff_snapshot(user)
    )
    return user


def update_staff_user(
    session: Session,
    user_id: int,
    *,
    actor: audit.Actor,
    role: str | None = None,
    display_name: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> StaffUser:
    """Change a staff user's role, name, activity or password; deactivation revokes their sessions."""
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFound("staff user not found")
    before = staff_snapshot(user)
    if role is not None:
        if role not in STAFF_ROLES:
            raise InvalidInput(f"role must be one of {', '.join(STAFF_ROLES)}")
        user.role = role
    if display_name is not None:
        user.display_name = display_name
    if password is not None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        user.password_hash = hash_password(password)
    if is_active is not None:
        user.is_active = is_active
    if is_active is False or password is not None:
        revoke_staff_sessions(session, user.id)
    session.flush()
    after = staff_snapshot(user)
    if password is not None:
        after["password_changed"] = True
    audit.record(
        session, actor, "staff_user.update", target_type="staff_user", target_id=user.id, before=before, after=after
    )
    return user


def revoke_staff_sessions(session: Session, user_id: int) -> None:
    session.execute(
        update(StaffSession)
        .where(StaffSession.staff_user_id == user_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


@dataclass(frozen=True)
class IssuedStaffToken:
    token: str
    user: StaffUser
    expires_in: int


def login_staff(session: Session, *, username: str, password: str, ttl_s: int) -> IssuedStaffToken:
    """Check a username and password and issue a bearer token (only its digest is stored).

    Raises:
        Unauthorized: unknown user, wrong password or inactive user (one message for all three).
    """
    user = session.scalar(select(StaffUser).where(StaffUser.username == username.strip()))
    valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not valid or not user.is_active:
        raise Unauthorized("invalid username or password", code="invalid_credentials")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        StaffSession(
            token_digest=_digest(token),
            staff_user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    user.last_login_at = now
    session.flush()
    return IssuedStaffToken(token=token, user=user, expires_in=ttl_s)


def staff_for_token(session: Session, token: str) -> StaffUser:
    """The active staff user holding `token`.

    Raises:
        Unauthorized: unknown, expired or revoked token, or an inactive user.
    """
    row = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.staff_user_id)
        .where(StaffSession.token_digest == _digest(token))
    ).first()
    if row is None:
        raise Unauthorized("invalid token", code="invalid_token")
    staff_session, user = row
    if staff_session.revoked_at is not None or staff_session.expires_at <= utcnow() or not user.is_active:
        raise Unauthorized("token expired or revoked", code="invalid_token")
    return user


def logout_staff(session: Session, token: str) -> None:
    session.execute(update(StaffSession).where(StaffSession.token_digest == _digest(token)).values(revoked_at=utcnow()))


@dataclass(frozen=True)
class MemberClaims:
    """What a member token proves: the member, and the WeChat app they signed in through."""

    member_id: int
    appid: str | None


class MemberTokens:
    """Signed, expiring member tokens; issued only after a server-side WeChat code exchange."""

    SALT = "scrm.member-token.v1"

    def __init__(self, secret_key: str, *, ttl_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=self.SALT)
        self.ttl_s = ttl_s

    def issue(self, member_id: int, *, appid: str | None) -> str:
        return self._serializer.dumps({"m": member_id, "a": appid})

    def verify(self, token: str) -> MemberClaims:
        """Raises Unauthorized for a forged, malformed or expired token."""
        try:
            data = self._serializer.loads(token, max_age=self.ttl_s)
        except SignatureExpired:
            raise Unauthorized("member token expired", code="token_expired") from None
        except BadSignature:
            raise Unauthorized("invalid member token", code="invalid_token") from None
        if not isinstance(data, dict) or not isinstance(data.get("m"), int):
            raise Unauthorized("invalid member token", code="invalid_token")
        return MemberClaims(member_id=data["m"], appid=data.get("a"))
