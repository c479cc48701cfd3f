"""Member tags (manual and rule-based) and lifecycle stages; the job recomputes rules and stages (safe twice)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.orm import Session

from member.errors import MemberNotFound, TagNotFound
from member.models import Member, MemberTag, Tag, WeChatIdentity
from scrm import audit
from scrm.clock import utcnow
from scrm.errors import Conflict, InvalidInput

RULE_KINDS = ("ordered_within_days", "region_is", "custom_field_is", "followed_oa")
LIFECYCLE_STAGES = ("new", "active", "silent", "churned")


def check_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule, validated: {"kind": ..., plus its parameters}."""
    kind = rule.get("kind")
    required = {
        "ordered_within_days": {"days": int},
        "region_is": {"region": str},
        "custom_field_is": {"key": str},
        "followed_oa": {},
    }.get(kind)
    if required is None:
        raise InvalidInput(f"rule kind must be one of {', '.join(RULE_KINDS)}", code="rule_invalid")
    for name, kind_of in required.items():
        if not isinstance(rule.get(name), kind_of) or isinstance(rule.get(name), bool):
            raise InvalidInput(f"rule {kind} needs {name}", code="rule_invalid")
    if kind == "custom_field_is" and "value" not in rule:
        raise InvalidInput("rule custom_field_is needs value", code="rule_invalid")
    if kind == "ordered_within_days" and rule["days"] <= 0:
        raise InvalidInput("days must be positive", code="rule_invalid")
    return rule


def create_tag(session: Session, *, name: str, kind: str, rule: dict[str, Any] | None, actor: audit.Actor) -> Tag:
    if kind == "rule":
        rule = check_rule(rule or {})
    elif rule:
        raise InvalidInput("manual tags take no rule", code="rule_invalid")
    if session.scalar(select(Tag.id).where(Tag.name == name)) is not None:
        raise Conflict(f"tag {name!r} exists", code="tag_exists")
    tag = Tag(name=name, kind=kind, rule=rule)
    session.add(tag)
    session.flush()
    audit.record(
        session, actor, "member_tag.create", target_type="tag", target_id=tag.id, after={"name": name, "rule": rule}
    )
    return tag


def tag_member(session: Session, member_id: int, tag_id: int, *, actor: audit.Actor) -> bool:
    """Give a manual tag; True when it was new (giving it again changes nothing)."""
    tag = session.get(Tag, tag_id)
    if tag is None or tag.kind != "manual":
        raise TagNotFound("no manual tag with this id")
    if session.get(Member, member_id) is None:
        raise MemberNotFound()
    if session.scalar(select(MemberTag.id).where(MemberTag.member_id == member_id, MemberTag.tag_id == tag_id)):
        return False
    session.add(MemberTag(member_id=member_id, tag_id=tag_id))
    session.flush()
    audit.record(session, actor, "member.tag", target_type="member", target_id=member_id, after={"tag_id": tag_id})
    return True


def untag_member(session: Session, member_id: int, tag_id: int, *, actor: audit.Actor) -> bool:
    """Remove a manual tag; True when the member had it."""
    tag = session.get(Tag, tag_id)
    if tag is None or tag.kind != "manual":
        raise TagNotFound("no manual tag with this id")
    removed = session.execute(
        delete(MemberTag).where(MemberTag.member_id == member_id, MemberTag.tag_id == tag_id)
    ).rowcount
    if removed:
        audit.record(
            session, actor, "member.untag", target_type="member", target_id=member_id, before={"tag_id": tag_id}
        )
    return bool(removed)


def _live() -> Any:
    return and_(Member.merged_into_id.is_(None), Member.erased_at.is_(None))


def _matching_ids(session: Session, rule: dict[str, Any], now: datetime) -> set[int]:
    kind = rule["kind"]
    if kind == "ordered_within_days":
        query = select(Member.id).where(_live(), Member.last_order_at >= now - timedelta(days=rule["days"]))
    elif kind == "region_is":
        query = select(Member.id).where(_live(), Member.region == rule["region"])
    elif kind == "followed_oa":
        followers = select(WeChatIdentity.member_id).where(WeChatIdentity.subscribed.is_(True))
        if rule.get("appid"):
            followers = followers.where(WeChatIdentity.appid == rule["appid"])
        query = select(Member.id).where(_live(), Member.id.in_(followers))
    else:
        # JSON equality differs between PostgreSQL and SQLite; compare in Python over the members with values.
        key, value = rule["key"], rule["value"]
        rows = session.execute(select(Member.id, Member.custom_fields).where(_live())).yield_per(5000)
        return {member_id for member_id, fields in rows if (fields or {}).get(key) == value}
    return set(session.scalars(query))


def recompute_rule_tags(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """Bring every rule tag's holders in line with its rule; returns how many were added and removed."""
    now = now or utcnow()
    added = removed = 0
    for tag in session.scalars(select(Tag).where(Tag.kind == "rule").order_by(Tag.id)).all():
        wanted = _matching_ids(session, tag.rule or {}, now)
        holding = set(session.scalars(select(MemberTag.member_id).where(MemberTag.tag_id == tag.id)))
        for member_id in sorted(wanted - holding):
            session.add(MemberTag(member_id=member_id, tag_id=tag.id, added_at=now))
        gone = holding - wanted
        if gone:
            session.execute(delete(MemberTag).where(MemberTag.tag_id == tag.id, MemberTag.member_id.in_(gone)))
        added += len(wanted - holding)
        removed += len(gone)
    session.flush()
    return {"added": added, "removed": removed}


def recompute_lifecycle(
    session: Session, *, new_days: int, active_days: int, silent_days: int, now: datetime | None = None
) -> int:
    """Set every live member's lifecycle stage from its join and last activity (or order); returns rows changed."""
    now = now or utcnow()
    active_since, silent_since = now - timedelta(days=active_days), now - timedelta(days=silent_days)
    stage = case(
        (Member.created_at >= now - timedelta(days=new_days), "new"),
        (or_(Member.last_active_at >= active_since, Member.last_order_at >= active_since), "active"),
        (
            or_(
                Member.last_active_at >= silent_since,
                Member.last_order_at >= silent_since,
                Member.created_at >= silent_since,
            ),
            "silent",
        ),
        else_="churned",
    )
    result = session.execute(
        update(Member)
        .where(_live(), or_(Member.lifecycle_stage.is_(None), Member.lifecycle_stage != stage))
        .values(lifecycle_stage=stage)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
