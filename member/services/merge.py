"""Merging two members into one (same unionid or verified phone) and undoing it. Services flush; the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from member import signals
from member.errors import MemberNotFound, MergeRefused
from member.models import Member, MemberMerge, MemberTag, WeChatIdentity
from scrm import audit
from scrm.clock import utcnow

#: Profile fields a survivor without a value takes from the merged member (cleared again on unmerge).
FILLABLE_FIELDS = ("name", "gender", "birthday", "region", "avatar_url")
#: How far `resolve_member` follows `merged_into_id` (merges of merges).
MAX_MERGE_HOPS = 8


def resolve_member(session: Session, member_id: int) -> Member | None:
    """The member `member_id` now is: itself, or the survivor it was merged into."""
    member = session.get(Member, member_id)
    for _hop in range(MAX_MERGE_HOPS):
        if member is None or member.merged_into_id is None:
            return member
        member = session.get(Member, member.merged_into_id)
    return None


def _lock(session: Session, *member_ids: int) -> dict[int, Member]:
    rows = session.scalars(select(Member).where(Member.id.in_(member_ids)).order_by(Member.id).with_for_update()).all()
    found = {row.id: row for row in rows}
    for member_id in member_ids:
        if member_id not in found:
            raise MemberNotFound()
    return found


def merge_members(
    session: Session, *, survivor_id: int, source_id: int, actor: audit.Actor, reason: str | None = None
) -> MemberMerge:
    """Move `source_id`'s identities, tags, phone and unionid to `survivor_id`; the source row stays, marked merged.

    Raises:
        MemberNotFound: either member does not exist.
        MergeRefused: the same member twice, an erased or already merged member.
    """
    if survivor_id == source_id:
        raise MergeRefused("a member cannot be merged into itself")
    members = _lock(session, survivor_id, source_id)
    survivor, source = members[survivor_id], members[source_id]
    for member in (survivor, source):
        if member.merged_into_id is not None or member.erased_at is not None:
            raise MergeRefused(f"member {member.id} is merged or erased")
    moved: dict[str, Any] = {"identities": [], "member_tags": [], "dropped_tags": [], "filled": []}
    for identity in session.scalars(select(WeChatIdentity).where(WeChatIdentity.member_id == source_id)):
        identity.member_id = survivor_id
        moved["identities"].append(identity.id)
    survivor_tags = set(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == survivor_id)))
    for member_tag in session.scalars(select(MemberTag).where(MemberTag.member_id == source_id)).all():
        if member_tag.tag_id in survivor_tags:
            moved["dropped_tags"].append(member_tag.tag_id)
            session.delete(member_tag)
        else:
            member_tag.member_id = survivor_id
            moved["member_tags"].append(member_tag.id)
    moved["phone"] = _move_phone(session, source, survivor)
    moved["unionid"] = _move_unique(session, source, survivor, "unionid")
    for name in FILLABLE_FIELDS:
        if getattr(survivor, name) is None and getattr(source, name) is not None:
            setattr(survivor, name, getattr(source, name))
            moved["filled"].append(name)
    source.merged_into_id = survivor_id
    merge = MemberMerge(survivor_id=survivor_id, source_id=source_id, moved=moved, reason=reason)
    session.add(merge)
    session.flush()
    audit.record(
        session,
        actor,
        "member.merge",
        target_type="member",
        target_id=survivor_id,
        after={"merge_id": merge.id, "source_id": source_id, "moved": moved},
        reason=reason,
    )
    signals.members_merged.send(survivor_id, session=session, source_id=source_id, merge_id=merge.id)
    return merge


def _move_unique(session: Session, source: Member, survivor: Member, name: str) -> bool:
    value = getattr(source, name)
    if value is None or getattr(survivor, name) is not None:
        return False
    # Unique column: free the value before the survivor takes it.
    setattr(source, name, None)
    session.flush()
    setattr(survivor, name, value)
    session.flush()
    return True


def _move_phone(session: Session, giver: Member, taker: Member) -> bool:
    verified = (giver.phone_verified_at, giver.phone_verified_method)
    if not _move_unique(session, giver, taker, "phone"):
        return False
    taker.phone_verified_at, taker.phone_verified_method = verified
    giver.phone_verified_at = giver.phone_verified_method = None
    return True


def unmerge_members(session: Session, merge_id: int, *, actor: audit.Actor, reason: str | None = None) -> MemberMerge:
    """Undo merge `merge_id`: identities, tags, phone, unionid and filled fields go back to the source member.

    Raises:
        MergeRefused: unknown merge, already undone, or the survivor has been merged or erased since.
    """
    merge = session.scalar(select(MemberMerge).where(MemberMerge.id == merge_id).with_for_update())
    if merge is None or merge.unmerged_at is not None:
        raise MergeRefused("no such active merge")
    members = _lock(session, merge.survivor_id, merge.source_id)
    survivor, source = members[merge.survivor_id], members[merge.source_id]
    if survivor.merged_into_id is not None or survivor.erased_at is not None or source.merged_into_id != survivor.id:
        raise MergeRefused("the survivor was merged or erased since; undo the later change first")
    moved = merge.moved
    for identity in session.scalars(
        select(WeChatIdentity).where(
            WeChatIdentity.id.in_(moved.get("identities", [])), WeChatIdentity.member_id == survivor.id
        )
    ):
        identity.member_id = source.id
    for member_tag in session.scalars(
        select(MemberTag).where(MemberTag.id.in_(moved.get("member_tags", [])), MemberTag.member_id == survivor.id)
    ):
        member_tag.member_id = source.id
    for tag_id in moved.get("dropped_tags", []):
        session.add(MemberTag(member_id=source.id, tag_id=tag_id))
    if moved.get("phone"):
        _move_phone(session, survivor, source)
    if moved.get("unionid"):
        _move_unique(session, survivor, source, "unionid")
    for name in moved.get("filled", []):
        setattr(survivor, name, None)
    source.merged_into_id = None
    merge.unmerged_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "member.unmerge",
        target_type="member",
        target_id=survivor.id,
        after={"merge_id": merge.id, "source_id": source.id, "moved": moved},
        reason=reason,
    )
    signals.members_unmerged.send(survivor.id, session=session, source_id=source.id, merge_id=merge.id, moved=moved)
    return merge


def join_by_unionid(session: Session, identity: WeChatIdentity) -> Member:
    """Merge the identity's member into the member already holding its unionid (identities sharing a unionid are
    one member); returns the member the identity belongs to afterwards."""
    member = resolve_member(session, identity.member_id)
    if member is None:
        raise MemberNotFound()
    if not identity.unionid or member.unionid == identity.unionid:
        return member
    holder = session.scalar(select(Member).where(Member.unionid == identity.unionid, Member.merged_into_id.is_(None)))
    if holder is None:
        if member.unionid is None:
            member.unionid = identity.unionid
            session.flush()
        return member
    if holder.id == member.id or member.unionid is not None:
        # Two different unionids on one person cannot happen; leave such data for staff to look at.
        return member
    merge_members(
        session, survivor_id=holder.id, source_id=member.id, actor=audit.Actor.system(), reason="same unionid"
    )
    return holder
