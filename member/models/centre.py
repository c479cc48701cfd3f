"""Member-centre tables: custom field definitions, consents, phone one-time codes, OAuth states, merges, tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, created_at, intpk

FIELD_TYPES = ("text", "number", "date", "single_choice", "multi_choice", "bool")
CONSENT_PURPOSES = ("marketing_messages", "profiling")
TAG_KINDS = ("manual", "rule")


class CustomFieldDefinition(Base):
    """A profile field staff define; members' values live in `members.custom_fields` under `key`."""

    __tablename__ = "member_field_definitions"
    __table_args__ = (
        CheckConstraint(
            "field_type IN ('text', 'number', 'date', 'single_choice', 'multi_choice', 'bool')", name="field_type"
        ),
    )

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(40), unique=True)
    label: Mapped[str] = mapped_column(String(80))
    field_type: Mapped[str] = mapped_column(String(16))
    choices: Mapped[list[Any] | None]
    required: Mapped[bool] = mapped_column(default=False)
    member_editable: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None]


class ConsentRecord(Base):
    """One answer of a member for one purpose; the newest row per purpose is the current consent."""

    __tablename__ = "member_consents"
    __table_args__ = (
        CheckConstraint("purpose IN ('marketing_messages', 'profiling')", name="purpose"),
        Index("ix_member_consents_member_id_purpose", "member_id", "purpose", "id"),
    )

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    purpose: Mapped[str] = mapped_column(String(24))
    granted: Mapped[bool]
    policy_version: Mapped[str] = mapped_column(String(32))
    at: Mapped[created_at]


class PhoneCode(Base):
    """An SMS one-time code; the phone and IP are kept only as keyed digests, the code only as a hash."""

    __tablename__ = "member_phone_codes"
    __table_args__ = (
        Index("ix_member_phone_codes_phone_digest_created_at", "phone_digest", "created_at"),
        Index("ix_member_phone_codes_ip_digest_created_at", "ip_digest", "created_at"),
    )

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    phone_digest: Mapped[str] = mapped_column(String(64))
    ip_digest: Mapped[str] = mapped_column(String(64))
    code_digest: Mapped[str] = mapped_column(String(64))
    #: The phone and the message, encrypted, until the outbox handler has sent it (then cleared).
    delivery_sealed: Mapped[str | None] = mapped_column(String(400))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[created_at]
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    consumed_at: Mapped[datetime | None]


class OAuthStateUse(Base):
    """The nonce of an OAuth `state` that came back once; a second use is refused."""

    __tablename__ = "member_oauth_states"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[created_at]


class MemberMerge(Base):
    """Member `source_id` merged into `survivor_id`, with what moved, so an unmerge can put it back."""

    __tablename__ = "member_merges"

    id: Mapped[intpk]
    survivor_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    #: Ids and flags only (identity ids, member-tag ids, whether phone/unionid moved), never the values.
    moved: Mapped[dict[str, Any]]
    reason: Mapped[str | None] = mapped_column(String(200))
    merged_at: Mapped[created_at]
    unmerged_at: Mapped[datetime | None]


class Tag(Base):
    """A member tag: set by staff (`manual`) or recomputed from `rule` by the tagging job."""

    __tablename__ = "member_tag_definitions"
    __table_args__ = (CheckConstraint("kind IN ('manual', 'rule')", name="kind"),)

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: For rule tags: {"kind": "ordered_within_days"|"region_is"|"custom_field_is"|"followed_oa", ...}.
    rule: Mapped[dict[str, Any] | None]
    created_at: Mapped[created_at]


class MemberTag(Base):
    """A tag held by a member."""

    __tablename__ = "member_tags"
    __table_args__ = (UniqueConstraint("member_id", "tag_id"), Index("ix_member_tags_tag_id", "tag_id"))

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("member_tag_definitions.id"))
    added_at: Mapped[created_at]
