"""Binding on phone verification: at once, exactly once, or through the conflict queue; staff decisions and undo."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from member import signals
from member.legacy.errors import BindingAlreadyReversed, ConflictAlreadyResolved, InvalidResolution
from member.legacy.models import BindingConflict, ImportBatch, LegacyBinding, LegacyMember
from member.legacy.selectors import legacy_history
from member.legacy.services.binding import bind_batch, unbind
from member.legacy.services.conflicts import reopen_conflict, resolve_conflict
from member.models import Member
from member.models.loyalty import PointsEntry, Tier
from member.services import ledger, tiers
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.models import AuditEntry

PHONE = "+8613800138000"
STAFF = Actor("staff", None, "admin")


def make_batch(session, name="crm.csv"):
    batch = ImportBatch(
        content_hash=name.ljust(64, "0")[:64], filename=name, stored_path=name, file_format="csv", status="done"
    )
    session.add(batch)
    session.flush()
    return batch


def make_record(session, batch, legacy_id, *, phone=PHONE, points=300, tier="gold", days_idle=10, spend=12_345):
    record = LegacyMember(
        batch_id=batch.id,
        row_number=int(legacy_id.strip("L") or 0) + 2,
        legacy_id=legacy_id,
        phone=phone,
        name="张三",
        tier=tier,
        points=points,
        total_spend_fen=spend,
        joined_at=utcnow() - timedelta(days=900),
        last_active_at=utcnow() - timedelta(days=days_idle),
        status="unbound",
        custom_fields={},
    )
    session.add(record)
    session.flush()
    return record


def verify(session, member, phone=PHONE, method="wechat"):
    """What the member centre does: store the verified phone and send `phone_verified` in the same transaction."""
    member.phone = phone
    member.phone_verified_at = utcnow()
    session.flush()
    signals.phone_verified.send(member.id, session=session, phone=phone, method=method, at=utcnow())


def bindings(session):
    return list(session.scalars(select(LegacyBinding).order_by(LegacyBinding.id)))


def open_conflicts(session):
    return list(session.scalars(select(BindingConflict).where(BindingConflict.status == "open")))


def test_verified_phone_binds_its_legacy_record_once(app, session, factories):
    for rank, code in enumerate(("silver", "gold"), start=1):
        session.add(Tier(code=code, name=code, rank=rank, threshold_kind="points", threshold=rank * 1000))
    session.flush()
    batch = make_batch(session)
    record = make_record(session, batch, "L1")
    member = factories.MemberFactory()
    verify(session, member)
    verify(session, member)  # a retried verification
    assert ledger.balance(session, member.id) == 300  # carried once
    assert tiers.tier_for_member(session, member.id).code == "gold"
    [binding] = bindings(session)
    assert (binding.member_id, binding.legacy_member_id, binding.status, binding.via) == (
        member.id,
        record.id,
        "active",
        "auto",
    )
    assert binding.points_carried == 300
    assert binding.points_key == f"legacy:{batch.id}:L1"
    assert binding.tier_carried == "gold"
    assert session.get(LegacyMember, record.id).status == "bound"
    assert legacy_history(session, member.id)["total_spend_fen"] == 12_345
    assert open_conflicts(session) == []


def test_a_phone_with_no_legacy_record_binds_nothing(app, session, factories):
    verify(session, factories.MemberFactory(), phone="+8613911112222")
    assert bindings(session) == []
    assert open_conflicts(session) == []


def test_several_records_on_one_phone_are_queued_then_merged_and_undone(app, session, factories):
    batch = make_batch(session)
    first, second = make_record(session, batch, "L1"), make_record(session, batch, "L2", points=200)
    member = factories.MemberFactory()
    verify(session, member)
    [conflict] = open_conflicts(session)
    assert (conflict.kind, conflict.candidate_ids, conflict.member_id) == (
        "multiple_records",
        [first.id, second.id],
        member.id,
    )
    assert bindings(session) == []
    verify(session, member)  # verifying again queues nothing new
    assert len(open_conflicts(session)) == 1

    resolve_conflict(session, conflict.id, action="merge", actor=STAFF, reason="same person")
    [binding] = bindings(session)
    assert (binding.legacy_member_id, binding.merged_legacy_ids, binding.points_carried) == (
        first.id,
        [second.id],
        500,
    )
    assert session.get(LegacyMember, second.id).status == "merged"
    assert legacy_history(session, member.id)["total_spend_fen"] == 2 * 12_345
    with pytest.raises(ConflictAlreadyResolved):
        resolve_conflict(session, conflict.id, action="reject", actor=STAFF)

    reopen_conflict(session, conflict.id, actor=STAFF, reason="wrong merge")
    assert session.get(LegacyBinding, binding.id).status == "reversed"
    assert [session.get(LegacyMember, r.id).status for r in (first, second)] == ["unbound", "unbound"]
    assert session.get(BindingConflict, conflict.id).status == "open"

    resolve_conflict(session, conflict.id, action="bind", legacy_member_id=second.id, actor=STAFF)
    active = [b for b in bindings(session) if b.status == "active"]
    assert [(b.legacy_member_id, b.points_key) for b in active] == [(second.id, f"legacy:{batch.id}:L2")]
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.target_type == "binding_conflict").order_by(AuditEntry.id)
    ).all()
    assert actions == ["legacy.conflict.merge", "legacy.conflict.reopen", "legacy.conflict.bind"]


def test_a_phone_bound_to_another_member_is_queued_and_moves_on_staff_decision(app, session, factories):
    batch = make_batch(session)
    record = make_record(session, batch, "L1")
    old_owner = factories.MemberFactory()
    verify(session, old_owner)
    [old_binding] = bindings(session)
    # The number changed hands: the old owner's verified phone is cleared, a new member verifies it.
    old_owner.phone = None
    session.flush()
    newcomer = factories.MemberFactory()
    verify(session, newcomer)
    [conflict] = open_conflicts(session)
    assert (conflict.kind, conflict.holder_member_id) == ("phone_bound_elsewhere", old_owner.id)

    resolve_conflict(session, conflict.id, action="bind", legacy_member_id=record.id, actor=STAFF)
    assert session.get(LegacyBinding, old_binding.id).status == "reversed"
    [active] = [b for b in bindings(session) if b.status == "active"]
    assert active.member_id == newcomer.id
    assert active.points_key == f"legacy:{batch.id}:L1:bind:2"  # a second bind pays under its own key

    reopen_conflict(session, conflict.id, actor=STAFF)
    [active] = [b for b in bindings(session) if b.status == "active"]
    assert active.member_id == old_owner.id
    assert session.get(LegacyMember, record.id).bound_member_id == old_owner.id


@pytest.mark.parametrize(("idle_days", "points", "reasons"), [(400, 10, ["dormant"]), (5, 9000, ["assets"])])
def test_a_dormant_or_asset_holding_record_waits_for_a_second_check(
    app, session, factories, idle_days, points, reasons
):
    batch = make_batch(session)
    record = make_record(session, batch, "L1", days_idle=idle_days, points=points)
    member = factories.MemberFactory()
    verify(session, member, method="wechat")
    [conflict] = open_conflicts(session)
    assert (conflict.kind, conflict.reasons) == ("second_check", reasons)
    assert session.get(LegacyMember, record.id).status == "pending_check"  # assets frozen: nothing carried
    assert bindings(session) == []

    verify(session, member, method="sms")  # the SMS code is the second check
    [binding] = bindings(session)
    assert (binding.via, binding.points_carried) == ("sms", points)
    assert session.get(BindingConflict, conflict.id).status == "resolved"


def test_staff_reject_a_second_check_and_it_is_not_queued_again(app, session, factories):
    batch = make_batch(session)
    record = make_record(session, batch, "L1", days_idle=400)
    member = factories.MemberFactory()
    verify(session, member)
    [conflict] = open_conflicts(session)
    resolve_conflict(session, conflict.id, action="reject", actor=STAFF, reason="recycled number")
    assert session.get(LegacyMember, record.id).status == "unbound"
    verify(session, member)
    assert open_conflicts(session) == []
    assert bindings(session) == []
    reopen_conflict(session, conflict.id, actor=STAFF)
    assert session.get(LegacyMember, record.id).status == "pending_check"
    resolve_conflict(session, conflict.id, action="bind", actor=STAFF)
    assert [b.via for b in bindings(session)] == ["staff"]


def test_resolutions_that_do_not_fit_are_refused(app, session, factories):
    batch = make_batch(session)
    make_record(session, batch, "L1", days_idle=400)
    other = make_record(session, batch, "L9", phone="+8613700137000")
    verify(session, factories.MemberFactory())
    [conflict] = open_conflicts(session)
    with pytest.raises(InvalidResolution):
        resolve_conflict(session, conflict.id, action="merge", actor=STAFF)
    with pytest.raises(InvalidResolution):
        resolve_conflict(session, conflict.id, action="bind", legacy_member_id=other.id, actor=STAFF)
    with pytest.raises(InvalidResolution):
        resolve_conflict(session, conflict.id, action="split", actor=STAFF)


def test_unbind_restores_the_record_and_cannot_run_twice(app, session, factories):
    batch = make_batch(session)
    record = make_record(session, batch, "L1")
    member = factories.MemberFactory()
    verify(session, member)
    [binding] = bindings(session)
    assert ledger.balance(session, member.id) == 300
    unbind(session, binding.id, actor=STAFF, reason="staff error")
    assert ledger.balance(session, member.id) == 0  # taken back by a new ledger entry
    assert session.scalar(select(func.count()).where(PointsEntry.member_id == member.id)) == 2
    assert session.get(LegacyMember, record.id).status == "unbound"
    assert session.get(LegacyMember, record.id).bound_member_id is None
    with pytest.raises(BindingAlreadyReversed):
        unbind(session, binding.id, actor=STAFF)
    assert (
        session.scalar(select(AuditEntry.action).where(AuditEntry.target_type == "legacy_binding")) == "legacy.unbind"
    )


def test_bind_pass_after_import_binds_members_who_verified_earlier(app, session, factories):
    earlier = factories.MemberFactory(phone=PHONE, phone_verified_at=utcnow())
    unverified = factories.MemberFactory(phone="+8613700137000")
    batch = make_batch(session)
    make_record(session, batch, "L1")
    make_record(session, batch, "L2", phone="+8613700137000")
    make_record(session, batch, "L3", phone="+8613600136000", days_idle=999)
    factories.MemberFactory(phone="+8613600136000", phone_verified_at=utcnow())
    counts = bind_batch(session, batch.id)
    assert counts == {"bound": 1, "conflict": 1}
    assert [b.member_id for b in bindings(session)] == [earlier.id]
    assert unverified.id not in {b.member_id for b in bindings(session)}
    assert bind_batch(session, batch.id) == {}  # a second pass finds nothing left to do
    batch = session.get(ImportBatch, batch.id)
    assert (batch.bound_count, batch.conflict_count) == (1, 1)


def test_twenty_concurrent_verifications_of_one_phone_bind_once(committed_app):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        batch = make_batch(session)
        make_record(session, batch, "L1")
        member = Member(source="miniprogram", phone=PHONE, phone_verified_at=utcnow())
        session.add(member)
        session.flush()
        member_id = member.id
    start = threading.Barrier(20)
    errors: list[BaseException] = []

    def verify_in_own_transaction() -> None:
        try:
            with committed_app.app_context(), db.transaction() as session:
                start.wait()
                signals.phone_verified.send(member_id, session=session, phone=PHONE, method="wechat", at=utcnow())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=verify_in_own_transaction) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LegacyBinding)) == 1
        assert session.scalar(select(func.count()).select_from(BindingConflict)) == 0
        assert session.scalar(select(LegacyMember.bound_member_id)) == member_id


def test_a_member_merge_carries_the_legacy_binding_and_an_unmerge_brings_it_back(app, session, factories):
    from member.services.merge import merge_members, unmerge_members

    session.add(Tier(code="gold", name="gold", rank=1, threshold_kind="points", threshold=1000))
    session.flush()
    make_record(session, make_batch(session), "L1", points=300)
    bound, survivor = factories.MemberFactory(), factories.MemberFactory()
    verify(session, bound)
    [binding] = bindings(session)
    assert binding.member_id == bound.id

    merge = merge_members(session, survivor_id=survivor.id, source_id=bound.id, actor=STAFF, reason="same person")
    assert binding.member_id == survivor.id
    assert legacy_history(session, survivor.id)["legacy_ids"] == ["L1"]
    assert legacy_history(session, bound.id)["legacy_ids"] == []
    assert ledger.balance(session, survivor.id) == 300  # the carried points moved with the loyalty merge
    # The signal delivered twice (a retried merge) moves nothing more.
    signals.members_merged.send(survivor.id, session=session, source_id=bound.id, merge_id=merge.id)
    assert merge.moved["legacy_bindings"]["bindings"] == [binding.id]

    unmerge_members(session, merge.id, actor=STAFF, reason="two people after all")
    assert binding.member_id == bound.id
    assert legacy_history(session, bound.id)["legacy_ids"] == ["L1"]
    assert legacy_history(session, survivor.id)["legacy_ids"] == []
    assert ledger.balance(session, bound.id) == 300


def test_bind_pass_queues_every_kind_of_conflict_once_and_keeps_refusals(app, session, factories):
    batch = make_batch(session)
    bound = factories.MemberFactory(phone=PHONE, phone_verified_at=utcnow())
    make_record(session, batch, "L1")
    twice = "+8613700137000"
    two_records = factories.MemberFactory(phone=twice, phone_verified_at=utcnow())
    make_record(session, batch, "L2", phone=twice)
    make_record(session, batch, "L3", phone=twice)
    dormant = factories.MemberFactory(phone="+8613600136000", phone_verified_at=utcnow())
    make_record(session, batch, "L4", phone="+8613600136000", days_idle=999)
    refused = factories.MemberFactory(phone="+8613500135000", phone_verified_at=utcnow())
    refused_record = make_record(session, batch, "L5", phone="+8613500135000")
    session.add(
        BindingConflict(
            phone="+8613500135000",
            kind="second_check",
            status="rejected",
            member_id=refused.id,
            candidate_ids=[refused_record.id],
            reasons=["dormant"],
            verified_via="wechat",
            resolution={"action": "reject"},
        )
    )
    session.flush()

    counts = bind_batch(session, batch.id)

    assert counts == {"bound": 1, "conflict": 2, "rejected": 1}
    assert [b.member_id for b in bindings(session)] == [bound.id]
    opened = session.execute(
        select(BindingConflict.member_id, BindingConflict.kind, BindingConflict.candidate_ids)
        .where(BindingConflict.status == "open")
        .order_by(BindingConflict.member_id)
    ).all()
    records = {r.legacy_id: r for r in session.scalars(select(LegacyMember))}
    assert sorted(opened) == sorted(
        [
            (two_records.id, "multiple_records", [records["L2"].id, records["L3"].id]),
            (dormant.id, "second_check", [records["L4"].id]),
        ]
    )
    assert records["L4"].status == "pending_check"
    # A second pass finds the open conflicts and the refusal again, and queues nothing new.
    assert bind_batch(session, batch.id) == {"conflict": 1, "rejected": 1}
    assert session.scalar(select(func.count()).select_from(BindingConflict)) == 3
