"""Helpers shared by the loyalty tests: members with tokens, and settings without a refund window."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from member.models import Member
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
