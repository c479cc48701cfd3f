"""Property: for any two members, a merge followed by its unmerge gives back both members exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from member.models import Member, MemberTag, Tag, WeChatIdentity
from member.services.merge import merge_members, unmerge_members
from scrm.audit import Actor

side = st.fixed_dictionaries(
    {
        "phone": st.booleans(),
        "unionid": st.booleans(),
        "name": st.sampled_from([None, "Ann", "Bob"]),
        "region": st.sampled_from([None, "Shanghai"]),
        "identities": st.integers(min_value=0, max_value=3),
        "tags": st.sets(st.integers(min_value=0, max_value=3)),
    }
)


def build(session, spec: dict, label: str, tags: list[Tag]) -> Member:
    member = Member(
        source="staff",
        phone=f"+86139000000{len(label):02d}{label[-1]}" if spec["phone"] else None,
        unionid=f"u-{label}" if spec["unionid"] else None,
        name=spec["name"],
        region=spec["region"],
    )
    session.add(member)
    session.flush()
    for n in range(spec["identities"]):
        session.add(WeChatIdentity(appid="wxprop", openid=f"o-{label}-{n}", app_kind="oa", member_id=member.id))
    for index in spec["tags"]:
        session.add(MemberTag(member_id=member.id, tag_id=tags[index].id))
    session.flush()
    return member


def state(session, member_id: int) -> dict:
    member = session.get(Member, member_id)
    session.refresh(member)
    return {
        "phone": member.phone,
        "verified": (member.phone_verified_at, member.phone_verified_method),
        "unionid": member.unionid,
        "name": member.name,
        "region": member.region,
        "merged_into_id": member.merged_into_id,
        "identities": sorted(
            session.scalars(select(WeChatIdentity.openid).where(WeChatIdentity.member_id == member_id))
        ),
        "tags": sorted(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == member_id))),
    }


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(survivor_spec=side, source_spec=side)
def test_merge_then_unmerge_is_the_identity(session, survivor_spec, source_spec):
    savepoint = session.begin_nested()
    try:
        tags = [Tag(name=f"t{i}", kind="manual") for i in range(4)]
        session.add_all(tags)
        session.flush()
        survivor = build(session, survivor_spec, "s", tags)
        source = build(session, source_spec, "x", tags)
        before = (state(session, survivor.id), state(session, source.id))
        merge = merge_members(session, survivor_id=survivor.id, source_id=source.id, actor=Actor.system())
        merged = state(session, survivor.id)
        assert merged["identities"] == sorted(before[0]["identities"] + before[1]["identities"])
        assert merged["tags"] == sorted(set(before[0]["tags"]) | set(before[1]["tags"]))
        assert merged["phone"] == (before[0]["phone"] or before[1]["phone"])
        unmerge_members(session, merge.id, actor=Actor.system())
        assert (state(session, survivor.id), state(session, source.id)) == before
    finally:
        savepoint.rollback()
