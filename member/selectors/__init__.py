"""Member reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from member import sections
from member.models import ConsentRecord, Member, MemberMerge, MemberTag, Tag, WeChatIdentity
from member.models.centre import CONSENT_PURPOSES
from member.phones import mask_phone
from member.selectors.json_rows import folds_lists, json_rows
from scrm.errors import InvalidInput
from scrm.models import AuditEntry


def get_identity(session: Session, *, appid: str, openid: str) -> WeChatIdentity | None:
    return session.scalar(select(WeChatIdentity).where(WeChatIdentity.appid == appid, WeChatIdentity.openid == openid))


def get_member(session: Session, member_id: int) -> Member | None:
    return session.get(Member, member_id)


def list_identities(session: Session, member_id: int) -> list[WeChatIdentity]:
    return list(
        session.scalars(select(WeChatIdentity).where(WeChatIdentity.member_id == member_id).order_by(WeChatIdentity.id))
    )


# --- member centre reads: profile, 360 view, search, export ---


def jsonable(value: Any) -> Any:
    """`value` with dates and datetimes as ISO 8601 strings, for the free-form blocks of a response."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def current_consents(session: Session, member_id: int) -> dict[str, ConsentRecord | None]:
    """The newest answer per purpose (None when never asked)."""
    latest = (
        select(func.max(ConsentRecord.id))
        .where(ConsentRecord.member_id == member_id)
        .group_by(ConsentRecord.purpose)
        .scalar_subquery()
    )
    found = {row.purpose: row for row in session.scalars(select(ConsentRecord).where(ConsentRecord.id.in_(latest)))}
    return {purpose: found.get(purpose) for purpose in CONSENT_PURPOSES}


def consent_history(session: Session, member_id: int) -> list[ConsentRecord]:
    return list(
        session.scalars(select(ConsentRecord).where(ConsentRecord.member_id == member_id).order_by(ConsentRecord.id))
    )


def mask_openid(openid: str) -> str:
    """Enough of an openid to tell two apart on screen, not enough to use it."""
    return f"{openid[:4]}****{openid[-4:]}" if len(openid) > 8 else "****"


def identity_view(identity: WeChatIdentity, *, masked: bool) -> dict[str, Any]:
    return {
        "id": identity.id,
        "appid": identity.appid,
        "app_kind": identity.app_kind,
        "openid": mask_openid(identity.openid) if masked else identity.openid,
        "has_unionid": identity.unionid is not None,
        "subscribed": identity.subscribed,
        "subscribe_scene": identity.subscribe_scene,
        "first_subscribed_at": identity.first_subscribed_at,
        "subscribed_at": identity.subscribed_at,
        "unsubscribed_at": identity.unsubscribed_at,
        "last_interaction_at": identity.last_interaction_at,
        "created_at": identity.created_at,
    }


def member_tags(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Tag.id, Tag.name, Tag.kind, MemberTag.added_at)
        .join(MemberTag, MemberTag.tag_id == Tag.id)
        .where(MemberTag.member_id == member_id)
        .order_by(Tag.name)
    )
    return [{"id": tag_id, "name": name, "kind": kind, "added_at": added_at} for tag_id, name, kind, added_at in rows]


def _consent_view(session: Session, member_id: int, *, history: list[ConsentRecord] | None = None) -> dict[str, Any]:
    if history is None:
        current = current_consents(session, member_id)
    else:
        # The newest answer per purpose, from a history already read (ordered by id).
        current = {purpose: None for purpose in CONSENT_PURPOSES} | {row.purpose: row for row in history}
    return {
        purpose: None if row is None else {"granted": row.granted, "policy_version": row.policy_version, "at": row.at}
        for purpose, row in current.items()
    }


def profile_view(member: Member, *, phone: str | None) -> dict[str, Any]:
    return {
        "id": member.id,
        "name": member.name,
        "gender": member.gender,
        "birthday": member.birthday,
        "region": member.region,
        "avatar_url": member.avatar_url,
        "phone": phone,
        "phone_verified": member.phone_verified_at is not None,
        "phone_verified_at": member.phone_verified_at,
        "phone_verified_method": member.phone_verified_method,
        "custom_fields": dict(member.custom_fields or {}),
        "role": member.role,
        "source": member.source,
        "lifecycle_stage": member.lifecycle_stage,
        "created_at": member.created_at,
        "erased": member.erased_at is not None,
    }


def me_view(session: Session, member: Member) -> dict[str, Any]:
    """What `GET /member/me` shows: the profile (phone masked), consents and every section's `me` block."""
    return {
        **profile_view(member, phone=mask_phone(member.phone)),
        "consents": jsonable(_consent_view(session, member.id)),
        "sections": jsonable(sections.read(session, member.id, "me")),
    }


def timeline(
    session: Session,
    member_id: int,
    *,
    limit: int = 100,
    identities: list[WeChatIdentity] | None = None,
    consents: list[ConsentRecord] | None = None,
    audit_rows: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Events about the member, newest first: audit rows, follows, phone verification, consents, tags.
    `identities`, `consents` and `audit_rows` (the newest `limit` of `_audit_query`) save their queries when the
    caller has them already."""
    events: list[dict[str, Any]] = []
    if audit_rows is None:
        audit_rows = list(session.scalars(_audit_query(member_id, limit)))
    for entry in audit_rows:
        events.append({"at": entry.at, "kind": entry.action, "actor": entry.actor_type, "detail": {}})
    for identity in list_identities(session, member_id) if identities is None else identities:
        for kind, at in (
            ("identity.created", identity.created_at),
            ("oa.first_follow", identity.first_subscribed_at),
            ("oa.unfollow", identity.unsubscribed_at),
        ):
            if at is not None:
                events.append({"at": at, "kind": kind, "actor": "member", "detail": {"appid": identity.appid}})
    member = session.get(Member, member_id)
    if member is not None and member.phone_verified_at is not None:
        events.append(
            {
                "at": member.phone_verified_at,
                "kind": "phone.verified",
                "actor": "member",
                "detail": {"method": member.phone_verified_method},
            }
        )
    for row in consent_history(session, member_id) if consents is None else consents:
        events.append(
            {
                "at": row.at,
                "kind": "consent",
                "actor": "member",
                "detail": {"purpose": row.purpose, "granted": row.granted, "policy_version": row.policy_version},
            }
        )
    events.sort(key=lambda event: event["at"], reverse=True)
    return events[:limit]


#: Audit rows the 360 timeline shows at most.
TIMELINE_LIMIT = 100


def _audit_query(member_id: int, limit: int) -> Select[Any]:
    return (
        select(AuditEntry)
        .where(AuditEntry.target_type == "member", AuditEntry.target_id == str(member_id))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )


def _merges_query(member_id: int) -> Select[Any]:
    return (
        select(MemberMerge)
        .where((MemberMerge.survivor_id == member_id) | (MemberMerge.source_id == member_id))
        .order_by(MemberMerge.id)
    )


def _staff_lists_folded(
    session: Session, member_id: int
) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """Identities, consent history, tags, merges and the newest audit rows in one round trip (PostgreSQL)."""
    identities = json_rows(select(WeChatIdentity).where(WeChatIdentity.member_id == member_id), "id")
    history = json_rows(
        select(
            ConsentRecord.id,
            ConsentRecord.purpose,
            ConsentRecord.granted,
            ConsentRecord.policy_version,
            ConsentRecord.at,
        ).where(ConsentRecord.member_id == member_id),
        "id",
    )
    tagged = json_rows(
        select(Tag.id, Tag.name, Tag.kind, MemberTag.added_at)
        .join(MemberTag, MemberTag.tag_id == Tag.id)
        .where(MemberTag.member_id == member_id),
        "name",
    )
    merges = json_rows(
        select(
            MemberMerge.id,
            MemberMerge.survivor_id,
            MemberMerge.source_id,
            MemberMerge.merged_at,
            MemberMerge.unmerged_at,
        ).where((MemberMerge.survivor_id == member_id) | (MemberMerge.source_id == member_id)),
        "id",
    )
    audit_rows = json_rows(
        _audit_query(member_id, TIMELINE_LIMIT).with_only_columns(
            AuditEntry.id, AuditEntry.at, AuditEntry.action, AuditEntry.actor_type
        ),
        "-id",
    )
    lists = (identities, history, tagged, merges, audit_rows)
    row = session.execute(select(*(rows.column for rows in lists))).one()
    return tuple(rows.decode(value) for rows, value in zip(lists, row, strict=True))  # type: ignore[return-value]


def staff_view(session: Session, member: Member, *, reveal_phone: bool = False) -> dict[str, Any]:
    """The 360 view: profile (phone masked unless revealed), identities (openids masked), tags, lifecycle,
    consents, merges, every section's `staff` block, and the timeline.

    On PostgreSQL the member's own lists come in one round trip (`_staff_lists_folded`), elsewhere one query each.
    """
    if folds_lists(session):
        identities, history, tag_rows, merges, audit_rows = _staff_lists_folded(session, member.id)
        tag_list = [{"id": t.id, "name": t.name, "kind": t.kind, "added_at": t.added_at} for t in tag_rows]
    else:
        identities = list_identities(session, member.id)
        history = consent_history(session, member.id)
        merges = list(session.scalars(_merges_query(member.id)))
        tag_list = member_tags(session, member.id)
        audit_rows = None
    return {
        **profile_view(member, phone=member.phone if reveal_phone else mask_phone(member.phone)),
        "merged_into_id": member.merged_into_id,
        "last_active_at": member.last_active_at,
        "last_order_at": member.last_order_at,
        "identities": jsonable([identity_view(i, masked=True) for i in identities]),
        "tags": jsonable(tag_list),
        "consents": jsonable(_consent_view(session, member.id, history=history)),
        "merges": jsonable(
            [
                {
                    "id": merge.id,
                    "survivor_id": merge.survivor_id,
                    "source_id": merge.source_id,
                    "merged_at": merge.merged_at,
                    "unmerged_at": merge.unmerged_at,
                }
                for merge in merges
            ]
        ),
        "sections": jsonable(sections.read(session, member.id, "staff")),
        "timeline": jsonable(
            timeline(
                session, member.id, limit=TIMELINE_LIMIT, identities=identities, consents=history, audit_rows=audit_rows
            )
        ),
    }


SearchFilter = Callable[[Select[Any], str], Select[Any]]
_search_filters: dict[str, SearchFilter] = {}


def register_search_filter(name: str, apply: SearchFilter) -> None:
    """Let another member concern add a staff search filter (loyalty: `tier`, by tier code)."""
    _search_filters[name] = apply


def search_query(
    *,
    phone: str | None = None,
    name: str | None = None,
    tag: str | None = None,
    stage: str | None = None,
    **extra: str,
) -> Select[Any]:
    """Members matching every given filter (phone exact in E.164, name prefix, tag name, lifecycle stage, and the
    registered ones such as tier).

    Raises:
        InvalidInput: a filter nobody registered (e.g. `tier` before the loyalty module is installed).
    """
    query = select(Member).where(Member.merged_into_id.is_(None), Member.erased_at.is_(None))
    if phone:
        query = query.where(Member.phone == phone)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Member.name.like(f"{escaped}%", escape="\\"))
    if tag:
        tagged = select(MemberTag.member_id).join(Tag, Tag.id == MemberTag.tag_id).where(Tag.name == tag)
        query = query.where(Member.id.in_(tagged))
    if stage:
        query = query.where(Member.lifecycle_stage == stage)
    for filter_name, value in extra.items():
        apply = _search_filters.get(filter_name)
        if apply is None:
            raise InvalidInput(f"search by {filter_name} is not available", code="search_filter_unavailable")
        query = apply(query, value)
    return query.order_by(Member.id.desc())


def search_row(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "name": member.name,
        "phone": mask_phone(member.phone),
        "lifecycle_stage": member.lifecycle_stage,
        "source": member.source,
        "created_at": member.created_at,
    }


def export_member(session: Session, member: Member) -> dict[str, Any]:
    """Everything held about the member (PIPL access): profile with the full phone, identities with openids,
    consent history, tags, merges and every section's `export` block."""
    return jsonable(
        {
            "profile": profile_view(member, phone=member.phone),
            "identities": [
                {**identity_view(i, masked=False), "unionid": i.unionid} for i in list_identities(session, member.id)
            ],
            "unionid": member.unionid,
            "consents": [
                {"purpose": row.purpose, "granted": row.granted, "policy_version": row.policy_version, "at": row.at}
                for row in consent_history(session, member.id)
            ],
            "tags": member_tags(session, member.id),
            "sections": sections.read(session, member.id, "export"),
        }
    )
