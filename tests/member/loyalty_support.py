"""Helpers shared by the loyalty tests: members with tokens, and settings without a refund window."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from member.models import LoyaltyAccount, Member, PointsEntry
from member.services import loyalty_rules
from scrm.audit import Actor
from scrm.guards import member_tokens


def new_member(session: Session, **fields: Any) -> Member:
    member = Member(source="miniprogram", **fields)
    session.add(member)
    session.flush()
    return member


def member_headers(app: Flask, member_id: int) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {member_tokens().issue(member_id, appid='wxTESTMP000000001')}"}


def set_rules(session: Session, **changes: Any) -> None:
    loyalty_rules.update_settings(session, actor=Actor.system(), **changes)


def check_ledger(session: Session, member_id: int) -> None:
    """The ledger invariants: balance = Σ available deltas ≥ 0, pending = Σ pending deltas ≥ 0, lots hold the
    balance, every key once."""
    session.expire_all()

    def total(state: str, column: Any = PointsEntry.delta) -> int:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(column), 0)).where(
                    PointsEntry.member_id == member_id, PointsEntry.state == state
                )
            )
        )

    account = session.get(LoyaltyAccount, member_id)
    balance, pending = (account.points_balance, account.points_pending) if account else (0, 0)
    assert balance == total("available") == total("available", PointsEntry.remaining) >= 0
    assert pending == total("pending") >= 0
    duplicate_keys = session.scalar(
        select(func.count()).select_from(
            select(PointsEntry.key).group_by(PointsEntry.key).having(func.count() > 1).subquery()
        )
    )
    assert duplicate_keys == 0
