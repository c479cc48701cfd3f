"""Legacy CRM tables: import batches, the imported members, bad rows, bindings to members and the conflict queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, BigIntPK, created_at, intpk

BATCH_STATUSES = ("queued", "running", "done", "failed")
#: A batch holds members, or the order history of the members of another (its parent) batch.
BATCH_KINDS = ("members", "orders")
LEGACY_STATUSES = ("unbound", "bound", "pending_check", "merged")
CONFLICT_KINDS = ("multiple_records", "phone_bound_elsewhere", "second_check")
CONFLICT_STATUSES = ("open", "resolved", "rejected")
BINDING_STATUSES = ("active", "reversed")


class ImportBatch(Base):
    """One legacy file (or one dry run of it); identified by the file's content hash, with its checkpoint."""

    __tablename__ = "import_batches"
    __table_args__ = (
        UniqueConstraint("content_hash", "dry_run", "kind"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint("kind IN ('members', 'orders')", name="kind"),
        CheckConstraint("(kind = 'orders') = (parent_id IS NOT NULL)", name="parent_id"),
    )

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(16), default="members", server_default=text("'members'"))
    #: For an orders batch: the members batch whose legacy ids (or phones) its orders refer to.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(default=False)
    filename: Mapped[str] = mapped_column(String(255))
    #: Where the uploaded file is kept while the batch runs (the CLI imports in place).
    stored_path: Mapped[str] = mapped_column(String(1000))
    file_format: Mapped[str] = mapped_column(String(8))
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    #: Checkpoint: file records read and committed, and (CSV) the byte offset just after the last of them.
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    resume_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Progress in the file's own unit: bytes for CSV, sheet rows for XLSX.
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_count: Mapped[int] = mapped_column(BigInteger, default=0)
    invalid_count: Mapped[int] = mapped_column(BigInteger, default=0)
    inserted_count: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Rows whose phone appears more than once in the file, and how many phones that is.
    duplicate_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicate_groups: Mapped[int] = mapped_column(BigInteger, default=0)
    bound_count: Mapped[int] = mapped_column(BigInteger, default=0)
    conflict_count: Mapped[int] = mapped_column(BigInteger, default=0)
    invalid_by_reason: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The dry-run report, or the bind-pass summary of a real import.
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_message: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[created_at]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class LegacyMember(Base):
    """A member as the old CRM knew them; bound to a scrm member once that member verifies the same phone."""

    __tablename__ = "legacy_members"
    __table_args__ = (
        UniqueConstraint("batch_id", "legacy_id"),
        CheckConstraint("status IN ('unbound', 'bound', 'pending_check', 'merged')", name="status"),
        Index("ix_legacy_members_phone", "phone"),
        # Partial: most rows are never bound or merged, so bulk loads do not pay for indexing NULLs, yet
        # foreign-key checks and per-member reads (`= x` implies NOT NULL) still use them.
        Index(
            "ix_legacy_members_bound_member_id",
            "bound_member_id",
            postgresql_where=text("bound_member_id IS NOT NULL"),
            sqlite_where=text("bound_member_id IS NOT NULL"),
        ),
        Index(
            "ix_legacy_members_merged_into_id",
            "merged_into_id",
            postgresql_where=text("merged_into_id IS NOT NULL"),
            sqlite_where=text("merged_into_id IS NOT NULL"),
        ),
    )

    id: Mapped[intpk]
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    row_number: Mapped[int] = mapped_column(BigInteger)
    legacy_id: Mapped[str] = mapped_column(String(64))
    #: E.164.
    phone: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(80))
    tier: Mapped[str | None] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    total_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    joined_at: Mapped[datetime | None]
    last_active_at: Mapped[datetime | None]
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="unbound", server_default=text("'unbound'"))
    bound_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    #: Set when staff merged this record into another one of the same phone.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("legacy_members.id"))


class LegacyOrder(Base):
    """An order from the legacy CRM's history, linked to its legacy member; it becomes an order on bind."""

    __tablename__ = "legacy_orders"
    __table_args__ = (
        # An order id is unique within the members batch it belongs to, whichever orders file brought it.
        UniqueConstraint("members_batch_id", "order_ref"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        Index("ix_legacy_orders_legacy_member_id", "legacy_member_id"),
        Index("ix_legacy_orders_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    members_batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    row_number: Mapped[int] = mapped_column(BigInteger)
    legacy_member_id: Mapped[int] = mapped_column(ForeignKey("legacy_members.id"))
    order_ref: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime]
    items: Mapped[list[Any] | None]


class LegacyRowError(Base):
    """A row of a legacy file that could not be imported, with its row number and every reason."""

    __tablename__ = "legacy_row_errors"
    __table_args__ = (UniqueConstraint("batch_id", "row_number"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    row_number: Mapped[int] = mapped_column(BigInteger)
    #: Reason codes joined by ";" (e.g. "invalid_phone;invalid_joined_at").
    reasons: Mapped[str] = mapped_column(String(500))
    #: The row as read, tab-joined, so staff can fix it and import it again.
    raw: Mapped[str] = mapped_column(Text)


class LegacyBinding(Base):
    """One bind of a legacy record to a member, with what was carried over so it can be reversed."""

    __tablename__ = "legacy_bindings"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'reversed')", name="status"),
        Index(
            "uq_legacy_bindings_active_legacy_member_id",
            "legacy_member_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_legacy_bindings_member_id", "member_id"),
        Index("ix_legacy_bindings_legacy_member_id", "legacy_member_id"),
    )

    id: Mapped[intpk]
    legacy_member_id: Mapped[int] = mapped_column(ForeignKey("legacy_members.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: "auto" (verified phone), "sms" (second check by SMS code) or "staff" (a resolved conflict).
    via: Mapped[str] = mapped_column(String(16))
    conflict_id: Mapped[int | None] = mapped_column(ForeignKey("binding_conflicts.id"))
    #: Legacy records folded into this bind by a staff merge (their points and spend are carried too).
    merged_legacy_ids: Mapped[list[Any]] = mapped_column(default=list)
    points_carried: Mapped[int] = mapped_column(BigInteger, default=0)
    points_key: Mapped[str | None] = mapped_column(String(120))
    tier_before: Mapped[str | None] = mapped_column(String(32))
    tier_carried: Mapped[str | None] = mapped_column(String(32))
    #: What the carry-over did (ledger entry ids, orders, skipped parts), for audit and reversal.
    carryover: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bound_at: Mapped[datetime]
    reversed_at: Mapped[datetime | None]
    reversed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class BindingConflict(Base):
    """A verified phone that could not bind on its own: staff (or a second check) decide."""

    __tablename__ = "binding_conflicts"
    __table_args__ = (
        CheckConstraint("kind IN ('multiple_records', 'phone_bound_elsewhere', 'second_check')", name="kind"),
        CheckConstraint("status IN ('open', 'resolved', 'rejected')", name="status"),
        # One open conflict per phone: concurrent verifications of one phone queue it once.
        Index(
            "uq_binding_conflicts_open_phone",
            "phone",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_binding_conflicts_status_kind", "status", "kind"),
    )

    id: Mapped[intpk]
    phone: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: The member who verified the phone.
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    #: Legacy record ids in play, and (phone_bound_elsewhere) the member currently holding them.
    candidate_ids: Mapped[list[Any]] = mapped_column(default=list)
    holder_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    #: Why a second check is needed ("dormant", "assets"), and how the phone was verified.
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    verified_via: Mapped[str] = mapped_column(String(16))
    resolution: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[created_at]


__all__ = [
    "BATCH_KINDS",
    "BATCH_STATUSES",
    "BINDING_STATUSES",
    "CONFLICT_KINDS",
    "CONFLICT_STATUSES",
    "LEGACY_STATUSES",
    "BindingConflict",
    "ImportBatch",
    "LegacyBinding",
    "LegacyMember",
    "LegacyOrder",
    "LegacyRowError",
]
