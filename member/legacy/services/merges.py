"""Legacy bindings and bound legacy records follow member merges and unmerges."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from member.legacy.models import LegacyBinding, LegacyMember
from member.legacy.services import history
from member.models import MemberMerge

#: Keys of a member merge's `moved` record that this module writes.
MERGE_MOVED_KEY = "legacy_bindings"
UNMERGE_RETURNED_KEY = "legacy_bindings_returned"


def follow_merge(session: Session, *, merge_id: int) -> dict[str, list[int]]:
    """Move the merged member's legacy bindings (active and reversed, so its history travels) and the legacy
    records bound to it over to the survivor.

    Records the ids under the merge's `moved["legacy_bindings"]`; a second run moves nothing more. Points the
    bindings carried are moved by the loyalty merge, like any other lot.
    """
    merge = session.get(MemberMerge, merge_id)
    if merge is None:
        return {"bindings": [], "records": []}
    if MERGE_MOVED_KEY in merge.moved:
        return dict(merge.moved[MERGE_MOVED_KEY])
    moved = {
        "bindings": _reassign(session, LegacyBinding, LegacyBinding.member_id, merge.source_id, merge.survivor_id),
        "records": _reassign(session, LegacyMember, LegacyMember.bound_member_id, merge.source_id, merge.survivor_id),
    }
    merge.moved = {**merge.moved, MERGE_MOVED_KEY: moved}
    session.flush()
    return moved


def follow_unmerge(session: Session, *, merge_id: int) -> dict[str, list[int]]:
    """Give the source member back the legacy bindings and records its merge moved (those still on the survivor),
    and the records' carried orders: the loyalty unmerge returns only the orders the merge moved, not those an
    orders import carried to the survivor in between."""
    merge = session.get(MemberMerge, merge_id)
    if merge is None or MERGE_MOVED_KEY not in merge.moved:
        return {"bindings": [], "records": []}
    if UNMERGE_RETURNED_KEY in merge.moved:
        return dict(merge.moved[UNMERGE_RETURNED_KEY])
    moved = merge.moved[MERGE_MOVED_KEY]
    returned = {
        "bindings": _reassign(
            session, LegacyBinding, LegacyBinding.member_id, merge.survivor_id, merge.source_id, moved["bindings"]
        ),
        "records": _reassign(
            session, LegacyMember, LegacyMember.bound_member_id, merge.survivor_id, merge.source_id, moved["records"]
        ),
    }
    history.move_orders(
        session, legacy_member_ids=returned["records"], from_member_id=merge.survivor_id, to_member_id=merge.source_id
    )
    merge.moved = {**merge.moved, UNMERGE_RETURNED_KEY: returned}
    session.flush()
    return returned


def _reassign(
    session: Session, model: Any, column: Any, from_id: int, to_id: int, only_ids: list[int] | None = None
) -> list[int]:
    """Point `model.column` from one member to another (locking the rows), optionally only for `only_ids`."""
    query = select(model).where(column == from_id).order_by(model.id).with_for_update()
    if only_ids is not None:
        query = query.where(model.id.in_(only_ids))
    rows = session.scalars(query).all()
    for row in rows:
        setattr(row, column.key, to_id)
    return [row.id for row in rows]
