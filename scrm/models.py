"""Kernel tables: the outbox, staff users and their sessions, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from scrm.clock import utcnow
from scrm.db import Base, created_at, intpk

OUTBOX_PENDING = "pending"
OUTBOX_DONE = "done"
OUTBOX_DEAD = "dead"

STAFF_ROLES = ("admin", "campaign_manager", "kol_manager", "analyst", "auditor")


class OutboxMessage(Base):
    """A side effect recorded in the business transaction and carried out after commit."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ('{OUTBOX_PENDING}', '{OUTBOX_DONE}', '{OUTBOX_DEAD}')", name="status"),
        # The relay's claim query: due rows of one queue, oldest first.
        Index(
            "ix_outbox_due",
            "queue",
            "available_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(80))
    queue: Mapped[str] = mapped_column(String(40))
    #: Optional idempotency key: a second emit with the same key is a no-op.
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(10), default=OUTBOX_PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    #: Not before this time (retry backoff); the sweeper re-drives rows long past it.
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    done_at: Mapped[datetime | None]


class StaffUser(Base):
    """A brand employee who uses the staff API."""

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint("role IN ('" + "', '".join(STAFF_ROLES) + "')", name="role"),)

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str | None] = mapped_column(String(120))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]
    last_login_at: Mapped[datetime | None]


class StaffSession(Base):
    """A bearer token issued at staff login; only its SHA-256 digest is stored."""

    __tablename__ = "staff_sessions"

    id: Mapped[intpk]
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[created_at]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who changed what, when, with the state before and after."""

    __tablename__ = "audit_log"
    #: The member 360 timeline and staff audit searches read by target.
    __table_args__ = (Index("ix_audit_log_target_type_target_id", "target_type", "target_id"),)

    id: Mapped[intpk]
    actor_type: Mapped[str] = mapped_column(String(16))  # staff | member | system
    actor_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(80), index=True)
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    reason: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WeChatApp(Base):
    """An official account or mini-program of the brand; secret, token and AES key are stored encrypted."""

    __tablename__ = "wechat_apps"
    __table_args__ = (
        CheckConstraint("kind IN ('oa', 'miniprogram')", name="kind"),
        CheckConstraint("mode IN ('safe', 'compat', 'plain')", name="mode"),
    )

    id: Mapped[intpk]
    appid: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(80))
    #: The OA's original id (gh_…), which callbacks carry as ToUserName.
    original_id: Mapped[str | None] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8), default="safe")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    aes_key_encrypted: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]


class WeChatAccessToken(Base):
    """The embedded mode's access-token cache (Redis holds it when configured)."""

    __tablename__ = "wechat_access_tokens"

    appid: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
