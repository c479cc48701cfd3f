"""The legacy block of the staff 360 view and of the PIPL export, and erasure of a member's legacy records."""

from __future__ import annotations

from sqlalchemy import select

from member.legacy.models import LegacyBinding, LegacyMember
from member.models import Member
from member.services.privacy import erase_member
from scrm.audit import Actor
from tests.member.legacy.test_binding import make_batch, make_record, verify

STAFF = Actor("staff", None, "admin")


def test_the_360_view_masks_the_legacy_phone_and_the_export_does_not(client, staff, session, factories):
    batch = make_batch(session)
    record = make_record(session, batch, "L7", points=0, tier=None)
    record.custom_fields = {"喜好": "茶"}
    member = factories.MemberFactory()
    verify(session, member)
    session.commit()

    view = client.get(f"/api/v1/staff/members/{member.id}", headers=staff.headers("analyst")).json
    [shown] = view["sections"]["legacy"]
    assert (shown["legacy_id"], shown["phone"], shown["status"]) == ("L7", "+86138****8000", "bound")
    assert shown["binding"]["via"] == "auto"
    assert "custom_fields" not in shown

    from member.selectors import export_member

    [exported] = export_member(session, member)["sections"]["legacy"]
    assert (exported["phone"], exported["custom_fields"]) == ("+8613800138000", {"喜好": "茶"})


def test_erasing_a_member_blanks_their_legacy_records_but_keeps_the_numbers(session, factories):
    batch = make_batch(session)
    record = make_record(session, batch, "L8", points=40, tier=None)
    other = make_record(session, batch, "L9", phone="+8613700137000", points=0, tier=None)
    member = factories.MemberFactory()
    verify(session, member)

    erase_member(session, member, actor=STAFF)
    erase_member(session, session.get(Member, member.id), actor=STAFF)  # idempotent
    session.refresh(record)
    assert (record.phone, record.name, record.custom_fields) == (f"erased-{record.id}", None, {})
    assert (record.points, record.status, record.bound_member_id) == (40, "bound", member.id)
    assert session.scalar(select(LegacyBinding.status).where(LegacyBinding.legacy_member_id == record.id)) == "active"
    # A record not bound to the erased member is not theirs to erase.
    assert session.get(LegacyMember, other.id).name == "张三"
