"""Verified phones: WeChat's phone-number code or an SMS one-time code, then binding (or merging) by phone.

SMS limits: 6 digits, valid 5 minutes, 5 wrong answers lock the code, 60 s between sends and at most 10 sends a
day per phone, a daily cap per client IP. Counters are the code rows themselves, so no Redis is needed. The phone
and IP are stored only as keyed digests and the code only as a keyed hash.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from member import signals
from member.errors import AppNotUsable, PhoneTaken
from member.models import Member, PhoneCode, WeChatIdentity
from member.phones import to_e164
from member.services.merge import merge_members, resolve_member
from scrm import audit, outbox
from scrm.clock import utcnow
from scrm.errors import RateLimited
from scrm.secretbox import SecretBox

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
RESEND_COOLDOWN = timedelta(seconds=60)
DAILY_SENDS_PER_PHONE = 10
SEND_SMS_CODE = "member.send_sms_code"
SMS_BOX_PURPOSE = "scrm.member.sms.v1"


def _digest(secret_key: str, kind: str, value: str) -> str:
    return hmac.new(secret_key.encode(), f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def bind_phone(session: Session, member: Member, phone: str, *, method: str) -> Member:
    """Mark `phone` (E.164) verified for `member` and send `phone_verified`; returns the member holding it after.

    A phone verified by one member belongs to one person: when another member holds it, the two are merged into the
    holder, unless they are visibly different WeChat users (different unionids, or two openids in one app), which is
    a recycled or shared number: then PhoneTaken (409) and staff decide.
    """
    holder = session.scalar(select(Member).where(Member.phone == phone).with_for_update())
    now = utcnow()
    if holder is not None and holder.merged_into_id is not None:
        # The number sits on a row merged into another member (whose own phone was kept): it is that member's.
        holder.phone = None
        session.flush()
        holder = resolve_member(session, holder.id)
    if holder is not None and holder.id != member.id:
        if _different_people(session, holder, member):
            raise PhoneTaken()
        merge_members(
            session, survivor_id=holder.id, source_id=member.id, actor=audit.Actor.system(), reason="same phone"
        )
        member = holder
    if member.phone is not None and member.phone != phone:
        # A member has one verified phone; the newer verification wins.
        member.phone = None
        session.flush()
    member.phone = phone
    member.phone_verified_at = now
    member.phone_verified_method = method
    member.last_active_at = now
    session.flush()
    signals.phone_verified.send(member.id, session=session, phone=phone, method=method, at=now)
    return member


def _different_people(session: Session, holder: Member, member: Member) -> bool:
    if holder.unionid and member.unionid and holder.unionid != member.unionid:
        return True
    apps = select(WeChatIdentity.appid).where(WeChatIdentity.member_id == member.id)
    shared_app = session.scalar(
        select(WeChatIdentity.id).where(WeChatIdentity.member_id == holder.id, WeChatIdentity.appid.in_(apps)).limit(1)
    )
    return shared_app is not None


def bind_wechat_phone(session: Session, gateway: Any, member: Member, *, appid: str | None, code: str) -> Member:
    """Exchange a `getPhoneNumber` code (of the mini-program the member logged in through) and bind the phone.

    Raises:
        AppNotUsable: the member's token is not from a mini-program they hold an identity in.
        scrm.wechat.errors.CodeUsed / InvalidCode: a replayed or unknown code.
    """
    identity = session.scalar(
        select(WeChatIdentity).where(
            WeChatIdentity.member_id == member.id,
            WeChatIdentity.appid == (appid or ""),
            WeChatIdentity.app_kind == "miniprogram",
        )
    )
    if identity is None:
        raise AppNotUsable("log in through the mini-program to share a WeChat phone number")
    answer = gateway.get_phone_number(identity.appid, code, openid=identity.openid)
    phone = to_e164(f"+{answer.country_code}{answer.pure_phone_number}")
    return bind_phone(session, member, phone, method="wechat")


def _serialise_phone(session: Session, phone_digest: str) -> None:
    """Concurrent code requests for one phone wait for each other, so they cannot all pass the counters."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(int(phone_digest[:15], 16))))
    # SQLite (the embedded default) runs one writing transaction at a time.


def request_sms_code(
    session: Session, member: Member, *, phone_raw: str, client_ip: str, secret_key: str, ip_daily_limit: int
) -> PhoneCode:
    """Create a one-time code for `phone_raw` and queue its SMS (sent after commit through the outbox).

    Raises:
        InvalidInput: not a valid phone number.
        RateLimited: within 60 s of the last code, 10 codes today for this phone, or the IP's daily cap.
    """
    phone = to_e164(phone_raw)
    now = utcnow()
    phone_digest = _digest(secret_key, "phone", phone)
    ip_digest = _digest(secret_key, "ip", client_ip)
    _serialise_phone(session, phone_digest)
    day_ago = now - timedelta(days=1)
    last = session.scalar(select(func.max(PhoneCode.created_at)).where(PhoneCode.phone_digest == phone_digest))
    if last is not None and now - last < RESEND_COOLDOWN:
        wait = int((RESEND_COOLDOWN - (now - last)).total_seconds()) + 1
        raise RateLimited("wait before asking for another code", code="sms_cooldown", details={"retry_after_s": wait})
    sent_today = session.scalar(
        select(func.count()).where(PhoneCode.phone_digest == phone_digest, PhoneCode.created_at > day_ago)
    )
    if (sent_today or 0) >= DAILY_SENDS_PER_PHONE:
        raise RateLimited("too many codes for this phone today", code="sms_daily_limit")
    from_ip = session.scalar(
        select(func.count()).where(PhoneCode.ip_digest == ip_digest, PhoneCode.created_at > day_ago)
    )
    if (from_ip or 0) >= ip_daily_limit:
        raise RateLimited("too many codes from this address today", code="sms_ip_limit")
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    text = f"Your verification code is {code}. It expires in {int(CODE_TTL.total_seconds() // 60)} minutes."
    row = PhoneCode(
        member_id=member.id,
        phone_digest=phone_digest,
        ip_digest=ip_digest,
        code_digest=_digest(secret_key, f"code:{phone_digest}", code),
        delivery_sealed=SecretBox(secret_key, purpose=SMS_BOX_PURPOSE).seal(json.dumps({"phone": phone, "text": text})),
        created_at=now,
        expires_at=now + CODE_TTL,
    )
    session.add(row)
    session.flush()
    outbox.emit(session, SEND_SMS_CODE, {"phone_code_id": row.id}, key=f"member:sms:{row.id}")
    return row


class CodeCheck(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"
    MISSING = "missing"


@dataclass(frozen=True)
class CodeOutcome:
    check: CodeCheck
    attempts_left: int = 0
    member: Member | None = None


def verify_sms_code(
    session: Session, member: Member, *, phone_raw: str, code: str, secret_key: str, now: datetime | None = None
) -> CodeOutcome:
    """Check the newest unspent code for this member and phone; on success bind the phone.

    Returns an outcome instead of raising, because a wrong answer must be counted: the caller commits, then
    answers with an error for anything but OK.
    """
    phone = to_e164(phone_raw)
    now = now or utcnow()
    phone_digest = _digest(secret_key, "phone", phone)
    row = session.scalar(
        select(PhoneCode)
        .where(
            PhoneCode.member_id == member.id,
            PhoneCode.phone_digest == phone_digest,
            PhoneCode.consumed_at.is_(None),
        )
        .order_by(PhoneCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if row is None:
        return CodeOutcome(CodeCheck.MISSING)
    if row.attempts >= MAX_ATTEMPTS:
        return CodeOutcome(CodeCheck.LOCKED)
    if now >= row.expires_at:
        return CodeOutcome(CodeCheck.EXPIRED)
    expected = _digest(secret_key, f"code:{phone_digest}", code)
    if not hmac.compare_digest(expected, row.code_digest):
        row.attempts += 1
        session.flush()
        return CodeOutcome(CodeCheck.WRONG, attempts_left=MAX_ATTEMPTS - row.attempts)
    row.consumed_at = now
    session.flush()
    return CodeOutcome(CodeCheck.OK, member=bind_phone(session, member, phone, method="sms"))


def take_sms_delivery(session: Session, phone_code_id: int, *, secret_key: str) -> dict[str, str] | None:
    """The phone and text of a code still to send (None when sent already); the sealed copy is dropped."""
    row = session.scalar(select(PhoneCode).where(PhoneCode.id == phone_code_id).with_for_update())
    if row is None or row.sent_at is not None or row.delivery_sealed is None:
        return None
    delivery = json.loads(SecretBox(secret_key, purpose=SMS_BOX_PURPOSE).open(row.delivery_sealed))
    row.delivery_sealed = None
    row.sent_at = utcnow()
    session.flush()
    return delivery
