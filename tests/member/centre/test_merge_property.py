"""Property: for any two members, a merge followed by its unmerge gives back both members exactly, loyalty
included (points available and pending, orders, coupons, tier), with the ledger invariants holding throughout."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from member.models import Coupon, LoyaltyAccount, Member, MemberTag, Order, Tag, Tier, WeChatIdentity
from member.services import coupons, ledger, orders, tiers
from member.services.merge import merge_members, unmerge_members
from scrm.audit import Actor
from scrm.clock import utcnow
from tests.member.loyalty_support import check_ledger

side = st.fixed_dictionaries(
    {
        "phone": st.booleans(),
        "unionid": st.booleans(),
        "name": st.sampled_from([None, "Ann", "Bob"]),
        "region": st.sampled_from([None, "Shanghai"]),
        "identities": st.integers(min_value=0, max_value=3),
        "tags": st.sets(st.integers(min_value=0, max_value=3)),
        # Loyalty: credit lots (points, pending?), a spend, orders, coupons, a tier.
        "lots": st.lists(st.tuples(st.integers(min_value=1, max_value=50), st.booleans()), max_size=3),
        "spend": st.integers(min_value=0, max_value=60),
        "orders": st.integers(min_value=0, max_value=2),
        "coupons": st.integers(min_value=0, max_value=2),
        "tier": st.sampled_from([None, "low", "high"]),
    }
)


def build(session, spec: dict, label: str, tags: list[Tag], template_id: int) -> Member:
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
    now = utcnow()
    for n, (points, pending) in enumerate(spec["lots"]):
        ledger.earn(
            session,
            member_id=member.id,
            points=points,
            key=f"lot-{label}-{n}",
            reason="test",
            source="test",
            available_at=now + timedelta(days=3) if pending else None,
            expires_at=now + timedelta(days=30 + n),
        )
    spend = min(spec["spend"], ledger.balance(session, member.id))
    if spend:
        ledger.spend(session, member_id=member.id, points=spend, key=f"spend-{label}", reason="test", source="test")
    for n in range(spec["orders"]):
        orders.place_order(
            session,
            source="prop",
            external_id=f"{label}-{n}",
            member_id=member.id,
            amount_fen=100 * (n + 1),
            paid_at=now - timedelta(days=n),
            earn_points=False,
        )
    for n in range(spec["coupons"]):
        coupons.grant(
            session, template_id=template_id, member_id=member.id, key=f"c-{label}-{n}", reason="t", source="t"
        )
    if spec["tier"]:
        tiers.ensure_tier_at_least(session, member_id=member.id, tier_code=spec["tier"], reason="t", source="t")
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
        **loyalty(session, member_id),
    }


def loyalty(session, member_id: int) -> dict:
    account = session.get(LoyaltyAccount, member_id)
    if account is not None:
        session.refresh(account)
    return {
        "balance": account.points_balance if account else 0,
        "pending": account.points_pending if account else 0,
        "tier": (account.tier_id, account.tier_since, account.tier_period_end) if account else (None, None, None),
        "last_order_at": session.get(Member, member_id).last_order_at,
        "orders": sorted(session.scalars(select(Order.external_id).where(Order.member_id == member_id))),
        "coupons": sorted(session.scalars(select(Coupon.key).where(Coupon.member_id == member_id))),
    }


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(survivor_spec=side, source_spec=side)
def test_merge_then_unmerge_is_the_identity(session, survivor_spec, source_spec):
    savepoint = session.begin_nested()
    try:
        tags = [Tag(name=f"t{i}", kind="manual") for i in range(4)]
        session.add_all(tags)
        # Thresholds out of reach: tiers here come only from `ensure_tier_at_least` and the merge.
        for rank, code in enumerate(("low", "high"), start=1):
            session.add(Tier(code=code, name=code, rank=rank, threshold_kind="points", threshold=10**9))
        session.flush()
        template = coupons.create_template(
            session, actor=Actor.system(), code="prop", name="prop", kind="amount", amount_off_fen=100, valid_days=9
        )
        survivor = build(session, survivor_spec, "s", tags, template.id)
        source = build(session, source_spec, "x", tags, template.id)
        before = (state(session, survivor.id), state(session, source.id))
        merge = merge_members(session, survivor_id=survivor.id, source_id=source.id, actor=Actor.system())
        merged = state(session, survivor.id)
        assert merged["identities"] == sorted(before[0]["identities"] + before[1]["identities"])
        assert merged["tags"] == sorted(set(before[0]["tags"]) | set(before[1]["tags"]))
        assert merged["phone"] == (before[0]["phone"] or before[1]["phone"])
        assert merged["balance"] == before[0]["balance"] + before[1]["balance"]
        assert merged["pending"] == before[0]["pending"] + before[1]["pending"]
        assert merged["orders"] == sorted(before[0]["orders"] + before[1]["orders"])
        assert merged["coupons"] == sorted(before[0]["coupons"] + before[1]["coupons"])
        ranks = {None: 0, "low": 1, "high": 2}
        assert tiers.tier_for_member(session, survivor.id) == (
            None
            if not (survivor_spec["tier"] or source_spec["tier"])
            else session.scalar(
                select(Tier).where(Tier.code == max(survivor_spec["tier"], source_spec["tier"], key=ranks.get))
            )
        )
        for member_id in (survivor.id, source.id):
            check_ledger(session, member_id)
        unmerge_members(session, merge.id, actor=Actor.system())
        assert (state(session, survivor.id), state(session, source.id)) == before
        for member_id in (survivor.id, source.id):
            check_ledger(session, member_id)
    finally:
        savepoint.rollback()
