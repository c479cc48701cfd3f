"""PIPL erasure of an erased member's legacy records: the personal data goes, the numbers stay."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from member.legacy.models import LegacyMember

#: What an erased record's phone becomes: never a phone, so no later verification can bind it.
ERASED_PHONE_PREFIX = "erased-"


def erase_bound_records(session: Session, member_id: int) -> int:
    """Blank phone, name and custom fields of the legacy records bound to the member; idempotent.

    Points, spend, dates and the binding stay, as the member's own ledger and orders do, so totals do not move.
    """
    records = session.scalars(
        select(LegacyMember).where(LegacyMember.bound_member_id == member_id).with_for_update()
    ).all()
    for record in records:
        record.phone = f"{ERASED_PHONE_PREFIX}{record.id}"
        record.name = None
        record.custom_fields = {}
    session.flush()
    return len(records)
