"""Unbind puts the tier back: to the one before the carry-over, never below what the member's own metrics earn."""

from __future__ import annotations

from sqlalchemy import func, select

from member.legacy.models import BindingConflict, LegacyBinding
from member.legacy.services.binding import unbind
from member.models import LoyaltyAccount, Member, Tier, TierChange
from member.services import ledger, tiers
from scrm.clock import utcnow
from tests.member.legacy.test_binding import STAFF, make_batch, make_record, verify


def add_tiers(session):
    for rank, code in enumerate(("silver", "gold", "platinum"), start=1):
        session.add(Tier(code=code, name=code, rank=rank, threshold_kind="points", threshold=rank * 1000))
    session.flush()


def tier_code(session, member_id):
    tier = tiers.tier_for_member(session, member_id)
    return None if tier is None else tier.code


def only_binding(session):
    return session.scalars(select(LegacyBinding)).one()


def test_unbind_puts_back_the_tier_and_its_period_as_they_were(app, session, factories):
    add_tiers(session)
    make_record(session, make_batch(session), "L1", tier="gold")
    member = factories.MemberFactory()
    tiers.ensure_tier_at_least(session, member_id=member.id, tier_code="silver", reason="campaign", source="test")
    account = session.get(LoyaltyAccount, member.id)
    since, period_end = account.tier_since, account.tier_period_end
    verify(session, member)
    binding = only_binding(session)
    assert (binding.tier_before, tier_code(session, member.id)) == ("silver", "gold")

    unbind(session, binding.id, actor=STAFF, reason="wrong person")

    assert tier_code(session, member.id) == "silver"
    account = session.get(LoyaltyAccount, member.id)
    assert (account.tier_since, account.tier_period_end) == (since, period_end)
    change = session.scalars(select(TierChange).order_by(TierChange.id.desc())).first()
    assert (change.reason, change.source) == ("legacy_carryover_reversal", "legacy")
    assert binding.carryover["reversal"]["tier"] == {
        "status": "restored",
        "from": "gold",
        "to": "silver",
        "qualified": False,
    }


def test_unbind_of_a_member_with_no_tier_before_leaves_none_even_if_the_carried_points_would_qualify(
    app, session, factories
):
    add_tiers(session)
    make_record(session, make_batch(session), "L1", tier="gold", points=2500)  # 2,500 points: gold by threshold
    member = factories.MemberFactory()
    verify(session, member)
    binding = only_binding(session)
    assert tier_code(session, member.id) == "gold"

    unbind(session, binding.id, actor=STAFF)

    assert tier_code(session, member.id) is None  # the carried points taken back are not the member's own
    assert binding.carryover["reversal"]["tier"]["to"] is None
    # A second unbind is refused before it could touch the tier again.
    assert [c.reason for c in session.scalars(select(TierChange).order_by(TierChange.id))] == [
        "legacy_carryover",
        "legacy_carryover_reversal",
    ]


def test_a_member_who_reached_a_higher_tier_since_keeps_it(app, session, factories):
    add_tiers(session)
    make_record(session, make_batch(session), "L1", tier="gold")
    member = factories.MemberFactory()
    verify(session, member)
    tiers.ensure_tier_at_least(session, member_id=member.id, tier_code="platinum", reason="campaign", source="test")
    binding = only_binding(session)

    unbind(session, binding.id, actor=STAFF)

    assert tier_code(session, member.id) == "platinum"
    assert binding.carryover["reversal"]["tier"] == {
        "status": "moved_since",
        "raised_to": "gold",
        "current": "platinum",
    }
    assert ledger.balance(session, member.id) == 0  # the points still went back


def test_a_member_whose_own_metrics_earn_the_legacy_tier_keeps_it(app, session, factories):
    add_tiers(session)
    make_record(session, make_batch(session), "L1", tier="gold")
    member = factories.MemberFactory()
    ledger.earn(session, member_id=member.id, points=2500, key="order:1", reason="order", source="order")
    verify(session, member)
    binding = only_binding(session)
    assert binding.tier_before is None

    unbind(session, binding.id, actor=STAFF)

    assert tier_code(session, member.id) == "gold"
    assert binding.carryover["reversal"]["tier"] == {"status": "kept_qualified", "tier": "gold"}
    assert session.scalar(select(TierChange.reason).order_by(TierChange.id.desc())) == "legacy_carryover"


def test_a_member_whose_own_metrics_earn_a_tier_between_goes_back_to_that_one(app, session, factories):
    add_tiers(session)
    make_record(session, make_batch(session), "L1", tier="gold")
    member = factories.MemberFactory()
    ledger.earn(session, member_id=member.id, points=1200, key="order:1", reason="order", source="order")
    verify(session, member)
    binding = only_binding(session)

    unbind(session, binding.id, actor=STAFF)

    assert tier_code(session, member.id) == "silver"
    assert binding.carryover["reversal"]["tier"]["qualified"] is True
    account = session.get(LoyaltyAccount, member.id)
    assert account.tier_period_end > utcnow()  # a tier the metrics earn starts a new period


def test_a_legacy_tier_no_staff_tier_matches_binds_and_unbinds_without_touching_the_tier(app, session, factories):
    add_tiers(session)
    make_record(session, make_batch(session), "L1", tier="钻石")
    member = factories.MemberFactory()
    verify(session, member)
    binding = only_binding(session)
    assert binding.carryover["tier_raised"] is False

    unbind(session, binding.id, actor=STAFF)

    assert tier_code(session, member.id) is None
    assert "tier" not in binding.carryover["reversal"]


def test_bind_and_unbind_with_the_tier_on_the_embedded_sqlite_default(sqlite_app):
    db = sqlite_app.extensions["scrm"].db
    with db.transaction() as session:
        add_tiers(session)
        batch = make_batch(session)
        make_record(session, batch, "L1", tier="gold")
        make_record(session, batch, "L2", phone="+8613600136000", days_idle=999)  # queues a second check
        member, other = Member(source="miniprogram"), Member(source="miniprogram")
        session.add_all([member, other])
        session.flush()
        verify(session, member)
        verify(session, member)  # a retry changes nothing
        verify(session, other, phone="+8613600136000")
        member_id = member.id
    with db.transaction() as session:
        assert (ledger.balance(session, member_id), tier_code(session, member_id)) == (300, "gold")
        binding = only_binding(session)
        unbind(session, binding.id, actor=STAFF)
    with db.transaction() as session:
        assert (ledger.balance(session, member_id), tier_code(session, member_id)) == (0, None)
        assert session.scalar(select(func.count()).select_from(BindingConflict)) == 1
